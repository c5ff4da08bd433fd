"""Persistence that runs no code on load: skops for the sklearn estimator, ``.keras`` for the backbone.

A model's ``artifacts/`` folder holds

- ``pipeline.skops``: the fitted estimator in skops' format, which rebuilds objects from
  data and refuses every type outside a trusted list (:data:`TRUSTED_TYPES`, checked
  before anything is built);
- ``backbone-<i>.keras``: the Keras backbone(s) of the CNN estimators, loaded with
  ``safe_mode=True`` (no lambda layers or other deserialised code);
- ``emotify.json``: the format version, the model kind and the files above.

A folder holding a pickle (``.pkl``, ``.joblib``, ...) is refused with
:class:`~emotify_ml.exceptions.UntrustedModelError`: unpickling runs whatever code the
file names. :func:`load_legacy_estimator` reads a pickled model of an older Emotify once,
when the caller says it trusts it, so that it can be written in this format.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

from emotify_ml.exceptions import ModelNotFoundError, UntrustedModelError

FORMAT = "emotify-skops/1"
ESTIMATOR_FILE = "pipeline.skops"
META_FILE = "emotify.json"
LEGACY_ARTIFACT = "pipeline.joblib"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle", ".dill", ".pt", ".pth")
_BACKBONE_PREFIX = "keras-file:"

TRUSTED_TYPES: frozenset[str] = frozenset({
    # Python and sklearn internals that skops does not trust by default
    "collections.OrderedDict",
    "sklearn.utils._bunch.Bunch",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # LightGBM (its Booster is rebuilt from the model text, no code)
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    # Emotify's own estimators
    "emotify_ml.pipeline.LogitAdjusted",
    "emotify_ml.features.preprocessing.FacePreprocessor",
    "emotify_ml.features.hog.HOGTransformer",
    "emotify_ml.features.cnn_embedding.CNNEmbedder",
    "emotify_ml.features.cnn_embedding.BackboneClassifier",
    "emotify_ml.actions.pose_features.PoseFeatures",
    "emotify_ml.actions.mlp.MLPPoseClassifier",
    "emotify_ml.actions.estimators.HoldoutCalibrated",
    "emotify_ml.actions.estimators.MirrorAugmented",
    "emotify_ml.actions.estimators.PoseAugmented",
})
"""Fully qualified names of the types a model file may hold beyond skops' own trusted defaults
(NumPy, SciPy, builtins and sklearn's public estimators). Anything else is refused. Exactly the
types of the 13 experiments' models (``tests/test_configs.py``, marker ``slow``, checks each round trip);
a new estimator class is added here by name."""

LEGACY_MODULES = {"emotify_ml.actions.pipeline": ("emotify_ml.actions.estimators",)}
"""Modules of older Emotify versions whose classes moved, for :func:`load_legacy_estimator`."""


def save_estimator(estimator, folder, *, kind: str) -> Path:
    """Write ``estimator`` into ``folder`` (created): ``pipeline.skops``, ``backbone-<i>.keras``, ``emotify.json``.

    The estimator is left as it was (the backbone bytes it carries are put back).
    """
    import zipfile

    import skops.io as sio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    backbones = _backbone_estimators(estimator)
    saved = []
    try:
        for i, est in enumerate(backbones):
            name = f"backbone-{i}.keras"
            (folder / name).write_bytes(est.backbone_bytes_)
            est.backbone_bytes_ = _BACKBONE_PREFIX + name
            saved.append((est, name))
        sio.dump(estimator, folder / ESTIMATOR_FILE, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    finally:
        for est, name in saved:
            est.backbone_bytes_ = (folder / name).read_bytes()
    meta = {"format": FORMAT, "kind": kind, "estimator": ESTIMATOR_FILE, "keras": [name for _, name in saved]}
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def read_meta(folder, *, source: str) -> dict:
    """The ``emotify.json`` of a model's artifacts folder, after refusing any pickle in the model.

    Raises
    ------
    UntrustedModelError
        The model folder holds a pickle.
    ModelNotFoundError
        The folder is not an Emotify model of this format.
    """
    folder = Path(folder)
    refuse_pickles(folder.parent if folder.name == "artifacts" else folder, source=source)
    path = folder / META_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{source!r} is not an Emotify model (no artifacts/{META_FILE} in {folder.parent})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelNotFoundError(f"{source!r}: artifacts/{META_FILE} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelNotFoundError(f"{source!r}: artifacts/{META_FILE} is not of the format {FORMAT!r} this Emotify reads")
    return meta


def refuse_pickles(model_dir, *, source: str) -> None:
    """Raise :class:`UntrustedModelError` when ``model_dir`` holds a pickle (whose loading would run code)."""
    model_dir = Path(model_dir)
    found = sorted(p for p in model_dir.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())
    if found:
        rel = ", ".join(str(p.relative_to(model_dir)) for p in found[:3])
        raise UntrustedModelError(
            f"refusing to load {source!r}: it holds a pickle ({rel}), and unpickling runs whatever code it names; "
            "Emotify loads only models saved in its skops format. If you trust this folder, convert it once with "
            "`python -m pipelines.ship_model model=<folder> dest=<new folder> trust_pickle=true`")


def load_estimator(folder, *, source: str):
    """Load the estimator written by :func:`save_estimator`, trusting only :data:`TRUSTED_TYPES`.

    Raises
    ------
    UntrustedModelError
        The skops file names a type outside the trusted list, or a backbone file is not a safe ``.keras``.
    ModelNotFoundError
        A file is missing or unreadable.
    """
    import skops.io as sio

    folder = Path(folder)
    path = folder / ESTIMATOR_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{source!r} is not an Emotify model (no artifacts/{ESTIMATOR_FILE})")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a corrupt or foreign zip: skops' errors vary by version
        raise ModelNotFoundError(f"{source!r}: artifacts/{ESTIMATOR_FILE} cannot be read ({type(exc).__name__}: "
                                 f"{exc})") from None
    foreign = sorted(set(untrusted) - TRUSTED_TYPES)
    if foreign:
        raise UntrustedModelError(f"refusing to load {source!r}: its {ESTIMATOR_FILE} holds types Emotify does not "
                                  f"trust: {', '.join(foreign[:5])}" + (" ..." if len(foreign) > 5 else ""))
    estimator = sio.load(path, trusted=sorted(untrusted))
    for est in _backbone_estimators(estimator):
        ref = est.backbone_bytes_
        name = ref[len(_BACKBONE_PREFIX):] if isinstance(ref, str) and ref.startswith(_BACKBONE_PREFIX) else None
        if name is None or Path(name).name != name or not (folder / name).is_file():
            raise ModelNotFoundError(f"{source!r}: a CNN estimator's backbone file is missing ({ref!r:.60})")
        est.backbone_bytes_ = (folder / name).read_bytes()
        _check_keras(folder / name, source)
    return estimator


def _check_keras(path: Path, source: str) -> None:
    """Load a ``.keras`` file with ``safe_mode=True`` once, so an unsafe one fails here, with its name."""
    from emotify_ml.extras import require_keras

    keras = require_keras(f"loading the Keras backbone of {source!r} (runtime=keras; the compiled runtime needs none)")

    try:
        keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError/TypeError/OSError for unsafe or broken files
        raise UntrustedModelError(f"refusing to load {source!r}: artifacts/{path.name} does not load as a safe "
                                  f".keras model ({str(exc).splitlines()[0][:200]})") from None


def _backbone_estimators(obj) -> list:
    """Every estimator inside ``obj`` that carries Keras backbone bytes (``backbone_bytes_``), in a fixed order."""
    found, seen = [], set()

    def visit(o):
        if id(o) in seen:
            return
        seen.add(id(o))
        if isinstance(o, (list, tuple)):
            for item in o:
                visit(item)
        elif isinstance(o, dict):
            for item in o.values():
                visit(item)
        elif hasattr(o, "get_params") and hasattr(o, "__dict__"):
            if "backbone_bytes_" in o.__dict__:
                found.append(o)
            for item in o.__dict__.values():
                visit(item)

    visit(obj)
    return found


def load_legacy_estimator(model_dir, *, source: str):
    """Unpickle the ``artifacts/pipeline.joblib`` of an older Emotify model. Runs code: only for a trusted folder.

    Classes that moved since (``emotify_ml.actions.pipeline``) are found in their new modules.
    """
    import importlib

    import joblib

    path = Path(model_dir) / "artifacts" / LEGACY_ARTIFACT
    if not path.is_file():
        raise ModelNotFoundError(f"{source!r} is not an older Emotify model (no artifacts/{LEGACY_ARTIFACT})")
    added = []
    for old, new in LEGACY_MODULES.items():
        if old in sys.modules or importlib.util.find_spec(old.rsplit(".", 1)[0]) is None:
            continue
        try:
            importlib.import_module(old)
            continue
        except ImportError:
            pass
        shim = types.ModuleType(old)
        for name in new:
            shim.__dict__.update({k: v for k, v in vars(importlib.import_module(name)).items() if not k.startswith("__")})
        sys.modules[old] = shim
        added.append(old)
    try:
        return joblib.load(path)
    finally:
        for old in added:
            sys.modules.pop(old, None)
