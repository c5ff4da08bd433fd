"""Every config in experiments/ composes with Hydra's compose API, and every experiment's objects build.

No data is loaded and nothing is fitted: each experiment's features, classifier, pipeline and
model logger are instantiated from their ``_target_`` (a renamed function or a wrong parameter
name fails here), and each top-level config resolves all its interpolations.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
EXPERIMENT_NAMES = sorted(p.stem for p in (EXPERIMENTS / "experiment").glob("*.yaml"))
TOP_LEVEL = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))
REQUIRED = {"score_batch": ["input=photos", "output=scores"], "export": ["model=emotify_ml/models/shipped/emotion"]}
"""Top-level configs with mandatory values (``???``), and values that fill them."""


def _compose(name: str, overrides=()):
    """The composed config with its ``hydra`` node set, as a run sees it (``${hydra:...}`` resolves), then removed."""
    from hydra.core.hydra_config import HydraConfig

    with initialize_config_dir(config_dir=str(EXPERIMENTS), version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            cfg.pop("hydra")
        OmegaConf.resolve(cfg)  # in place, while HydraConfig is set: a broken interpolation fails here
        OmegaConf.to_container(cfg, throw_on_missing=True)  # and so does a mandatory value left unset
        return cfg


def test_every_experiment_is_listed():
    assert len(EXPERIMENT_NAMES) >= 11 and {"svm_hog", "cnn_svm", "action_pose_robust"} <= set(EXPERIMENT_NAMES)
    assert {"run", "train_backbone", "promote", "compare", "ship_model", "score_batch"} <= set(TOP_LEVEL)


@pytest.mark.parametrize("experiment", EXPERIMENT_NAMES)
def test_experiment_composes_and_its_objects_build(experiment):
    from hydra.utils import get_method

    from pipelines._common import build

    cfg = _compose("run", [f"experiment={experiment}"])
    assert cfg.name == experiment
    assert callable(get_method(cfg.data._target_))  # the loader exists (it is not called: no data is read)
    features = {k: build(v) for k, v in cfg.features.items()} if cfg.get("features") else None
    pipeline = build(cfg.pipeline)(features=features, classifier=build(cfg.classifier))
    assert hasattr(pipeline, "fit") and hasattr(pipeline, "predict_proba")
    assert callable(build(cfg.model_logger))


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_top_level_config_composes(name):
    if name == "score_batch":
        from pipelines.score_batch import register_schema

        register_schema()
    cfg = _compose(name, REQUIRED.get(name, ()))
    if name == "score_batch":
        from pipelines.score_batch import to_options

        assert to_options(cfg).check().input == "photos"


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENT_NAMES)
def test_experiment_model_round_trips_through_skops(experiment, tmp_path):
    """Fitted on a slice of the bundled sample, every experiment's model saves and loads with only trusted types."""
    import numpy as np

    from emotify_ml.models import FittedModel, load_model, write_pyfunc
    from pipelines._common import build

    cfg = _compose("run", [f"experiment={experiment}"])
    kind = "action" if experiment.startswith("action") else "emotion"
    overrides = {"max_train": 120} if kind == "action" else {}
    splits = build(OmegaConf.merge(cfg.data, overrides))
    features = {k: build(v) for k, v in cfg.features.items()} if cfg.get("features") else None
    pipeline = build(cfg.pipeline)(features=features, classifier=build(cfg.classifier))
    small = {"epochs": 1, "n_estimators": 5, "max_iter": 20, "n_components": 20, "n_networks": 1}
    pipeline.set_params(**{k: small[k.rsplit("__", 1)[-1]] for k in pipeline.get_params(deep=True)
                           if k.rsplit("__", 1)[-1] in small})  # the same types, fitted in seconds
    X, y = (splits.X_train, splits.y_train) if kind == "action" else (splits.images[:140], splits.labels[:140])
    pipeline.fit(X, y)
    folder = write_pyfunc(pipeline, kind=kind, path=tmp_path / "model")
    loaded = load_model(folder, kind=kind, runtime="keras")
    np.testing.assert_array_equal(loaded.predict_proba(X[:20]), FittedModel(pipeline, kind=kind).predict_proba(X[:20]))
