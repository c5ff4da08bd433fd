"""Run one experiment: ``python -m pipelines.run experiment=svm_hog [data.root=...]``.

Composes the configs under experiments/, builds the Pipeline from ``_target_``s,
fits on train, reports validation and test, and tracks the run in MLflow
(config, provenance, metrics, plots, the model). A multirun (``-m``) is one
MLflow parent run with a child run per job (:mod:`pipelines.callbacks`); the
value main returns, the sweep objective, is the validation metric
``selection.metric`` (default ``val_accuracy``), never a test metric; NaN for a
final refit without a validation split (``data.val_size=0``).
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from pipelines._common import CONFIG_PATH, build, config_errors_exit_2, exit_on_error, job_info, to_dict

log = logging.getLogger("emotify.run")


def as_splits(data):
    """The experiment's splits from what the data config instantiates."""
    from emotify_ml.experiment import Splits

    return data if isinstance(data, Splits) else data.to_splits()


def run(cfg: DictConfig) -> dict:
    """Execute one composed config; returns the logged metrics."""
    import mlflow

    from emotify_ml.mlflow_runs import tracked_run

    from pipelines.callbacks import sweep_parent_of_job

    config = to_dict(cfg)
    name = config.get("name") or "run"
    job = job_info()
    tags = {"experiment_name": name, "seed": str(config.get("seed")),
            "reproduce": " ".join(["python -m pipelines.run", *job["overrides"]])[:5000]}
    if job["multirun"]:
        tags["sweep_job"] = str(job["num"])
    with tracked_run(tracking_uri=config["tracking"]["uri"], experiment=config["tracking"]["experiment"],
                     run_name=f"{name}-{job['num']}" if job["multirun"] else name,
                     parent_run_id=sweep_parent_of_job(), config=config, tags=tags) as active:
        from emotify_ml.experiment import run_experiment
        from emotify_ml.mlflow_runs import fault_point

        fault_point("run_started")

        log.info("loading data")
        splits = as_splits(build(cfg.data))
        mlflow.log_params({f"dataset.{k}": v for k, v in splits.identity.items()})

        from emotify_ml.extras import set_random_seed

        set_random_seed(config["seed"])  # every generator the pipeline may use (Keras' too when installed)
        features = {k: build(v) for k, v in cfg.features.items()} if cfg.get("features") else None
        pipeline = build(cfg.pipeline)(features=features, classifier=build(cfg.classifier))
        check_params(pipeline, cfg)
        mlflow.log_text(str(pipeline), "pipeline.txt")
        model_logger = build(cfg.model_logger) if cfg.get("model_logger") else None
        metrics = run_experiment(pipeline, splits, model_logger=model_logger)
        log.info("run %s: val accuracy %.4f, test accuracy %.4f", active.info.run_id,
                 metrics.get("val_accuracy", float("nan")), metrics.get("test_accuracy", float("nan")))
        return metrics


def check_params(estimator, cfg: DictConfig) -> None:
    """Validate the parameters of every sklearn estimator in ``estimator`` before fitting.

    A bad value (``classifier.C=abc``) would otherwise surface deep inside the fit,
    blaming an sklearn helper (``cross_val_predict``); here the error names the config key.

    Raises
    ------
    ConfigError
        A parameter value is of the wrong type or out of range.
    """
    import re

    from sklearn.base import BaseEstimator
    from sklearn.utils._param_validation import InvalidParameterError

    from emotify_ml.exceptions import ConfigError

    found = [estimator] + [v for v in estimator.get_params(deep=True).values() if isinstance(v, BaseEstimator)]
    for est in found:
        validate = getattr(est, "_validate_params", None)
        if validate is None or not hasattr(est, "_parameter_constraints"):
            continue
        try:
            validate()
        except InvalidParameterError as exc:
            name = re.search(r"The '(\w+)' parameter", str(exc))
            keys = [k for k in _config_keys(cfg) if name and k.rsplit(".", 1)[-1] == name.group(1)]
            where = " or ".join(f"{k}={OmegaConf.select(cfg, k)!r}" for k in keys) or type(est).__name__
            raise ConfigError(f"{where} is invalid: {exc}") from None
        except Exception:  # noqa: BLE001 - a best-effort early check; the fit reports anything else
            continue


def _config_keys(cfg: DictConfig) -> list[str]:
    """Dotted keys of the model's config groups (``classifier.C``, ``features.hog.orientations``)."""
    from emotify_ml.mlflow_runs import flatten

    plain = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("classifier", "features", "pipeline")
             if isinstance(cfg.get(k), DictConfig)}
    return list(flatten(plain))


def check_experiment(choices: dict) -> None:
    """Refuse an ``experiment=<name>`` that names no config in ``experiments/experiment/``.

    The runner's defaults list holds the experiment as ``optional``, so Hydra itself would
    silently train the base config under the unknown name.

    Raises
    ------
    ConfigError
        Naming the experiment and listing the known ones.
    """
    from hydra.core.global_hydra import GlobalHydra

    from emotify_ml.exceptions import ConfigError

    name = choices.get("experiment")
    if name is None:
        return
    if GlobalHydra.instance().is_initialized():
        known = GlobalHydra.instance().config_loader().get_group_options("experiment")
    else:
        from pathlib import Path

        known = sorted(p.stem for p in (Path(__file__).resolve().parent / CONFIG_PATH / "experiment").glob("*.yaml"))
    if name not in known:
        raise ConfigError(f"experiment={name!r} is not an experiment config; choose one of: {', '.join(known)}")


def compose(overrides=()) -> DictConfig:
    """The runner's config for command-line ``overrides``, to call :func:`run` from Python (a notebook, a test).

    Parameters
    ----------
    overrides : sequence of str
        As on the command line, e.g. ``["experiment=svm_hog", "classifier.C=0.1"]``.

    Returns
    -------
    DictConfig
        The composed config without its ``hydra`` node; ``${hydra:...}`` values resolve
        because the Hydra config of this composition is made current.

    Examples
    --------
    >>> metrics = run(compose(["experiment=svm_hog", "classifier.kernel=linear"]))   # doctest: +SKIP
    """
    from pathlib import Path

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    config_dir = (Path(__file__).resolve().parent / CONFIG_PATH).resolve()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3", job_name="run"):
        cfg = hydra_compose(config_name="run", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    check_experiment(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


@config_errors_exit_2
@hydra.main(config_path=CONFIG_PATH, config_name="run", version_base="1.3")
@exit_on_error
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the validation metric ``selection.metric`` (the sweep objective)."""
    from hydra.core.hydra_config import HydraConfig

    from emotify_ml.mlflow_runs import DEFAULT_METRIC, check_selection_metric

    check_experiment(HydraConfig.get().runtime.choices)
    selection = cfg.get("selection") or {}
    metric = selection.get("metric", DEFAULT_METRIC)
    check_selection_metric(metric, selection.get("mode", "max"))
    metrics = run(cfg)
    if metric in metrics:
        return metrics[metric]
    if not any(k.startswith("val_") for k in metrics):  # a final refit without a validation split (data.val_size=0)
        return float("nan")
    raise ValueError(f"selection.metric {metric!r} was not logged; validation metrics are "
                     f"{sorted(k for k in metrics if k.startswith('val_') and '_baseline_' not in k)[:12]}...")


if __name__ == "__main__":
    main()
