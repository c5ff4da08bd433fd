"""MLflow helpers: one tracked run per job, sweeps as parent runs, and the comparison of runs.

Library code takes plain values (a tracking URI, an experiment name, a flat
dict of params); no Hydra here. A run that raises is ended as FAILED with the
error as a tag, never left RUNNING.

Selection of a run is by a validation (PublicTest, ``val_*``) metric only; the
test (PrivateTest) metrics are reported next to it, never used to choose.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
"""Local sqlite store in the working directory: ``mlflow ui --backend-store-uri sqlite:///mlflow.db``."""

DEFAULT_EXPERIMENT = "emotify"
DEFAULT_METRIC = "val_accuracy"
"""The validation metric that chooses between runs unless told otherwise."""

TRACKED_PACKAGES = ("emotify", "numpy", "scikit-learn", "scikit-image", "tensorflow", "tensorflow-cpu",
                    "keras", "opencv-python-headless", "mlflow", "hydra-core", "lightgbm", "pandas",
                    "optuna", "hydra-optuna-sweeper", "hydra-joblib-launcher")

SWEEP_TAG = "emotify.sweep"
"""Tag on a sweep's parent run (value ``parent``); its children carry ``mlflow.parentRunId``."""

PARENT_TAG = "mlflow.parentRunId"
PID_TAG, HOST_TAG, STARTED_TAG = "emotify.pid", "emotify.host", "emotify.process_start"
"""Tags naming the process that owns a run: a RUNNING run whose process is gone is a ghost (:func:`end_ghost_runs`)."""

TRACKING_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "uc")
"""URI schemes of an MLflow tracking store (a plain path has none; ``postgresql+psycopg2`` counts as postgresql)."""

TELEMETRY_OPT_IN = "EMOTIFY_ALLOW_TELEMETRY"
"""Set to 1 to let MLflow (and other libraries) send their usage telemetry; off otherwise."""

TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "HF_HUB_DISABLE_TELEMETRY": "1",
                 "GRADIO_ANALYTICS_ENABLED": "False"}
"""Environment switches that turn off the telemetry of the libraries Emotify runs."""

FAULT_PAUSE = "EMOTIFY_FAULT_PAUSE"
"""``<point>:<seconds>``: sleep at that named point (tests kill a real process there; see :func:`fault_point`)."""
MAX_DIFF_CHARS = 1_000_000
"""Largest uncommitted diff logged with a run from a dirty checkout."""

COMPARE_METRICS = {
    "val_accuracy": "val_accuracy", "val_macro_f1": "val_macro_f1",
    "test_accuracy": "test_accuracy", "test_macro_f1": "test_macro_f1",
    "train_seconds": "train_s", "items_per_s_batch": "faces_per_s", "ms_per_item_batch1": "ms_per_face",
}
"""Metrics of the comparison table (run metric -> column), in display order."""


def git_info(path=None) -> dict[str, str]:
    """Commit, branch and dirty flag of the checkout holding ``path`` (empty values outside git)."""
    cwd = str(path or Path(__file__).resolve().parent)
    status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
    commit = _git(cwd, "rev-parse", "HEAD")
    return {"git_commit": commit, "git_branch": _git(cwd, "rev-parse", "--abbrev-ref", "HEAD"),
            "git_dirty": str(bool(status)).lower() if commit else ""}


def git_diff(path=None) -> str:
    """The uncommitted changes to tracked files (``git diff HEAD``) of the checkout holding ``path``."""
    return _git(str(path or Path(__file__).resolve().parent), "diff", "HEAD", strip=False)


def _git(cwd: str, *args: str, strip: bool = True) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    if out.returncode != 0:
        return ""
    return out.stdout.strip() if strip else out.stdout


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide results, plus Python and the platform."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def flatten(d, prefix: str = "", sep: str = ".") -> dict[str, object]:
    """Flatten nested dicts/lists into ``a.b.c`` keys (MLflow params are flat)."""
    items: dict[str, object] = {}
    if isinstance(d, dict) and not d and prefix:  # an empty mapping is a value ("{}": all defaults), not nothing
        items[prefix] = "{}"
    elif isinstance(d, dict):
        for k, v in d.items():
            items.update(flatten(v, f"{prefix}{sep}{k}" if prefix else str(k), sep))
    elif isinstance(d, (list, tuple)) and d and all(isinstance(v, dict) for v in d):
        for i, v in enumerate(d):
            items.update(flatten(v, f"{prefix}{sep}{i}", sep))
    else:
        items[prefix] = d
    return items


def log_params_flat(params: dict) -> None:
    """Log a nested dict as flat MLflow params (values cut to MLflow's 6000-char limit)."""
    import mlflow

    flat = {k: (str(v)[:6000] if v is not None else "None") for k, v in flatten(params).items()}
    keys = sorted(flat)
    for i in range(0, len(keys), 100):
        mlflow.log_params({k: flat[k] for k in keys[i : i + 100]})


def set_tracking(tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT):
    """Point MLflow at ``tracking_uri`` (default: local sqlite) and select ``experiment`` (created if new)."""
    import mlflow

    mlflow.set_tracking_uri(check_tracking_uri(tracking_uri))
    return mlflow.set_experiment(experiment_id=_experiment_id(mlflow.MlflowClient(), experiment, create=True))


def artifact_location(tracking_uri: str | None) -> str | None:
    """Where a new experiment of a local sqlite store keeps its artifacts: ``mlruns/`` next to the database.

    MLflow's own default is ``./mlruns`` of the current directory, which scatters the
    artifacts of a store used from several folders. None for other stores (their default).
    """
    uri = tracking_uri or DEFAULT_TRACKING_URI
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        return None
    return (Path(uri[len("sqlite:///"):]).expanduser().resolve().parent / "mlruns").as_uri()


def provenance_tags() -> dict[str, str]:
    """Git commit, branch, dirty flag, command line and owning process: the tags every Emotify run carries."""
    return {**git_info(), "command": " ".join(sys.argv)[:5000], **process_tags()}


def process_tags(pid: int | None = None) -> dict[str, str]:
    """``emotify.pid`` / ``emotify.host`` / ``emotify.process_start`` of ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    tags = {PID_TAG: str(pid), HOST_TAG: socket.gethostname()}
    started = _process_start(pid)
    if started:
        tags[STARTED_TAG] = started
    return tags


def _process_start(pid: int) -> str:
    """When ``pid`` started, in clock ticks since boot (Linux ``/proc``); empty where unknown.

    Tells a process from a later one that got the same pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def process_alive(pid: int, started: str = "") -> bool:
    """Whether process ``pid`` runs (and, when ``started`` is known, is the one that started then)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    if started:
        now = _process_start(pid)
        return not now or now == started
    return True


def is_ghost(run) -> bool:
    """A RUNNING run of this host whose owning process (``emotify.pid`` tag) is gone."""
    tags = run.data.tags
    if run.info.status != "RUNNING" or tags.get(HOST_TAG) != socket.gethostname():
        return False
    try:
        pid = int(tags.get(PID_TAG, ""))
    except ValueError:
        return False
    return not process_alive(pid, tags.get(STARTED_TAG, ""))


def end_ghost_runs(*, tracking_uri=None, experiment_ids=None) -> list[str]:
    """End FAILED every ghost run (:func:`is_ghost`) of ``experiment_ids`` (default: all); returns their ids.

    A run whose process was killed (``kill -9``, a power cut) stays RUNNING for ever in
    MLflow; the runner, promote and compare call this first, so such runs are never
    listed as running, ranked or waited for. Runs of other hosts are left alone.
    """
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(check_tracking_uri(tracking_uri))
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
    if not experiment_ids:
        return []
    running = client.search_runs(list(experiment_ids), filter_string="attributes.status = 'RUNNING'",
                                 run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
    ended = []
    for run in running:
        if not is_ghost(run):
            continue
        pid = run.data.tags.get(PID_TAG)
        client.set_tag(run.info.run_id, "error", f"its process (pid {pid} on {run.data.tags.get(HOST_TAG)}) "
                       "ended without ending the run (killed?); marked FAILED by a later Emotify command")
        client.set_tag(run.info.run_id, "error_type", "ProcessGone")
        client.set_terminated(run.info.run_id, status="FAILED")
        log.warning("run %s (%s) was RUNNING but its process %s is gone: marked FAILED", run.info.run_id,
                    run.info.run_name, pid)
        ended.append(run.info.run_id)
    return ended


def fault_point(name: str) -> None:
    """Sleep here when ``EMOTIFY_FAULT_PAUSE`` is ``<name>:<seconds>``: lets a test kill a real process at ``name``."""
    point, _, seconds = os.environ.get(FAULT_PAUSE, "").partition(":")
    if point == name:
        print(f"fault point {name}: pausing {seconds} s (pid {os.getpid()})", file=sys.stderr, flush=True)
        time.sleep(float(seconds or 60))


def disable_telemetry() -> bool:
    """Turn off MLflow's (and other libraries') usage telemetry for this process, unless the user opted in.

    Every entry point calls this when it starts (never at import time). ``EMOTIFY_ALLOW_TELEMETRY=1``
    leaves the libraries' own defaults. When MLflow is already imported, its telemetry client
    is reset so that the switch takes effect. Returns whether telemetry is now off.
    """
    if os.environ.get(TELEMETRY_OPT_IN, "").strip().lower() in ("1", "true", "yes"):
        return False
    os.environ.update(TELEMETRY_OFF)
    client_module = sys.modules.get("mlflow.telemetry.client")
    if client_module is not None:
        try:
            client_module.set_telemetry_client()
        except Exception as exc:  # noqa: BLE001 - a private MLflow API: never fail a command over it
            log.debug("could not reset MLflow's telemetry client: %s", exc)
    return True


def check_tracking_uri(tracking_uri: str | None) -> str:
    """``tracking_uri`` (default :data:`DEFAULT_TRACKING_URI`) if MLflow can use it as a store, else a clear error.

    Raises
    ------
    ConfigError
        An unknown scheme (``bogus://x``), or a local sqlite file or store folder that
        cannot be created because a part of its path is a file.
    """
    from urllib.parse import urlparse

    from emotify_ml.exceptions import ConfigError

    uri = tracking_uri or DEFAULT_TRACKING_URI
    if not isinstance(uri, str):
        raise ConfigError(f"tracking URI must be a string; got {uri!r}")
    scheme = urlparse(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter: a path
        scheme = ""
    if scheme.split("+")[0] not in TRACKING_SCHEMES:
        raise ConfigError(f"tracking URI {uri!r}: unknown scheme {scheme + '://'!r}; use sqlite:///path/mlflow.db, "
                          "a folder, or http(s)://<tracking server>")
    if scheme == "sqlite":
        path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
        if path and path != ":memory:":
            _check_local_path(Path(path).expanduser(), uri, ConfigError)
    elif scheme in ("", "file"):
        _check_local_path(Path(urlparse(uri).path if scheme else uri).expanduser() / "x", uri, ConfigError)
    return uri


def _check_local_path(path: Path, uri: str, error) -> None:
    """The folders above ``path`` must be folders (or not exist yet, to be created)."""
    for parent in list(path.parents)[::-1]:
        if parent.exists() and not parent.is_dir():
            raise error(f"tracking URI {uri!r}: {str(parent)!r} is a file, not a folder; "
                        "point tracking.uri at a file in a folder (sqlite:///path/mlflow.db)")
    if path.is_dir() and path.name != "x":
        raise error(f"tracking URI {uri!r}: {str(path)!r} is a folder, not a database file")


def error_tags(exc: BaseException) -> dict[str, str]:
    """The ``error`` / ``error_type`` tags of a failed run (and ``error_cause`` for a wrapped error)."""
    tags = {"error": f"{type(exc).__name__}: {exc}"[:5000], "error_type": type(exc).__name__}
    cause = exc.__cause__
    if cause is not None:
        tags["error_cause"] = f"{type(cause).__name__}: {cause}"[:5000]
    return tags


def _log_environment(client, run_id: str) -> None:
    """Package versions, and the uncommitted diff when the checkout is dirty, as artifacts of ``run_id``."""
    client.log_dict(run_id, package_versions(), "environment/packages.json")
    diff = git_diff()
    if diff:
        client.log_text(run_id, diff[:MAX_DIFF_CHARS], "environment/git_diff.patch")


@contextlib.contextmanager
def tracked_run(*, tracking_uri=None, experiment=DEFAULT_EXPERIMENT, run_name=None, nested=False,
                parent_run_id=None, run_id=None, config=None, tags=None):
    """Start an MLflow run that records provenance and ends FAILED on any exception.

    Parameters
    ----------
    tracking_uri : str, optional
        MLflow store (default :data:`DEFAULT_TRACKING_URI`).
    experiment : str
        MLflow experiment of the run.
    run_name : str, optional
        The run's display name.
    nested : bool
        Nest under the active run (also implied when a run is active).
    parent_run_id : str, optional
        Make the run a child of this run (a sweep's parent), which must exist, not be
        deleted and belong to ``experiment``, so the MLflow UI shows the two nested.
    run_id : str, optional
        Resume this existing run (an interrupted training) instead of starting one.
    config : dict, optional
        The composed config: logged as flat params and as ``config.json``.
    tags : dict, optional
        Extra tags.

    Yields
    ------
    mlflow.ActiveRun
        The started run. Logged on start: the config, git commit, branch and dirty flag,
        the command line, package versions (``environment/packages.json``) and, from a
        dirty checkout, the uncommitted diff (``environment/git_diff.patch``).

    Raises
    ------
    ValueError
        ``parent_run_id`` is unknown, deleted, or in another experiment.

    Notes
    -----
    On an exception the run is tagged ``error`` / ``error_type`` (and ``error_cause``)
    and ended ``FAILED`` (``KILLED`` on Ctrl-C, or on SIGTERM where the entry point turns it
    into ``KeyboardInterrupt``) before the exception propagates. The run carries the
    owning process (``emotify.pid`` / ``emotify.host``): if that process is killed outright,
    the next run in the experiment marks it FAILED (:func:`end_ghost_runs`).
    """
    import mlflow

    exp = set_tracking(tracking_uri, experiment)
    end_ghost_runs(tracking_uri=tracking_uri, experiment_ids=[exp.experiment_id])
    if parent_run_id and run_id is None:
        _check_parent(parent_run_id, exp)
    run_tags = {**provenance_tags(), **(tags or {})}
    with contextlib.ExitStack() as stack:
        run = stack.enter_context(
            mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name,
                             nested=nested or mlflow.active_run() is not None,
                             parent_run_id=parent_run_id if run_id is None else None, tags=run_tags)
        )
        try:
            if config is not None and run_id is None:
                log_params_flat(config)
                mlflow.log_dict(config, "config.json")
            _log_environment(mlflow.MlflowClient(), run.info.run_id)
            yield run
        except BaseException as exc:
            mlflow.set_tags(error_tags(exc))
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            mlflow.end_run(status=status)
            raise


def _check_parent(parent_run_id: str, experiment) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        parent = MlflowClient().get_run(parent_run_id)
    except MlflowException:
        raise ValueError(f"parent_run_id {parent_run_id!r} is not a run of this tracking store") from None
    if parent.info.lifecycle_stage == "deleted":
        raise ValueError(f"parent run {parent_run_id} is deleted")
    if parent.info.experiment_id != experiment.experiment_id:
        raise ValueError(f"parent run {parent_run_id} belongs to experiment id {parent.info.experiment_id}, "
                         f"not to {experiment.name!r} (id {experiment.experiment_id}); a sweep's runs share "
                         "one experiment, so do not sweep over tracking.experiment")


def log_json(obj, artifact_file: str) -> None:
    """Log a JSON-serialisable object as an artifact."""
    import mlflow

    mlflow.log_text(json.dumps(obj, indent=2, default=str), artifact_file)


# ---------------------------------------------------------------- sweeps: one parent run, a child per job


def start_sweep(*, tracking_uri=None, experiment=DEFAULT_EXPERIMENT, run_name=None, config=None,
                tags=None) -> str:
    """Create the parent run of a sweep and return its id.

    The run is created through the client, not made active in this process, so
    the sweep's jobs (in this process or in others) start their own runs with
    ``tracked_run(parent_run_id=...)``. End it with :func:`end_sweep`.

    Parameters
    ----------
    tracking_uri, experiment : str
        Store and experiment shared by the parent and its children.
    run_name : str, optional
        Display name of the parent.
    config : dict, optional
        The sweep's config (search space, launcher...), logged as ``sweep_config.json``.
    tags : dict, optional
        Extra tags (e.g. the sweep's overrides and folder).

    Returns
    -------
    str
        The parent's run id.
    """
    from mlflow import MlflowClient

    client = MlflowClient(check_tracking_uri(tracking_uri))
    exp_id = _experiment_id(client, experiment, create=True)
    run = client.create_run(exp_id, run_name=run_name,
                            tags={**provenance_tags(), SWEEP_TAG: "parent", **(tags or {})})
    if config is not None:
        client.log_text(run.info.run_id, json.dumps(config, indent=2, default=str), "sweep_config.json")
    _log_environment(client, run.info.run_id)
    return run.info.run_id


def end_sweep(parent_run_id: str, *, tracking_uri=None, metric: str = DEFAULT_METRIC, mode: str = "max",
              error: str | None = None) -> dict:
    """Summarise a sweep's children on its parent run and end it.

    The parent gets ``n_jobs`` / ``n_finished`` / ``n_failed`` and, when a child
    finished with ``metric``, ``best_<metric>`` with the best child's test metrics
    (reported only), tags ``best_run_id`` / ``best_run_name``, and the comparison
    table of its children (``sweep_summary.csv`` / ``.md``). It ends ``FINISHED``
    when every child finished, else ``FAILED`` with an ``error`` tag. A parent that
    already ended is left as it is.

    Parameters
    ----------
    parent_run_id : str
        The id returned by :func:`start_sweep`.
    tracking_uri : str, optional
        The store holding it.
    metric, mode : str
        Validation metric choosing the best child, and whether higher (``max``) or lower is better.
    error : str, optional
        Why the sweep stopped early; ends the parent ``FAILED`` whatever the children did.

    Returns
    -------
    dict
        ``status``, the counts, and ``best_run_id`` / ``best_run_name`` / ``best_value`` (None without a best).
    """
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag

    check_selection_metric(metric, mode)
    now = int(time.time() * 1000)
    client = MlflowClient(tracking_uri or DEFAULT_TRACKING_URI)
    parent = client.get_run(parent_run_id)
    if parent.info.status != "RUNNING":
        return {"status": parent.info.status, "already_ended": True}
    children = search_runs(tracking_uri=tracking_uri, experiment_ids=[parent.info.experiment_id],
                           parent_run_id=parent_run_id)
    failed = [r for r in children if r.info.status != "FINISHED"]
    ranked = rank_runs(children, metric, mode)
    best = ranked[0] if ranked else None
    summary = {"n_jobs": len(children), "n_finished": len(children) - len(failed), "n_failed": len(failed),
               "best_run_id": best.info.run_id if best else None,
               "best_run_name": best.info.run_name if best else None,
               "best_value": best.data.metrics[metric] if best else None, "metric": metric}
    metrics = {k: float(summary[k]) for k in ("n_jobs", "n_finished", "n_failed")}
    tags = {"selection_metric": metric, "selection_mode": mode}
    if best is not None:
        metrics.update({f"best_{k}": v for k, v in best.data.metrics.items() if k in COMPARE_METRICS or k == metric})
        tags.update({"best_run_id": best.info.run_id, "best_run_name": best.info.run_name or ""})
    if children:
        table = comparison_table(children, metric=metric, mode=mode)
        client.log_text(parent_run_id, table.to_csv(index=False), "sweep_summary.csv")
        client.log_text(parent_run_id, markdown_table(table), "sweep_summary.md")
    if error is None and not children:
        error = "the sweep produced no job runs"
    elif error is None and failed:
        error = f"{len(failed)} of {len(children)} jobs failed: " + ", ".join(
            r.info.run_name or r.info.run_id for r in failed)
    if error:
        tags["error"] = error[:5000]
    client.log_batch(parent_run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                     tags=[RunTag(k, str(v)) for k, v in tags.items()])
    summary["status"] = "FAILED" if error else "FINISHED"
    client.set_terminated(parent_run_id, status=summary["status"])
    return summary


# ---------------------------------------------------------------- finding, ranking and comparing runs


def check_selection_metric(metric: str, mode: str = "max") -> None:
    """Refuse a selection metric that is not a validation metric, or an unknown ``mode``.

    Raises
    ------
    ValueError
        ``metric`` does not start with ``val_`` (the test split is reported, never
        used to choose), or ``mode`` is not ``max`` / ``min``.
    """
    if not isinstance(metric, str) or not metric.startswith("val_"):
        raise ValueError(f"selection metric must be a validation (PublicTest) metric named val_*, "
                         f"e.g. val_accuracy or val_macro_f1; got {metric!r} (test metrics are reported, "
                         "never used to choose)")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' (higher is better) or 'min'; got {mode!r}")


def _experiment_id(client, experiment: str, *, create: bool = False) -> str:
    """Id of the experiment named ``experiment`` (created when ``create`` and it does not exist)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(experiment)
    if exp is not None and exp.lifecycle_stage != "deleted":
        return exp.experiment_id
    if create and exp is None:
        try:
            return client.create_experiment(experiment, artifact_location=artifact_location(client.tracking_uri))
        except MlflowException:  # created meanwhile by a parallel job
            exp = client.get_experiment_by_name(experiment)
            if exp is not None:
                return exp.experiment_id
            raise
    names = sorted(e.name for e in client.search_experiments())
    raise ValueError(f"experiment {experiment!r} does not exist in the tracking store "
                     f"{client.tracking_uri!r} (or is deleted: restore it in the MLflow UI, or choose another name); "
                     f"its experiments: {', '.join(names) or 'none'}")


def search_runs(*, tracking_uri=None, experiment: str | None = None, experiment_ids=None, parent_run_id=None,
                include_parents: bool = False, max_results: int = 5000) -> list:
    """Runs of an experiment (or of one sweep), newest first.

    Parameters
    ----------
    tracking_uri : str, optional
        The store.
    experiment : str, optional
        Experiment name; or give ``experiment_ids``.
    parent_run_id : str, optional
        Only the children of this sweep parent (``"latest"``: of the newest sweep in the experiment).
    include_parents : bool
        Keep sweep parent runs (they hold summaries, not models); default False.
    max_results : int
        Upper bound on the runs returned.

    Returns
    -------
    list of mlflow.entities.Run

    Raises
    ------
    ValueError
        The experiment does not exist, or ``"latest"`` finds no sweep.
    """
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(check_tracking_uri(tracking_uri))
    if experiment_ids is None:
        experiment_ids = [_experiment_id(client, experiment or DEFAULT_EXPERIMENT)]
    if parent_run_id == "latest":
        parent_run_id = latest_sweep(client, experiment_ids)
    query = f"tags.`{PARENT_TAG}` = '{parent_run_id}'" if parent_run_id else ""
    runs, token = [], None
    while len(runs) < max_results:
        page = client.search_runs(experiment_ids, filter_string=query, run_view_type=ViewType.ACTIVE_ONLY,
                                  max_results=min(1000, max_results - len(runs)),
                                  order_by=["attributes.start_time DESC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return [r for r in runs if include_parents or r.data.tags.get(SWEEP_TAG) != "parent"]


def latest_sweep(client, experiment_ids) -> str:
    """Id of the newest sweep parent run in ``experiment_ids``."""
    from mlflow.entities import ViewType

    found = client.search_runs(experiment_ids, filter_string=f"tags.`{SWEEP_TAG}` = 'parent'",
                               run_view_type=ViewType.ACTIVE_ONLY, max_results=1,
                               order_by=["attributes.start_time DESC"])
    if not found:
        raise ValueError(f"no sweep parent run in experiment ids {list(experiment_ids)}; "
                         "run a sweep with `python -m pipelines.run -m ...` first")
    return found[0].info.run_id


def rank_runs(runs, metric: str = DEFAULT_METRIC, mode: str = "max") -> list:
    """FINISHED runs that logged ``metric``, best first (ties: the earlier run first).

    Runs that failed, were killed or are still running are never ranked, so
    never chosen.
    """
    check_selection_metric(metric, mode)
    ok = [r for r in runs if r.info.status == "FINISHED" and _finite(r.data.metrics.get(metric))]
    sign = -1.0 if mode == "max" else 1.0
    return sorted(ok, key=lambda r: (sign * r.data.metrics[metric], r.info.start_time or 0, r.info.run_id))


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def comparison_table(runs, *, metric: str = DEFAULT_METRIC, mode: str = "max", max_param_columns: int = 8):
    """One row per run: name, experiment, status, the params that differ between runs, and the key metrics.

    Parameters
    ----------
    runs : list of mlflow.entities.Run
        E.g. from :func:`search_runs`.
    metric, mode : str
        The validation metric that orders the rows (best first; runs without it last).
    max_param_columns : int
        At most this many varying params become columns (the first in sorted order).

    Returns
    -------
    pandas.DataFrame
        Columns ``run``, ``experiment``, ``status``, ``features``, ``classifier``, the
        varying params, the metrics of :data:`COMPARE_METRICS` (``faces_per_s`` is
        throughput at batch 256, ``ms_per_face`` latency at batch 1), ``data_hash``
        (12 characters) and ``run_id``.
    """
    import pandas as pd

    check_selection_metric(metric, mode)
    runs = sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))  # ties: the earlier run first
    params = [r.data.params for r in runs]
    skip = ("tracking.", "dataset.root", "data.root", "name")
    keys = sorted({k for p in params for k in p})
    varying = [k for k in keys if not k.startswith(skip) and k not in ("classifier._target_",)
               and not k.endswith("._target_") and len({p.get(k) for p in params}) > 1][:max_param_columns]
    rows = []
    for run, p in zip(runs, params):
        m = run.data.metrics
        row = {"run": run.info.run_name, "experiment": run.data.tags.get("experiment_name", ""),
               "status": run.info.status,
               "features": "+".join(sorted({k.split(".")[1] for k in p if k.startswith("features.")})) or "-",
               "classifier": p.get("classifier._target_", "").rsplit(".", 1)[-1]}
        row.update({k: p.get(k) for k in varying})
        row.update({col: m.get(key) for key, col in COMPARE_METRICS.items()})
        if metric not in COMPARE_METRICS:
            row[metric] = m.get(metric)
        row.update({"data_hash": (p.get("dataset.hash") or "")[:12], "run_id": run.info.run_id})
        rows.append(row)
    columns = ["run", "experiment", "status", "features", "classifier", *varying, *COMPARE_METRICS.values(),
               *([metric] if metric not in COMPARE_METRICS else []), "data_hash", "run_id"]
    frame = pd.DataFrame(rows, columns=columns)
    order_col = COMPARE_METRICS.get(metric, metric)
    return frame.sort_values(order_col, ascending=mode == "min", na_position="last", kind="stable",
                             ignore_index=True)


def markdown_table(frame, floatfmt: str = ".4f") -> str:
    """A DataFrame as a GitHub markdown table (floats with ``floatfmt``, missing values empty)."""
    def cell(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        text = format(v, floatfmt) if isinstance(v, float) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_table(frame, out_dir, stem: str = "comparison") -> tuple[Path, Path]:
    """Write ``frame`` as ``<out_dir>/<stem>.csv`` and ``<stem>.md``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    frame.to_csv(csv_path, index=False)
    md_path.write_text(markdown_table(frame))
    return csv_path, md_path
