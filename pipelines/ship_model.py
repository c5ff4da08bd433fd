"""Ship a model inside the package: ``python -m pipelines.ship_model [model=models:/emotify-emotion@champion]``.

Copies the chosen MLflow model into ``emotify_ml/models/shipped/<kind>`` (the fallback of live,
batch and serve scoring when no registry exists), with its source run's id, metrics and data
identity in ``provenance.json``. The URI is resolved once by :func:`emotify_ml.models.resolve_model`
(an alias pinned to its version, which the provenance records). A model folder of an older Emotify
(a pickle) is refused unless ``trust_pickle=true``, which converts it once to the skops format.
An emotion model is compiled (as ``pipelines.export``) and, when it came from the tracking store,
the compiled artifact is stored in that MLflow model too (``store_compiled=true``), so the store's
champion and the shipped copy score alike.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pipelines._common import CONFIG_PATH, config_errors_exit_2, exit_on_error

log = logging.getLogger("emotify.ship_model")


@config_errors_exit_2
@hydra.main(config_path=CONFIG_PATH, config_name="ship_model", version_base="1.3")
@exit_on_error
def main(cfg: DictConfig) -> None:
    import mlflow

    from emotify_ml.exceptions import ModelNotFoundError
    from emotify_ml.mlflow_runs import check_tracking_uri
    from emotify_ml.models import KINDS, export_model, resolve_model
    from emotify_ml.models.resolve import is_remote
    from emotify_ml.models.loading import model_kind
    from emotify_ml.registry import store_compiled, stored_model_id
    from emotify_ml.runtime import compiled_dir, has_compiled

    tracking_uri = check_tracking_uri(cfg.tracking.uri)
    uri = str(cfg.model)
    try:
        resolved = resolve_model(uri, kind=cfg.kind or "emotion", tracking_uri=tracking_uri,
                                 allow_remote=cfg.allow_remote_model)
    except ModelNotFoundError as exc:
        if uri.startswith("models:/") and "@" in uri:
            raise ModelNotFoundError(f"{uri} does not exist in the tracking store {cfg.tracking.uri!r}: promote a run "
                                     "first (python -m pipelines.promote) or pass model=<runs:/... or folder>") from exc
        raise
    provenance = {"source": uri}
    run_id = None
    if resolved.version is not None:
        provenance["registered_version"] = f"{resolved.name}/{resolved.version}"
        run_id = mlflow.MlflowClient().get_model_version(resolved.name, resolved.version).run_id
    elif uri.startswith("runs:/"):
        run_id = uri[len("runs:/"):].split("/")[0]
    if run_id:
        run = mlflow.get_run(run_id)
        provenance.update(run_id=run_id, run_name=run.info.run_name, git_commit=run.data.tags.get("git_commit"),
                          metrics={k: v for k, v in sorted(run.data.metrics.items())
                                   if k.split("_")[0] in ("val", "test", "train", "items", "ms")},
                          params={k: v for k, v in run.data.params.items()
                                  if k.startswith(("dataset.", "features.", "classifier.", "pipeline.", "experiment"))})
    kind = cfg.kind or model_kind(resolved)
    dest = Path(cfg.dest or KINDS[kind].shipped_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-", dir=dest.parent))
    try:  # assembled (and compiled) beside dest, swapped in at the end: a failure leaves dest as it was
        staged = export_model(resolved, staging / "model", kind=kind, provenance=provenance,
                              trust_pickle=cfg.trust_pickle)
        if kind == "emotion" and cfg.compile:
            compile_shipped(staged, resolved)
            if (cfg.store_compiled and has_compiled(staged) and not is_remote(tracking_uri)
                    and stored_model_id(resolved, required=False)):  # a remote store is only read from here
                store_compiled(resolved, compiled_dir(staged), tracking_uri=tracking_uri)
        if dest.exists():
            dest.rename(staging / "previous")
        staged.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("shipped %s (%s model) to %s", resolved.uri, kind, dest)


def compile_shipped(folder: Path, resolved) -> None:
    """The TF-free compiled runtime (as ``pipelines.export``) in ``folder``; a model that cannot be compiled ships
    without it, any other failure is one :class:`ModelError` line and nothing is shipped."""
    from emotify_ml.exceptions import ModelError
    from emotify_ml.runtime.export import ExportError
    from pipelines.export import compile_folder

    try:
        compile_folder(folder, resolved)
    except ExportError as exc:
        log.info("not compiled (scoring keeps the keras pipeline): %s", exc)
    except Exception as exc:  # noqa: BLE001 - any failure: the shipped folder stays as it was
        line = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ModelError(f"not shipped: compiling {resolved.uri} failed ({line}); the shipped folder is unchanged "
                         "(compile=false ships it without the compiled runtime)") from exc


if __name__ == "__main__":
    main()
