"""The one MLflow pyfunc model of every kind, with no pickled code.

:func:`write_pyfunc` saves (``path``) or logs (``name``) a fitted estimator as an MLflow
model whose ``python_function`` flavour names this module as its ``loader_module``: MLflow
imports the installed ``emotify_ml`` and calls :func:`_load_pyfunc` on the ``artifacts``
folder (skops + ``.keras``, see :mod:`emotify_ml.models.persist`). So

>>> mlflow.pyfunc.load_model(folder).predict(faces)      # doctest: +SKIP
   angry  disgust  fear  happy  sad  surprise  neutral  label

works with MLflow alone, and nothing in the folder is unpickled.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from emotify_ml.exceptions import InputError
from emotify_ml.models.kinds import get_kind

ARTIFACTS = "artifacts"


def write_pyfunc(estimator, *, kind: str = "emotion", path=None, name=None, input_example=None,
                 registered_model_name=None, extra_pip_requirements=None):
    """Save (``path``) or log to the active run (``name``) a fitted estimator as an Emotify MLflow model.

    Parameters
    ----------
    estimator : fitted sklearn estimator (an emotion Pipeline or an action classifier)
    kind : {"emotion", "action"}
    path : path, optional
        Save into this folder (it must not exist).
    name : str, optional
        Log under this name to the active MLflow run.
    input_example : array, optional
        A few rows of the input (faces, or poses).
    registered_model_name : str, optional
        Also register the logged model under this name.

    Returns
    -------
    Path (saved) or mlflow ModelInfo (logged)
    """
    import sys

    from mlflow.models import Model

    if (path is None) == (name is None):
        raise ValueError("write_pyfunc needs exactly one of path (save) or name (log)")
    kw = dict(estimator=estimator, kind=get_kind(kind).name, input_example=input_example,
              extra_pip_requirements=extra_pip_requirements)
    if path is not None:
        save_model(path, **kw)
        return Path(path)
    return Model.log(artifact_path=None, name=name, flavor=sys.modules[__name__],
                     registered_model_name=registered_model_name, metadata={"emotify_kind": kw["kind"]}, **kw)


def save_model(path, mlflow_model=None, *, estimator, kind: str, input_example=None, extra_pip_requirements=None):
    """Write the model folder (MLflow's flavour hook: ``Model.log`` calls it for :func:`write_pyfunc`).

    MLflow copies a pyfunc model's data under ``data/``; the files are moved to ``artifacts/``
    (the folder convention of every Emotify model, compiled graphs in ``artifacts/compiled``)
    and the MLmodel says so.
    """
    import mlflow.pyfunc
    from mlflow.models import Model

    from emotify_ml.models.persist import save_estimator

    spec = get_kind(kind)
    path = Path(path)
    mlflow_model = mlflow_model if mlflow_model is not None else Model(metadata={"emotify_kind": spec.name})
    with tempfile.TemporaryDirectory() as tmp:
        data = save_estimator(estimator, Path(tmp) / ARTIFACTS, kind=spec.name)
        mlflow.pyfunc.save_model(str(path), loader_module=__name__, data_path=str(data), mlflow_model=mlflow_model,
                                 signature=spec.signature(), input_example=spec.example(input_example),
                                 pip_requirements=_requirements(extra_pip_requirements),
                                 metadata={"emotify_kind": spec.name})
    (path / "data" / ARTIFACTS).rename(path / ARTIFACTS)
    (path / "data").rmdir()
    mlflow_model.flavors["python_function"]["data"] = ARTIFACTS
    mlflow_model.save(str(path / "MLmodel"))


def log_emotion_model(pipeline, *, name: str = "model", input_example=None, registered_model_name=None):
    """Log a fitted emotion Pipeline to the active run (the runner's ``model_logger``); returns the ModelInfo."""
    return write_pyfunc(pipeline, kind="emotion", name=name, input_example=input_example,
                        registered_model_name=registered_model_name)


def log_action_model(model, *, name: str = "model", input_example=None, registered_model_name=None):
    """Log a fitted action model to the active run (the runner's ``model_logger``); returns the ModelInfo."""
    return write_pyfunc(model, kind="action", name=name, input_example=input_example,
                        registered_model_name=registered_model_name)


def _requirements(extra):
    from importlib import metadata

    reqs = []
    for dist in ("scikit-learn", "skops", "scikit-image", "numpy", "pandas", "opencv-python-headless",
                 "tensorflow-cpu", "keras", "lightgbm", "mlflow"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs + list(extra or [])


class EmotifyPyfunc:
    """What ``mlflow.pyfunc.load_model`` wraps: a :class:`~emotify_ml.models.wrapper.FittedModel`.

    ``predict`` takes what the FittedModel takes (emotion: uint8 faces, (N, H, W) or
    (N, H, W, 3), or a list of crops; action: (N, 32) poses or a DataFrame of the 32
    named columns) and returns the probabilities and ``label`` as a DataFrame.
    """

    def __init__(self, model):
        self.model = model

    def predict(self, model_input, params=None):
        if self.model.kind == "emotion":
            if hasattr(model_input, "columns"):
                raise InputError("the emotion model takes a uint8 numpy array of face crops, "
                                 "(N, H, W) grey or (N, H, W, 3) BGR, or a list of crops; got a DataFrame")
            if isinstance(model_input, np.ndarray) and model_input.dtype == object:
                model_input = list(model_input)  # a batch of crops of different sizes, as MLflow passes a list
        return self.model.predict(model_input)


def _load_pyfunc(data_path):
    """MLflow's entry point (``loader_module``): the model in ``<model>/artifacts``."""
    from emotify_ml.models.loading import load_artifacts

    return EmotifyPyfunc(load_artifacts(Path(data_path), source=str(Path(data_path).parent)))
