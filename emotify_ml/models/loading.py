"""Load a model of any kind (:func:`load_model`), and copy one into a plain folder (:func:`export_model`).

The runtime hook: an emotion model folder may hold ``artifacts/compiled/manifest.json``
(written by ``pipelines.export``). ``runtime="auto"`` then scores with
:func:`emotify_ml.runtime.load_compiled` (no TensorFlow), and falls back to the fitted
pipeline ("keras") when that module or the compiled files are missing; ``runtime="compiled"``
insists on it; ``runtime="keras"`` never uses it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from emotify_ml.exceptions import ModelError, ModelKindError, ModelNotFoundError
from emotify_ml.models.kinds import get_kind
from emotify_ml.models.persist import load_estimator, read_meta
from emotify_ml.models.resolve import ResolvedModel, resolve_model
from emotify_ml.models.wrapper import FittedModel

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "keras", "compiled")
COMPILED_MANIFEST = Path("artifacts") / "compiled" / "manifest.json"
DEFAULT_COMPILED_VARIANT = "int8"


def load_model(uri=None, *, kind: str = "emotion", tracking_uri=None, allow_remote: bool = False,
               runtime: str = "auto", registered_name: str | None = None) -> FittedModel:
    """Load a model for scoring.

    Parameters
    ----------
    uri : str or path, optional
        An MLflow model URI or a local model folder; None: the champion from the tracking
        store (emotion), else the model shipped with the package. See
        :func:`~emotify_ml.models.resolve.resolve_model`.
    kind : {"emotion", "action"}
    tracking_uri : str, optional
        The tracking store to resolve ``models:/`` and ``runs:/`` URIs in.
    allow_remote : bool, default False
        Allow ``http(s)://``, ``s3://``, ... URIs and remote tracking stores.
    runtime : {"auto", "keras", "compiled"} or "compiled:<variant>"
        See the module docstring.

    Returns
    -------
    FittedModel
        With ``source`` (the exact URI), ``name`` and ``version`` (registry models), ``runtime``.

    Raises
    ------
    ModelNotFoundError, ModelKindError, UntrustedModelError
        All :class:`~emotify_ml.exceptions.ModelError`: one line saying what to pass instead.

    Examples
    --------
    >>> model = load_model()                                    # doctest: +SKIP
    >>> model.predict_proba(faces).shape                        # doctest: +SKIP
    (2, 7)
    """
    _check_runtime(runtime)
    resolved = resolve_model(uri, kind=kind, tracking_uri=tracking_uri, registered_name=registered_name,
                             allow_remote=allow_remote)
    return load_resolved(resolved, kind=kind, runtime=runtime)


def load_emotion_model(uri=None, *, tracking_uri=None, allow_remote: bool = False, runtime: str = "auto",
                       registered_name: str | None = None) -> FittedModel:
    """The emotion model: :func:`load_model` with ``kind="emotion"`` (the public shortcut, ``emotify_ml.load_emotion_model``)."""
    return load_model(uri, kind="emotion", tracking_uri=tracking_uri, allow_remote=allow_remote, runtime=runtime,
                      registered_name=registered_name)


def model_origin(model, requested=None) -> str:
    """Where a loaded model came from: ``"given"`` (``requested`` named it), else ``"shipped"`` (the
    package's fallback) or ``"champion"`` (the tracking store's), for the messages of live and the server."""
    if requested is not None:
        return "given"
    source = Path(str(getattr(model, "source", "") or ""))
    shipped = get_kind(getattr(model, "kind", "emotion")).shipped_dir
    return "shipped" if str(source) and source.exists() and source.resolve() == shipped.resolve() else "champion"


def load_action_model(uri=None, *, tracking_uri=None, allow_remote: bool = False) -> FittedModel:
    """The action model: :func:`load_model` with ``kind="action"`` (None: the shipped one)."""
    return load_model(uri, kind="action", tracking_uri=tracking_uri, allow_remote=allow_remote, runtime="keras")


def load_resolved(resolved: ResolvedModel, *, kind: str = "emotion", runtime: str = "auto") -> FittedModel:
    """The :class:`FittedModel` in an already resolved folder (checked to be of ``kind``)."""
    _check_runtime(runtime)
    spec = get_kind(kind)
    folder = Path(resolved.local_dir)
    meta = read_meta(folder / "artifacts", source=resolved.uri)
    if meta.get("kind") != spec.name:
        raise ModelKindError(f"{resolved.uri!r} is an {meta.get('kind')} model, not an {spec.name} model")
    info = dict(kind=spec.name, source=resolved.uri, name=resolved.name, version=resolved.version)
    compiled = _compiled(folder, runtime, resolved.uri) if spec.name == "emotion" else None
    if compiled is not None:
        return FittedModel(None, compiled=compiled[0], runtime=compiled[1], **info)
    return FittedModel(load_estimator(folder / "artifacts", source=resolved.uri), runtime="keras", **info)


def load_artifacts(folder: Path, *, source: str) -> FittedModel:
    """The :class:`FittedModel` of a model's ``artifacts`` folder, of whatever kind it says (the pyfunc loader).

    An emotion model with a compiled graph runs it, as :func:`load_model`'s ``runtime="auto"`` does.
    """
    meta = read_meta(folder, source=source)
    kind = meta.get("kind", "emotion")
    compiled = _compiled(folder.parent, "auto", source) if kind == "emotion" else None
    if compiled is not None:
        return FittedModel(None, compiled=compiled[0], runtime=compiled[1], kind=kind, source=source)
    return FittedModel(load_estimator(folder, source=source), kind=kind, source=source, runtime="keras")


def _check_runtime(runtime: str) -> None:
    if not isinstance(runtime, str) or runtime.split(":", 1)[0] not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)} (or 'compiled:<variant>'); got {runtime!r}")


def _compiled(folder: Path, runtime: str, source: str):
    """(compiled model, runtime name) when the runtime asks for and finds one; None for the keras pipeline."""
    mode, _, variant = runtime.partition(":")
    if mode == "keras":
        return None
    if not (folder / COMPILED_MANIFEST).is_file():
        if mode == "compiled":
            raise ModelNotFoundError(f"{source!r} has no compiled model ({COMPILED_MANIFEST}); build one with "
                                     "`python -m pipelines.export`, or use runtime='keras'")
        return None
    variant = variant or DEFAULT_COMPILED_VARIANT
    try:
        from emotify_ml.runtime import load_compiled  # COMPILE's TF-free runtime, imported only when needed
    except ImportError as exc:
        if mode == "compiled":
            raise ModelNotFoundError(f"runtime='compiled' needs emotify_ml.runtime: {exc}") from None
        log.info("compiled model found but emotify_ml.runtime is unavailable (%s); using the keras pipeline", exc)
        return None
    try:
        model = load_compiled(folder, variant)
    except Exception as exc:  # whatever the compiled runtime raises, "auto" falls back; "compiled" says why
        if mode == "compiled":
            raise ModelError(f"cannot load the compiled model of {source!r} (variant {variant!r}): {exc}") from None
        log.info("compiled model of %s not usable (%s); using the keras pipeline", source, exc)
        return None
    return model, getattr(model, "runtime", f"litert-{variant}")


def export_model(uri, dest, *, kind: str | None = None, tracking_uri=None, provenance: dict | None = None,
                 allow_remote: bool = False, trust_pickle: bool = False) -> Path:
    """Copy an Emotify MLflow model (any kind, any URI) into a plain folder, e.g. a shipped model.

    The folder is a complete MLflow model (``mlflow.pyfunc.load_model(dest)`` works), with
    ``provenance`` (source URI, run id, metrics, data hash) written beside it as
    ``provenance.json``. The copy is assembled next to ``dest`` and swapped in at the end,
    so a failure never leaves half a model behind.

    Parameters
    ----------
    uri : str, path or ResolvedModel
        Any model URI or folder (see :func:`~emotify_ml.models.resolve.resolve_model`), or one already resolved.
    dest : path
    kind : {"emotion", "action"}, optional
        Checked against the model's own; None: whatever the model is.
    provenance : dict, optional
        Written to ``provenance.json`` after ``{"source": uri}`` (a ``source`` key replaces it).
    trust_pickle : bool, default False
        The source is a pickled model of an older Emotify, which you trust: unpickle it
        (this runs its code) and write it in the skops format. Otherwise a pickle is refused.
    """
    import shutil
    import tempfile

    from emotify_ml.models.persist import load_legacy_estimator

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(uri, ResolvedModel):
        resolved, uri = uri, uri.uri
    else:
        resolved = resolve_model(uri, kind=kind or "emotion", tracking_uri=tracking_uri, allow_remote=allow_remote)
    folder = Path(resolved.local_dir)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        staged = Path(tmp) / "model"
        if trust_pickle and (folder / "artifacts" / "pipeline.joblib").is_file():
            legacy_kind = kind or _legacy_kind(folder)
            estimator = load_legacy_estimator(folder, source=resolved.uri)
            _write_like(folder, estimator, legacy_kind, staged)
        else:
            meta = read_meta(folder / "artifacts", source=resolved.uri)
            load_resolved(resolved, kind=kind or meta.get("kind"), runtime="keras")  # fails before anything is written
            # MLflow's note of the registry version it downloaded: the provenance says it, for any store
            shutil.copytree(folder, staged, ignore=shutil.ignore_patterns("registered_model_meta"))
            _drop_store_location(staged / "MLmodel")
        (staged / "provenance.json").write_text(json.dumps({"source": str(uri), **(provenance or {})}, indent=2,
                                                           default=str) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        staged.rename(dest)
    return dest


def _drop_store_location(mlmodel: Path) -> None:
    """Remove the top-level ``artifact_path`` line when it is a URI of the store the model came from.

    MLflow writes where a logged model's artifacts lie in its store (``file:///home/.../mlruns/...``);
    in a copy that is somebody else's path, and ``provenance.json`` says where the model came from.
    """
    if not mlmodel.is_file():
        return
    lines = mlmodel.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not (line.startswith("artifact_path:") and "://" in line)]
    if len(kept) != len(lines):
        mlmodel.write_text("".join(kept), encoding="utf-8")


def model_kind(resolved: ResolvedModel) -> str:
    """The kind a resolved model folder says it is (an older, pickled Emotify model: from its signature)."""
    folder = Path(resolved.local_dir)
    if (folder / "artifacts" / "pipeline.joblib").is_file() and not (folder / "artifacts" / "emotify.json").is_file():
        return _legacy_kind(folder)
    return read_meta(folder / "artifacts", source=resolved.uri).get("kind", "emotion")


def _legacy_kind(folder: Path) -> str:
    """The kind of an older (pickled) Emotify model, from the class names of its MLflow signature's output."""
    import yaml

    from emotify_ml.labels import EMOTIONS

    signature = (yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}).get("signature") or {}
    names = {col.get("name") for col in json.loads(signature.get("outputs") or "[]")}
    return "emotion" if set(EMOTIONS) <= names else "action"


def _write_like(source: Path, estimator, kind: str, staged: Path) -> None:
    """Write ``estimator`` as an Emotify model in ``staged``, keeping the source's input example and extra files."""
    import shutil

    from mlflow.models import Model

    from emotify_ml.models.pyfunc import write_pyfunc

    try:
        example = Model.load(str(source)).load_input_example(str(source))
    except Exception:  # noqa: BLE001 - an example is a nicety; the model is what matters
        example = None
    write_pyfunc(estimator, kind=kind, path=staged, input_example=example)
    for extra in ("README.md",):
        if (source / extra).is_file():
            shutil.copy2(source / extra, staged / extra)
    compiled = source / "artifacts" / "compiled"
    if compiled.is_dir():
        shutil.copytree(compiled, staged / "artifacts" / "compiled")
