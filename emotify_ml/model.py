"""The one model contract: an sklearn Pipeline wrapped as an MLflow pyfunc model.

Whatever the experiment (HOG+SVM, CNN embeddings + boosting, the backbone's
softmax), the logged model behaves the same:

>>> model = mlflow.pyfunc.load_model(uri)                     # doctest: +SKIP
>>> model.predict(faces)                                        # doctest: +SKIP
   angry  disgust  fear  happy  sad  surprise  neutral  label

``faces`` is a uint8 array of face crops, (N, H, W) grey or (N, H, W, 3) BGR,
of any H x W (resized as in training by :func:`emotify_ml.features.preprocessing.to_model_input`).
The result has one probability column per class, named by the class, and a
``label`` column. :class:`EmotionClassifier` gives Python users (live and batch
scoring) the same thing without the pyfunc layer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emotify_ml.evaluation import full_proba
from emotify_ml.exceptions import InputError, ModelNotFoundError
from emotify_ml.features.preprocessing import FACE_SIZE, to_model_input
from emotify_ml.labels import EMOTIONS

log = logging.getLogger(__name__)

PIPELINE_ARTIFACT = "pipeline.joblib"
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "models" / "shipped" / "emotion"
"""The best pipeline shipped with the package as an MLflow model directory (no registry needed)."""

DEFAULT_REGISTERED_MODEL = "emotify-emotion"


def probabilities_frame(proba: np.ndarray, class_names=EMOTIONS) -> pd.DataFrame:
    """Probabilities (N, K) as a DataFrame with one column per class and the arg-max ``label``."""
    frame = pd.DataFrame(np.asarray(proba, dtype=np.float64), columns=list(class_names))
    frame["label"] = np.asarray(class_names, dtype=object)[np.argmax(proba, axis=1)] if len(frame) else []
    return frame


def pipeline_proba(pipeline, faces) -> np.ndarray:
    """Class probabilities (N, 7) of a fitted emotion Pipeline for any face crops.

    Columns follow :data:`emotify_ml.labels.EMOTIONS` even when a class was absent
    from training (its column is then 0).
    """
    import sklearn

    size = getattr(pipeline[0], "size", FACE_SIZE) if hasattr(pipeline, "steps") else FACE_SIZE
    faces = to_model_input(faces, size)  # the pipeline's own face size: its FacePreprocessor then passes them through
    with sklearn.config_context(assume_finite=True):  # validated above; sklearn's per-step checks would repeat it
        return full_proba(pipeline, faces, len(EMOTIONS))


class EmotionClassifier:
    """A fitted emotion Pipeline with the product's calling convention.

    Parameters
    ----------
    pipeline : sklearn Pipeline
        Fitted; its first step accepts (N, H, W) grey uint8 faces.
    source : str
        Where it came from (a model URI or path), for messages.
    """

    def __init__(self, pipeline, source: str = "<in memory>"):
        self.pipeline = pipeline
        self.source = source
        self.class_names = EMOTIONS

    def predict_proba(self, faces) -> np.ndarray:
        """(N, 7) probabilities for face crops; an empty batch gives (0, 7)."""
        if isinstance(faces, np.ndarray) and faces.ndim in (3, 4) and len(faces) == 0:
            return np.zeros((0, len(EMOTIONS)))
        return pipeline_proba(self.pipeline, faces)

    def predict(self, faces) -> pd.DataFrame:
        """Probabilities per class and the ``label``, as the MLflow model returns them."""
        return probabilities_frame(self.predict_proba(faces))

    def __repr__(self) -> str:
        return f"EmotionClassifier(source={self.source!r})"


def _pyfunc_class():
    import mlflow.pyfunc

    class EmotionPyfunc(mlflow.pyfunc.PythonModel):
        """MLflow wrapper: loads the joblib Pipeline artifact and applies the product's contract."""

        def load_context(self, context):
            import joblib

            self.classifier = EmotionClassifier(joblib.load(context.artifacts["pipeline"]), "mlflow")

        def predict(self, context, model_input, params=None):
            faces = model_input
            if isinstance(faces, pd.DataFrame):
                raise InputError("the emotion model takes a uint8 numpy array of face crops, "
                                 "(N, H, W) grey or (N, H, W, 3) BGR; got a DataFrame")
            return self.classifier.predict(faces)

    return EmotionPyfunc


def model_signature():
    """Input: a batch of uint8 face crops of any size; output: 7 class probabilities and the label.

    The input is declared as a 1-D batch of arrays (``Tensor('object', (-1,))``) because
    MLflow enforces a fixed rank, and both (N, H, W) grey and (N, H, W, 3) BGR batches
    are accepted; the model itself validates shape and dtype.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema([TensorSpec(np.dtype(object), (-1,))])
    outputs = Schema([*(ColSpec("double", name) for name in EMOTIONS), ColSpec("string", "label")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def write_pyfunc(model, *, python_model, signature, path=None, name=None, input_example=None,
                 registered_model_name=None, extra_pip_requirements=None):
    """Save (``path``) or log to the active run (``name``) a fitted model as an MLflow pyfunc.

    The model is stored as the joblib artifact ``pipeline`` that ``python_model``'s
    ``load_context`` reads. Shared by the emotion and the action models. Returns the
    folder (save) or the ModelInfo (log).
    """
    import tempfile

    import joblib
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory() as tmp:
        artifact = Path(tmp) / PIPELINE_ARTIFACT
        joblib.dump(model, artifact, compress=3)
        common = dict(python_model=python_model, artifacts={"pipeline": str(artifact)}, signature=signature,
                      input_example=input_example, pip_requirements=_requirements(extra_pip_requirements))
        if path is not None:
            mlflow.pyfunc.save_model(str(path), **common)
            return Path(path)
        return mlflow.pyfunc.log_model(name=name, registered_model_name=registered_model_name, **common)


def save_pyfunc(pipeline, path, *, input_example=None, extra_pip_requirements=None) -> Path:
    """Write a fitted emotion Pipeline as an MLflow pyfunc model directory."""
    return write_pyfunc(pipeline, python_model=_pyfunc_class()(), signature=model_signature(), path=path,
                        input_example=input_example, extra_pip_requirements=extra_pip_requirements)


def log_pyfunc(pipeline, *, name: str = "model", input_example=None, registered_model_name=None):
    """Log a fitted emotion Pipeline to the active MLflow run as a pyfunc model; returns the ModelInfo."""
    return write_pyfunc(pipeline, python_model=_pyfunc_class()(), signature=model_signature(), name=name,
                        input_example=input_example, registered_model_name=registered_model_name)


def _requirements(extra):
    from importlib import metadata

    reqs = []
    for dist in ("scikit-learn", "scikit-image", "numpy", "pandas", "opencv-python-headless", "joblib",
                 "tensorflow-cpu", "keras", "lightgbm", "mlflow"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs + list(extra or [])


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are, and which model it exactly is.

    Attributes
    ----------
    uri : str
        What was asked for, made exact: ``models:/<name>/<version>`` for an alias such as
        ``@champion`` (so every user of the result scores with the same version), else the
        URI or folder as given (the shipped model's folder for the default fallback).
    local_dir : str
        The MLflow model folder on this machine.
    version : str or None
        The registry version, when the model came from the registry.
    """

    uri: str
    local_dir: str
    version: str | None = None


def resolve_model(uri=None, *, tracking_uri=None, registered_name: str = DEFAULT_REGISTERED_MODEL) -> ResolvedModel:
    """Resolve a model URI (or the default) to an exact URI and a local MLflow model folder.

    Parameters
    ----------
    uri : str or path, optional
        Any MLflow model URI (``runs:/<id>/model``, ``models:/<name>@<alias>``,
        ``models:/<name>/<version>``) or a local MLflow model folder. None:
        ``models:/<registered_name>@champion`` from the tracking store when it holds one,
        else the model shipped with the package. A ``sqlite:///`` store whose file does not
        exist holds no registry, and is not created just to look in it.
    tracking_uri : str, optional
        The tracking store (default: MLflow's current one).

    Raises
    ------
    ModelNotFoundError
        The URI does not resolve to a model folder, or (``uri=None``) there is neither a
        champion nor a shipped model.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    if uri is None:
        store = mlflow.get_tracking_uri()
        if not _missing_sqlite_store(store):
            try:
                uri = f"models:/{registered_name}@champion"
                return resolve_model(uri)
            except ModelNotFoundError as exc:
                log.info("no champion in the tracking store %s (%s); using the shipped model", store, exc)
        if not (SHIPPED_MODEL_DIR / "MLmodel").exists():
            raise ModelNotFoundError(
                f"no emotion model: the tracking store {store} has no models:/{registered_name}@champion and no "
                f"model is shipped in {SHIPPED_MODEL_DIR}; pass an MLflow model URI or a model folder")
        return ResolvedModel(str(SHIPPED_MODEL_DIR), str(SHIPPED_MODEL_DIR), None)
    uri, version = str(uri), None
    local = Path(uri).expanduser()
    try:
        if local.exists():
            local_dir = local.resolve()
        elif "://" in uri or uri.startswith(("models:", "runs:")):
            if uri.startswith("models:/"):  # pin an alias to its version before downloading it
                ref = uri[len("models:/"):]
                if "@" in ref:
                    name, alias = ref.split("@", 1)
                    version = mlflow.MlflowClient().get_model_version_by_alias(name, alias).version
                    uri = f"models:/{name}/{version}"
                elif ref.rsplit("/", 1)[-1].isdigit():
                    version = ref.rsplit("/", 1)[-1]
            local_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        else:
            raise ModelNotFoundError(f"model {uri!r} is neither an existing folder nor an MLflow model URI "
                                     "(runs:/<run_id>/model, models:/<name>@<alias>)")
    except MlflowException as exc:
        raise ModelNotFoundError(f"cannot load model {uri!r}: {exc.message.splitlines()[0]}") from None
    if not (local_dir / "MLmodel").exists():
        raise ModelNotFoundError(f"{uri!r} is not an MLflow model folder (no MLmodel in {local_dir})")
    return ResolvedModel(uri, str(local_dir), None if version is None else str(version))


def load_emotion_model(uri=None, *, tracking_uri=None, registered_name: str = DEFAULT_REGISTERED_MODEL) -> EmotionClassifier:
    """Load an emotion model for scoring (see :func:`resolve_model` for ``uri=None``).

    Raises
    ------
    ModelNotFoundError
        The URI does not resolve to an Emotify emotion model.
    """
    resolved = resolve_model(uri, tracking_uri=tracking_uri, registered_name=registered_name)
    return _classifier(resolved)


def _missing_sqlite_store(uri: str) -> bool:
    """True for a ``sqlite:///`` tracking URI whose database file does not exist (so it holds no registry)."""
    prefix = "sqlite:///"
    return uri.startswith(prefix) and not Path(uri[len(prefix):]).exists()


def _classifier(resolved: ResolvedModel) -> EmotionClassifier:
    import joblib

    artifact = Path(resolved.local_dir) / "artifacts" / PIPELINE_ARTIFACT
    if not artifact.is_file():
        raise ModelNotFoundError(f"{resolved.uri!r} is not an Emotify model (no artifacts/{PIPELINE_ARTIFACT} in "
                                 f"{resolved.local_dir})")
    return EmotionClassifier(joblib.load(artifact), resolved.uri)


def export_model(uri, dest, *, tracking_uri=None, provenance: dict | None = None) -> Path:
    """Copy an Emotify MLflow model (emotion or action; any URI) into a plain folder, e.g. a shipped model.

    The folder is a complete MLflow model (``mlflow.pyfunc.load_model(dest)`` works);
    ``provenance`` (source URI, run id, metrics, data hash) is written beside it as
    ``provenance.json``. The copy is assembled next to ``dest`` and swapped in at the
    end, so a failure never leaves half a model behind.
    """
    import json
    import shutil
    import tempfile

    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    resolved = resolve_model(uri)
    _classifier(resolved)  # fails clearly before anything is written when the URI is not an Emotify model
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        staged = Path(tmp) / "model"
        shutil.copytree(resolved.local_dir, staged)
        (staged / "provenance.json").write_text(json.dumps({"source": str(uri), **(provenance or {})}, indent=2,
                                                           default=str))
        if dest.exists():
            shutil.rmtree(dest)
        staged.rename(dest)
    return dest
