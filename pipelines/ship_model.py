"""Ship a model inside the package: ``python -m pipelines.ship_model [model=models:/emotify-emotion@champion]``.

Copies the chosen MLflow model into ``emotify_ml/models/shipped/emotion`` (the fallback of live
and batch scoring when no registry exists), with its source run's id, metrics and
data identity in ``provenance.json``.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from pipelines._common import CONFIG_PATH, exit_on_error

log = logging.getLogger("emotify.ship_model")


@hydra.main(config_path=CONFIG_PATH, config_name="ship_model", version_base="1.3")
@exit_on_error
def main(cfg: DictConfig) -> None:
    import mlflow

    from emotify_ml.exceptions import ModelNotFoundError
    from emotify_ml.mlflow_runs import check_tracking_uri
    from emotify_ml.model import SHIPPED_MODEL_DIR, export_model
    from emotify_ml.registry import current_champion

    mlflow.set_tracking_uri(check_tracking_uri(cfg.tracking.uri))
    uri = cfg.model
    provenance = {}
    run_id = None
    if uri.startswith("models:/"):
        name, _, alias = uri[len("models:/"):].partition("@")
        version = current_champion(name, alias, tracking_uri=cfg.tracking.uri) if alias else None
        if alias and version is None:
            raise ModelNotFoundError(f"{uri} does not exist in the tracking store {cfg.tracking.uri!r}: promote a run "
                                     "first (python -m pipelines.promote) or pass model=<runs:/... or folder>")
        run_id = version.run_id if version else None
        provenance["registered_version"] = f"{name}/{version.version}" if version else None
    elif uri.startswith("runs:/"):
        run_id = uri[len("runs:/"):].split("/")[0]
    if run_id:
        run = mlflow.get_run(run_id)
        provenance.update(run_id=run_id, run_name=run.info.run_name, git_commit=run.data.tags.get("git_commit"),
                          metrics={k: v for k, v in sorted(run.data.metrics.items())
                                   if k.split("_")[0] in ("val", "test", "train", "items", "ms")},
                          params={k: v for k, v in run.data.params.items()
                                  if k.startswith(("dataset.", "features.", "classifier.", "pipeline.", "experiment"))})
    dest = export_model(uri, cfg.dest or SHIPPED_MODEL_DIR, provenance=provenance)
    log.info("shipped %s to %s", uri, dest)


if __name__ == "__main__":
    main()
