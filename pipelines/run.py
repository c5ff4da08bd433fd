"""Run one experiment: ``python -m pipelines.run experiment=svm_hog [data.root=...]``.

Composes the configs under experiments/, builds the Pipeline from ``_target_``s,
fits on train, reports validation and test, and tracks the run in MLflow
(config, provenance, metrics, plots, the model). Multirun (``-m``) sweeps work
as usual; each job is its own MLflow run.
"""

from __future__ import annotations

import logging

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from pipelines._common import CONFIG_PATH, exit_on_error, to_dict

log = logging.getLogger("emotify.run")


def as_splits(data):
    """The experiment's splits from what the data config instantiates."""
    from emotify_ml.experiment import Splits

    return data if isinstance(data, Splits) else data.to_splits()


def run(cfg: DictConfig) -> dict:
    """Execute one composed config; returns the logged metrics."""
    import mlflow

    from emotify_ml.tracking import tracked_run

    config = to_dict(cfg)
    name = config.get("name") or "run"
    with tracked_run(tracking_uri=config["tracking"]["uri"], experiment=config["tracking"]["experiment"],
                     run_name=name, config=config, tags={"experiment_name": name}) as active:
        from emotify_ml.experiment import run_experiment

        import keras  # noqa: F401 - seeds every generator the pipeline may use

        keras.utils.set_random_seed(config["seed"])
        log.info("loading data")
        splits = as_splits(instantiate(cfg.data, _convert_="all"))
        mlflow.log_params({f"dataset.{k}": v for k, v in splits.identity.items()})
        features = {k: instantiate(v, _convert_="all") for k, v in cfg.features.items()} if cfg.get("features") else None
        pipeline = instantiate(cfg.pipeline, _convert_="all")(
            features=features, classifier=instantiate(cfg.classifier, _convert_="all"))
        mlflow.log_text(str(pipeline), "pipeline.txt")
        model_logger = instantiate(cfg.model_logger, _convert_="all") if cfg.get("model_logger") else None
        metrics = run_experiment(pipeline, splits, model_logger=model_logger)
        log.info("run %s: val accuracy %.4f, test accuracy %.4f", active.info.run_id,
                 metrics.get("val_accuracy", float("nan")), metrics.get("test_accuracy", float("nan")))
        return metrics


@hydra.main(config_path=CONFIG_PATH, config_name="run", version_base="1.3")
@exit_on_error
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the validation accuracy (the sweep objective)."""
    return run(cfg)["val_accuracy"]


if __name__ == "__main__":
    main()
