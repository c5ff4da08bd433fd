"""Shared fixtures: small deterministic faces, the bundled sample, temporary MLflow stores."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMOTIFY_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Caches and MLflow stores of a test live in its tmp dir; no telemetry."""
    monkeypatch.setenv("EMOTIFY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")


@pytest.fixture
def tracking_uri(tmp_path):
    """A fresh sqlite MLflow store for one test."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory):
    """An empty, migrated sqlite MLflow store: creating one takes seconds, copying it milliseconds."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("empty_store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def copied_store_uri(tmp_path, empty_mlflow_store):
    """Like ``tracking_uri``, a fresh sqlite store for one test, but copied from :func:`empty_mlflow_store`."""
    import shutil

    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _absl_never_closes_pytests_capture(monkeypatch):
    """TensorFlow's absl log handler writes to the stderr that pytest was capturing when TF was imported.

    Hydra's logging set-up (``dictConfig``) closes every handler, and absl's closes its stream unless it
    is the current ``sys.stderr`` (``capsys`` swaps that), which would close pytest's own capture file
    and end the session; in a test, closing absl's handler leaves the stream open.
    """
    absl = sys.modules.get("absl.logging")
    if absl is not None:
        handler = absl.get_absl_handler().python_handler
        monkeypatch.setattr(handler, "close", lambda: None)


@pytest.fixture
def hydra_main(monkeypatch):
    """Run ``python -m <module> <overrides>`` in-process: ``hydra_main("pipelines.compare", "metric=...")``.

    Hydra finds experiments/ as with ``python -m``; the root logger's handlers Hydra installs
    (writing to this test's captured stdout) are removed afterwards."""
    import importlib
    import logging

    def main(module: str, *overrides):
        monkeypatch.setenv("HYDRA_MAIN_MODULE", "__main__")
        monkeypatch.setattr(sys, "argv", [module, *overrides])
        root = logging.getLogger()
        monkeypatch.setattr(root, "handlers", list(root.handlers))
        monkeypatch.setattr(root, "level", root.level)
        return importlib.import_module(module).main()

    return main


@pytest.fixture(scope="session")
def person_photo() -> np.ndarray:
    """A real photograph of one person, BGR (512x512): head, torso and arms, legs cut by the frame.

    scikit-image's bundled ``astronaut`` (NASA, public domain), so nothing is fetched.
    """
    import cv2
    import skimage.data

    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def synthetic_faces(n: int = 14, size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cartoon faces whose mouth curvature depends on the class: learnable, deterministic, tiny."""
    import cv2

    rng = np.random.default_rng(seed)
    faces, labels = [], []
    for i in range(n):
        label = i % 7
        img = np.full((size, size), 40, np.uint8)
        c = size // 2
        cv2.ellipse(img, (c, c), (int(size * 0.35), int(size * 0.45)), 0, 0, 360, 170, -1)
        for dx in (-size // 6, size // 6):
            cv2.circle(img, (c + dx, int(size * 0.4)), max(1, size // 16), 30, -1)
        curve = (label - 3) * size // 24
        cv2.ellipse(img, (c, int(size * 0.68)), (size // 5, max(1, abs(curve))), 0,
                    0 if curve >= 0 else 180, 180 if curve >= 0 else 360, 60, 2)
        img = np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
        faces.append(img)
        labels.append(label)
    return np.stack(faces), np.array(labels)


@pytest.fixture
def faces():
    return synthetic_faces()


@pytest.fixture(scope="session")
def hog_model_dir(tmp_path_factory) -> str:
    """A tiny HOG + logistic-regression emotion model fitted on :func:`synthetic_faces`, saved as an MLflow model folder."""
    from sklearn.linear_model import LogisticRegression

    from emotify_ml.features.hog import HOGTransformer
    from emotify_ml.models import write_pyfunc
    from emotify_ml.pipeline import build_pipeline

    X, y = synthetic_faces()
    pipe = build_pipeline(features={"hog": HOGTransformer(pixels_per_cell=12)},
                          classifier=LogisticRegression(max_iter=200)).fit(X, y)
    return str(write_pyfunc(pipe, kind="emotion", path=tmp_path_factory.mktemp("hog_model") / "model"))


@pytest.fixture(scope="session")
def sample_data():
    from emotify_ml.data import load_fer2013

    return load_fer2013(cache=False)


@pytest.fixture(scope="session")
def full_fer_root():
    root = SHARED_DATA / "fer2013"
    if not (root / "test").is_dir():
        pytest.skip("full FER-2013 not found at ../shared/data/fer2013")
    return root


@pytest.fixture(scope="session")
def full_mpii_csv():
    """The full MPII csv of this workspace (``../shared/data/mpii``); the test skips when it is absent."""
    path = SHARED_DATA / "mpii" / "mpii_human_pose.csv"
    if not path.is_file():
        pytest.skip("full MPII csv not found at ../shared/data/mpii")
    return path
