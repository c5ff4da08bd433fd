"""The champion: register the best run's model and move the ``champion`` alias only on evidence.

One registered model (:data:`emotify_ml.models.DEFAULT_REGISTERED_MODEL`) holds
every promoted pipeline as a version; the alias ``champion`` points at the one
live and batch scoring load (``models:/emotify-emotion@champion``). Aliases, not
the deprecated stages. The choice uses a validation (PublicTest) metric only;
test metrics are reported, never used to choose. Runs that did not finish
(FAILED, KILLED, RUNNING) are never registered.

>>> result = promote(tracking_uri="sqlite:///mlflow.db", experiment="emotify")   # doctest: +SKIP
>>> print(result.summary())                                                       # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from emotify_ml.models.kinds import DEFAULT_REGISTERED_MODEL
from emotify_ml.models.resolve import COMPILED_TAG
from emotify_ml.mlflow_runs import (DEFAULT_EXPERIMENT, DEFAULT_METRIC, DEFAULT_TRACKING_URI, check_selection_metric,
                                    check_tracking_uri, end_ghost_runs, fault_point, rank_runs, search_runs)

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "champion"

PENDING_TAG = "emotify.promotion"
"""Tag of a version registered by :func:`promote`: ``pending`` until its alias is set, then ``done``.

A promote killed between the two steps leaves a ``pending`` version without the alias; the
next promote rolls it back (deletes it) before it looks for a candidate, so a version never
exists without having become the champion, and a re-run never duplicates one."""


@dataclass
class Promotion:
    """What :func:`promote` compared and decided.

    Attributes
    ----------
    promoted : bool
        Whether the candidate became the alias's version.
    reason : str
        Why (or why not), in words.
    model_name, alias, metric : str
        The registered model, the alias and the validation metric compared.
    candidate_run_id, candidate_run_name : str
        The best run found (or the one asked for).
    candidate_value : float
        Its ``metric``.
    candidate_test : dict
        Its test metrics (reported, not used to choose).
    champion_version, champion_run_id, champion_value
        The alias's version before the call, its run and its ``metric`` (None when there was none).
    version : str or None
        The registered version now holding the candidate (None when refused).
    """

    promoted: bool
    reason: str
    model_name: str
    alias: str
    metric: str
    candidate_run_id: str
    candidate_run_name: str
    candidate_value: float
    candidate_test: dict
    champion_version: str | None = None
    champion_run_id: str | None = None
    champion_value: float | None = None
    version: str | None = None

    def summary(self) -> str:
        """Three lines: the candidate, the champion (both with the metric) and the decision."""
        test = ", ".join(f"{k} {v:.4f}" for k, v in sorted(self.candidate_test.items()))
        champion = (f"{self.model_name} v{self.champion_version} (run {self.champion_run_id}): "
                    f"{self.metric} {_fmt(self.champion_value)}" if self.champion_version else "none")
        outcome = (f"promoted: {self.model_name} v{self.version} is now @{self.alias}" if self.promoted
                   else f"kept the current champion: {self.reason}")
        return (f"candidate: run {self.candidate_run_id} ({self.candidate_run_name}): {self.metric} "
                f"{_fmt(self.candidate_value)}" + (f" [reported only: {test}]" if test else "") + "\n"
                f"champion:  {champion}\n{outcome}")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def logged_model_uri(run, artifact_name: str = "model") -> str | None:
    """URI of the model a run logged (``models:/<model id>``), preferring one named ``artifact_name``."""
    from mlflow import MlflowClient

    outputs = getattr(run, "outputs", None)
    model_ids = [o.model_id for o in (outputs.model_outputs if outputs else [])]
    if not model_ids:
        return None
    if len(model_ids) > 1:
        client = MlflowClient()
        named = [m for m in model_ids if client.get_logged_model(m).name == artifact_name]
        model_ids = named or model_ids
    return f"models:/{model_ids[0]}"


def current_champion(model_name: str = DEFAULT_REGISTERED_MODEL, alias: str = DEFAULT_ALIAS, *, tracking_uri=None):
    """The model version holding ``alias`` (None when the model or the alias does not exist yet)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri or DEFAULT_TRACKING_URI)
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def promote(*, tracking_uri=None, experiment: str = DEFAULT_EXPERIMENT, parent_run_id: str | None = None,
            run_id: str | None = None, metric: str = DEFAULT_METRIC, mode: str = "max",
            model_name: str = DEFAULT_REGISTERED_MODEL, alias: str = DEFAULT_ALIAS, artifact_name: str = "model",
            force: bool = False) -> Promotion:
    """Register the best run's model and give it ``alias`` when it beats the current holder on ``metric``.

    Parameters
    ----------
    tracking_uri : str, optional
        The MLflow store (runs and registry).
    experiment : str
        Where to look for the best run.
    parent_run_id : str, optional
        Only the children of this sweep parent run (``"latest"``: the newest sweep of ``experiment``).
    run_id : str, optional
        Promote this run instead of searching (it must have FINISHED and logged ``metric``).
    metric : str
        Validation metric (``val_*``) that chooses the run and is compared with the champion's.
    mode : {"max", "min"}
        Higher (``max``) or lower is better.
    model_name, alias : str
        Registered model and alias.
    artifact_name : str
        Name of the logged model when a run logged several.
    force : bool
        Give the candidate the alias even when it does not beat the champion, its
        data differ, or the champion's metric is unknown (a rollback).

    Returns
    -------
    Promotion
        Both values and the decision; ``summary()`` prints them. A refused candidate is
        not registered; a promoted one becomes a new version (or reuses the version
        already registered from the same run) and the previous champion stays a version.

    Raises
    ------
    ValueError
        ``metric`` is not a validation metric, no finished run with ``metric`` and a
        logged model exists, or ``run_id`` did not finish.
    """
    import mlflow
    from mlflow import MlflowClient

    check_selection_metric(metric, mode)
    mlflow.set_tracking_uri(check_tracking_uri(tracking_uri))
    client = MlflowClient()
    end_ghost_runs(tracking_uri=tracking_uri)
    roll_back_pending(client, model_name, alias)
    candidate, model_uri = _candidate(client, tracking_uri, experiment, parent_run_id, run_id, metric, mode,
                                      artifact_name)
    value = candidate.data.metrics[metric]
    result = Promotion(promoted=False, reason="", model_name=model_name, alias=alias, metric=metric,
                       candidate_run_id=candidate.info.run_id, candidate_run_name=candidate.info.run_name or "",
                       candidate_value=value,
                       candidate_test={k: v for k, v in candidate.data.metrics.items()
                                       if k in ("test_accuracy", "test_macro_f1")})
    champion = current_champion(model_name, alias, tracking_uri=tracking_uri)
    if champion is not None:
        result.champion_version, result.champion_run_id = str(champion.version), champion.run_id
        champion_run = _get_run(client, champion.run_id)
        result.champion_value = champion_run.data.metrics.get(metric) if champion_run else None
        refusal = _refusal(candidate, champion_run, result, mode)
        if refusal and not force:
            result.reason = refusal
            return result
    version, created = _register(client, model_uri, candidate, model_name, metric, value)
    try:
        fault_point("promote_registered")
        client.set_registered_model_alias(model_name, alias, version.version)
        client.set_model_version_tag(model_name, version.version, PENDING_TAG, "done")
    except BaseException:
        if created:  # roll back: no version is left that never became the champion
            _delete_version(client, model_name, version.version)
        raise
    result.promoted, result.version = True, str(version.version)
    result.reason = "forced" if force else ("no champion yet" if champion is None else "beats the champion")
    log.info("%s v%s is now @%s (run %s)", model_name, version.version, alias, candidate.info.run_id)
    return result


def roll_back_pending(client, model_name: str, alias: str = DEFAULT_ALIAS) -> list[str]:
    """Delete the versions a killed :func:`promote` registered but never gave ``alias``; returns their numbers.

    A version still tagged ``emotify.promotion=pending`` that holds the alias (the kill came
    after the alias was set) is marked ``done`` instead.
    """
    from mlflow.exceptions import MlflowException

    try:
        pending = client.search_model_versions(f"name = '{model_name}' and tags.`{PENDING_TAG}` = 'pending'")
    except MlflowException:
        return []
    removed = []
    for version in pending:
        if alias in (getattr(version, "aliases", None) or []):
            client.set_model_version_tag(model_name, version.version, PENDING_TAG, "done")
            continue
        _delete_version(client, model_name, version.version)
        removed.append(str(version.version))
        log.warning("rolled back %s v%s: registered by a promote that did not finish (no @%s)", model_name,
                    version.version, alias)
    return removed


def _delete_version(client, model_name: str, version) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_model_version(model_name, str(version))
    except MlflowException as exc:  # already gone
        log.warning("could not delete %s v%s: %s", model_name, version, exc)


def _candidate(client, tracking_uri, experiment, parent_run_id, run_id, metric, mode, artifact_name):
    """The run to promote and its model URI."""
    if run_id:
        run = _get_run(client, run_id)
        if run is None:
            raise ValueError(f"run_id {run_id!r} is not a run of the tracking store {client.tracking_uri!r}; "
                             "list the runs with `python -m pipelines.compare`")
        if run.info.status != "FINISHED":
            raise ValueError(f"run {run_id} is {run.info.status}; only a FINISHED run's model can be registered")
        if not rank_runs([run], metric, mode):
            raise ValueError(f"run {run_id} has no finite {metric}; it cannot be compared with the champion")
        uri = logged_model_uri(run, artifact_name)
        if uri is None:
            raise ValueError(f"run {run_id} logged no model")
        return run, uri
    runs = search_runs(tracking_uri=tracking_uri, experiment=experiment, parent_run_id=parent_run_id)
    for run in rank_runs(runs, metric, mode):
        uri = logged_model_uri(run, artifact_name)
        if uri is not None:
            return run, uri
        log.info("skipping run %s: it logged no model", run.info.run_id)
    where = f"sweep {parent_run_id}" if parent_run_id else f"experiment {experiment!r}"
    raise ValueError(f"no FINISHED run with {metric} and a logged model in {where} "
                     f"({len(runs)} runs looked at); failed runs are never registered")


def _get_run(client, run_id):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id) if run_id else None
    except MlflowException:
        return None


def _refusal(candidate, champion_run, result: Promotion, mode: str) -> str | None:
    """Why the candidate must not replace the champion (None: it may)."""
    if champion_run is not None and champion_run.info.run_id == candidate.info.run_id:
        return f"run {candidate.info.run_id} already is @{result.alias}"
    if result.champion_value is None or not math.isfinite(result.champion_value):
        return (f"the champion's run has no {result.metric}, so the two cannot be compared "
                "(use force=true to replace it anyway)")
    data = candidate.data.params.get("dataset.hash"), champion_run.data.params.get("dataset.hash")
    if all(data) and data[0] != data[1]:
        return (f"the candidate was validated on other data (dataset.hash {data[0][:12]}) than the champion "
                f"({data[1][:12]}); their {result.metric} are not comparable (use force=true to replace it anyway)")
    better = (result.candidate_value > result.champion_value if mode == "max"
              else result.candidate_value < result.champion_value)
    if not better:
        return (f"{result.metric} {_fmt(result.candidate_value)} does not beat the champion's "
                f"{_fmt(result.champion_value)}")
    return None


def _register(client, model_uri: str, run, model_name: str, metric: str, value: float):
    """The version holding ``run``'s model (the existing one, or a new one tagged pending) and whether it is new."""
    import mlflow

    existing = client.search_model_versions(f"name = '{model_name}' and run_id = '{run.info.run_id}'")
    if existing:
        return max(existing, key=lambda v: int(v.version)), False
    tags = {"run_name": run.info.run_name or "", "experiment_name": run.data.tags.get("experiment_name", ""),
            metric: f"{value:.6f}", "dataset.hash": run.data.params.get("dataset.hash", ""),
            "git_commit": run.data.tags.get("git_commit", ""), PENDING_TAG: "pending"}
    return mlflow.register_model(model_uri, model_name, tags=tags), True


def stored_model_id(resolved, *, required: bool = True) -> str | None:
    """The logged model id (``m-...``) of a model resolved from the tracking store.

    A folder, or a version registered from a folder, has no logged model to store anything in:
    :class:`~emotify_ml.exceptions.ModelError` when ``required``, else None.
    """
    from pathlib import Path

    import yaml

    from emotify_ml.exceptions import ModelError

    model_id = None
    if str(resolved.uri).startswith(("models:/", "runs:/")):
        mlmodel = yaml.safe_load((Path(resolved.local_dir) / "MLmodel").read_text(encoding="utf-8")) or {}
        model_id = mlmodel.get("model_id") or None
    if model_id is None and required:
        raise ModelError(f"cannot store a compiled artifact in {resolved.uri!r}: it is not a model logged in the "
                         "tracking store (a folder, or a version registered from a folder); pass out=<folder> to "
                         "compile a copy")
    return model_id


def store_compiled(resolved, compiled_folder, *, tracking_uri=None) -> str:
    """Store a compiled artifact inside its MLflow model in the tracking store (``<model>/artifacts/compiled``).

    The graphs and head are uploaded first, the manifest (which names and hashes them) last, and the
    tag :data:`~emotify_ml.models.resolve.COMPILED_TAG` (the manifest's sha256) after that: on the
    logged model, on its source run and on every registry version of it, since each is a cache key
    of the model (:func:`emotify_ml.models.resolve_model`), so every machine downloads it anew.

    Parameters
    ----------
    resolved : emotify_ml.models.ResolvedModel
        The store model it was compiled from (``models:/...`` or ``runs:/...``), as resolved.
    compiled_folder : path
        The ``artifacts/compiled`` folder that :func:`emotify_ml.runtime.export.compile_model` wrote.
    tracking_uri : str, optional
        The tracking store (default: MLflow's current one).

    Returns
    -------
    str
        The logged model's id (``m-...``) the artifact was stored in.

    Raises
    ------
    ModelError
        The model is not a logged model of the store (see :func:`stored_model_id`), or the store refused the write.
    """
    from pathlib import Path

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from emotify_ml.exceptions import ModelError
    from emotify_ml.paths import sha256_file
    from emotify_ml.runtime.compiled import COMPILED_DIR, MANIFEST

    model_id = stored_model_id(resolved)
    client = MlflowClient(tracking_uri)
    folder = Path(compiled_folder)
    digest = sha256_file(folder / MANIFEST)
    try:
        for path in sorted(folder.rglob("*"), key=lambda p: (p.name == MANIFEST, str(p))):  # the manifest last
            if path.is_file():
                parent = path.parent.relative_to(folder).as_posix()
                client.log_model_artifact(model_id, str(path),
                                          f"artifacts/{COMPILED_DIR}" + ("" if parent == "." else f"/{parent}"))
        client.set_logged_model_tags(model_id, {COMPILED_TAG: digest})
        run_id = client.get_logged_model(model_id).source_run_id
        if run_id:
            client.set_tag(run_id, COMPILED_TAG, digest)
            for version in client.search_model_versions(f"run_id = '{run_id}'"):
                if version.source == f"models:/{model_id}" or getattr(version, "model_id", None) == model_id:
                    client.set_model_version_tag(version.name, version.version, COMPILED_TAG, digest)
    except (MlflowException, OSError) as exc:
        detail = exc.message.splitlines()[0] if isinstance(exc, MlflowException) else f"{type(exc).__name__}: {exc}"
        raise ModelError(f"cannot store the compiled artifact in {resolved.uri!r} ({model_id}): {detail}") from None
    log.info("stored the compiled artifact (manifest %s) in %s (%s)", digest[:12], resolved.uri, model_id)
    return model_id
