"""The one URI resolution of every model kind: a URI (or the default) to a local folder and an exact version.

Models load only from

- the project's tracking store (``models:/<name>@<alias>``, ``models:/<name>/<version>``,
  ``runs:/<run id>/<path>``), whose aliases are pinned to a version before anything is
  downloaded, so every user of the result scores with the same version;
- the folders shipped with the package (``emotify_ml/models/shipped/<kind>``);
- a local folder the caller names (or a ``file://`` URI).

Anything remote (``http(s)://``, ``s3://``, ``gs://``, a remote tracking server, ...) is
refused unless ``allow_remote=True``.

A model version or a run's model of the tracking store is downloaded once, into
``<cache dir>/models/<key>`` (:func:`emotify_ml.paths.cache_dir`: ``$EMOTIFY_CACHE_DIR`` or
the user's cache folder), keyed by the store, the registry and the version (its run, its
creation time, so a store made anew never meets an old copy, and its compiled artifact's
tag) or the run (and its compiled artifact's tag), and reused by the next load.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from emotify_ml.exceptions import ModelError, ModelNotFoundError, UntrustedModelError
from emotify_ml.models.kinds import get_kind

log = logging.getLogger(__name__)

_LOCAL_STORE_SCHEMES = ("sqlite", "file", "")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
COMPILED_TAG = "emotify.compiled"
"""Tag (on a logged model, its run and its registry versions) holding the sha256 of the compiled artifact's manifest
stored in the model (:func:`emotify_ml.registry.store_compiled`): part of the cache key of a version and of a run's
model, so a model compiled after it was cached is downloaded anew."""
_REMOTE_STORES = ("databricks", "databricks-uc", "uc")
"""Tracking stores MLflow reaches with no ``://`` (``databricks``, ``databricks-uc``): remote too."""


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are, and which model it exactly is.

    Attributes
    ----------
    uri : str
        What was asked for, made exact: ``models:/<name>/<version>`` for an alias such as
        ``@champion``, else the URI or folder as given (the shipped folder for the default).
    local_dir : str
        The MLflow model folder on this machine.
    version : str or None
        The registry version, when the model came from the registry.
    name : str or None
        The registered model's name, when the model came from the registry.
    """

    uri: str
    local_dir: str
    version: str | None = None
    name: str | None = None


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names something off this machine (``http(s)://``, ``s3://``, ``gs://``, ...)."""
    match = _SCHEME.match(str(uri))
    return bool(match) and match.group(1).lower() not in _LOCAL_STORE_SCHEMES


def _refuse_remote(what: str, uri: str) -> None:
    raise UntrustedModelError(
        f"refusing to load a model from the remote {what} {uri!r}: Emotify loads models only from the local "
        "tracking store, the shipped models or a local folder; download it and pass the folder, or allow it "
        "explicitly (allow_remote=True, --allow-remote-model, allow_remote_model=true)")


def resolve_model(uri=None, *, kind: str = "emotion", tracking_uri=None, registered_name: str | None = None,
                  allow_remote: bool = False) -> ResolvedModel:
    """Resolve a model URI (or the default) to an exact URI and a local MLflow model folder.

    Parameters
    ----------
    uri : str or path, optional
        ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/<id>/model``, a
        local model folder or ``file://`` URI. None: ``models:/<registered_name>@champion``
        from the tracking store when it holds one (emotion), else the shipped model of
        ``kind``. A ``sqlite:///`` store whose file does not exist holds no registry, and is
        not created just to look in it.
    kind : {"emotion", "action"}
    tracking_uri : str, optional
        The tracking store (default: MLflow's current one).
    registered_name : str, optional
        The registered model of the default (default: the kind's, ``emotify-emotion``).
    allow_remote : bool
        Allow remote URIs and remote tracking stores.

    Raises
    ------
    UntrustedModelError
        A remote URI without ``allow_remote``, or a remote store where one is used (``uri=None``,
        ``models:/``, ``runs:/``; a local folder is read without the store).
    ModelNotFoundError
        The URI does not resolve to a model folder, or (``uri=None``) there is neither a
        champion nor a shipped model.
    """
    spec = get_kind(kind)
    if uri is None and tracking_uri and _missing_sqlite_store(str(tracking_uri)):
        return _shipped(spec, registered_name or spec.registered_name, tracking_uri)  # no store, no mlflow import
    if uri is None and tracking_uri:
        remembered = _remembered_default(str(tracking_uri), spec, registered_name or spec.registered_name)
        if remembered is not None:
            return remembered  # the store is unchanged since the last lookup: no mlflow import (start-up time)

    def use_store():  # MLflow is imported only where a store is used: a local folder needs none (start-up time)
        import mlflow

        if tracking_uri:
            _check_store(tracking_uri, allow_remote)
            mlflow.set_tracking_uri(tracking_uri)
        return mlflow

    if uri is None:
        use_store()
        return _default(spec, registered_name or spec.registered_name, allow_remote)
    uri = str(uri)
    if uri.startswith("file://"):
        local = Path(uri[len("file://"):])
    elif is_remote(uri):
        if not allow_remote:
            _refuse_remote("location", uri)
        use_store()
        return _download(uri, None, None)
    else:
        local = Path(uri).expanduser()
    if local.exists():
        return _checked(ResolvedModel(uri, str(local.resolve())))
    if uri.startswith(("models:/", "runs:/")):
        mlflow = use_store()
        _check_store(mlflow.get_tracking_uri(), allow_remote)
        if uri.startswith("models:/"):
            _check_registry(allow_remote)
        return _from_store(uri)
    raise ModelNotFoundError(f"model {uri!r} is neither an existing folder nor an MLflow model URI "
                             "(runs:/<run_id>/model, models:/<name>@<alias>, models:/<name>/<version>)")


def _remote_store(store) -> bool:
    """Whether an MLflow tracking or registry URI is off this machine (``http(s)://``, ``databricks``, ...)."""
    return is_remote(store) or str(store).split(":", 1)[0].lower() in _REMOTE_STORES


def _check_registry(allow_remote: bool) -> None:
    """Refuse a remote model registry (``MLFLOW_REGISTRY_URI``, set apart from the store) without ``allow_remote``."""
    import mlflow

    registry = mlflow.get_registry_uri()
    if registry and _remote_store(registry) and not allow_remote:
        _refuse_remote("model registry", registry)


def _check_store(store: str, allow_remote: bool) -> None:
    """Refuse a remote tracking store without ``allow_remote``, and a local one MLflow cannot open, in one line.

    A ``sqlite:///`` store below a file (``sqlite:///<a file>/m.db``) made MLflow raise
    ``FileExistsError`` from deep inside; it is a :class:`ModelNotFoundError` here.
    """
    if _remote_store(store) and not allow_remote:
        _refuse_remote("tracking store", store)
    from emotify_ml.exceptions import ConfigError
    from emotify_ml.mlflow_runs import check_tracking_uri

    try:
        check_tracking_uri(store)
    except ConfigError as exc:
        raise ModelNotFoundError(f"cannot look for models in the tracking store: {exc}") from None


def _default(spec, registered_name, allow_remote) -> ResolvedModel:
    import mlflow

    store = mlflow.get_tracking_uri()
    if registered_name and not _missing_sqlite_store(store) and (allow_remote or not (
            _remote_store(store) or _remote_store(mlflow.get_registry_uri() or store))):
        before = _store_signature(store)
        try:
            resolved = _from_store(f"models:/{registered_name}@champion")
        except ModelNotFoundError as exc:
            log.info("no champion in the tracking store %s (%s); using the shipped model", store, exc)
            resolved = None
        if resolved is None:
            resolved = _shipped(spec, registered_name, store)
        if before is not None and before == _store_signature(store):
            _remember_default(store, registered_name, before, resolved, champion=resolved.version is not None)
        return resolved
    return _shipped(spec, registered_name, store)


def _store_signature(store: str) -> list | None:
    """What changes whenever a local ``sqlite:///`` store is written (its file and write-ahead log: inode, size,
    modification time), so an unchanged signature means an unchanged champion alias; None for any other store,
    or when the registry is set apart from the store (``MLFLOW_REGISTRY_URI``)."""
    import os

    prefix = "sqlite:///"
    if not store.startswith(prefix) or os.environ.get("MLFLOW_REGISTRY_URI", store) != store:
        return None
    signature = [str(Path(store[len(prefix):]).resolve())]
    for path in (Path(signature[0]), Path(signature[0] + "-wal")):
        try:
            st = path.stat()
        except OSError:
            signature.append(None)
        else:
            signature.append([st.st_ino, st.st_size, st.st_mtime_ns])
    return signature if signature[1] is not None else None


def _default_record(signature: list, registered_name: str) -> Path:
    import hashlib

    key = hashlib.sha256(f"{signature[0]}\n{registered_name}".encode()).hexdigest()[:32]
    return _model_cache() / "defaults" / f"{key}.json"


def _remember_default(store, registered_name, signature, resolved: ResolvedModel, *, champion: bool) -> None:
    """Record what ``models:/<registered_name>@champion`` resolved to (or that there was none) for this state
    of the store, so the next start-up skips importing MLflow and opening the store while nothing changed."""
    import json
    import os
    import tempfile

    record = _default_record(signature, registered_name)
    entry = {"store": store, "signature": signature, "champion": champion, "uri": resolved.uri,
             "local_dir": resolved.local_dir, "version": resolved.version, "name": resolved.name}
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{record.name}-", dir=record.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(entry, fh)
        os.replace(tmp, record)
    except OSError as exc:  # a read-only cache only costs the next start-up its lookup
        log.debug("cannot record the champion lookup in %s: %s", record, exc)


def _remembered_default(store: str, spec, registered_name: str) -> ResolvedModel | None:
    """The recorded champion lookup of ``store`` when the store has not changed since (else None: look again)."""
    import json

    signature = _store_signature(store)
    if signature is None:
        return None
    try:
        entry = json.loads(_default_record(signature, registered_name).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("signature") != signature:
        return None
    if not entry.get("champion"):
        return _shipped(spec, registered_name, store)
    resolved = ResolvedModel(entry["uri"], entry["local_dir"], entry.get("version"), entry.get("name"))
    if not (Path(resolved.local_dir) / "MLmodel").is_file():
        return None  # the cached copy was removed: look it up (and download it) again
    log.debug("champion %s of %s as recorded (the store is unchanged)", resolved.uri, store)
    return resolved


def _shipped(spec, registered_name, store) -> ResolvedModel:
    """The model shipped with the package for ``spec``'s kind (the default when the store has no champion)."""
    shipped = spec.shipped_dir
    if not (shipped / "MLmodel").exists():
        where = f"the tracking store {store} has no models:/{registered_name}@champion and " if registered_name else ""
        raise ModelNotFoundError(f"no {spec.name} model: {where}no model is shipped in {shipped}; pass an MLflow "
                                 "model URI or a model folder")
    return ResolvedModel(str(shipped), str(shipped))


def _from_store(uri: str) -> ResolvedModel:
    """A ``models:/`` or ``runs:/`` URI from the tracking store, an alias pinned to its version first."""
    import mlflow
    from mlflow.exceptions import MlflowException

    name = version = identity = None
    try:
        client = mlflow.MlflowClient()  # opens the store: inside, a store that is not a database is one line
        if uri.startswith("runs:/"):  # run ids are random uuids: one run, one folder, until it is compiled in the store
            run = client.get_run(uri[len("runs:/"):].split("/")[0])
            identity = f"{uri} compiled {run.data.tags.get(COMPILED_TAG)}"
        else:
            ref = uri[len("models:/"):]
            found = None
            if "@" in ref:
                name, alias = ref.split("@", 1)
                found = client.get_model_version_by_alias(name, alias)
                version = str(found.version)
                uri = f"models:/{name}/{version}"
            elif "/" in ref and ref.rsplit("/", 1)[-1].isdigit():
                name, version = ref.rsplit("/", 1)
                found = client.get_model_version(name, version)
            if found is not None:  # a store made anew reuses name/version: the run and the time tell them apart;
                # a compiled artifact stored later (pipelines.export) changes the version's tag: downloaded anew
                compiled = (found.tags or {}).get(COMPILED_TAG)
                identity = f"{uri} run {found.run_id} created {found.creation_timestamp} compiled {compiled}"
    except MlflowException as exc:
        raise ModelNotFoundError(f"cannot load model {uri!r}: {exc.message.splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001 - the store itself fails (sqlalchemy: "file is not a database")
        raise ModelError(f"cannot open the tracking store {mlflow.get_tracking_uri()!r} to find {uri!r}: "
                         f"{_first_line(exc)}") from None
    return _download(uri, version, name, identity=identity)


def _download(uri: str, version, name, *, identity: str | None = None) -> ResolvedModel:
    """Download ``uri``; with an ``identity`` (a model version or a run of this store), once into the model cache."""
    try:
        local_dir = _fetch(uri) if identity is None else _cached(uri, identity)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - the cache folder cannot be written (read-only, full disk)
        raise ModelError(f"cannot cache model {uri!r} in {_model_cache()}: {_first_line(exc)} (set "
                         "EMOTIFY_CACHE_DIR to a writable folder)") from None
    return _checked(ResolvedModel(uri, str(local_dir), version, name))


def _model_cache() -> Path:
    from emotify_ml.paths import cache_dir

    return cache_dir() / "models"


def _cached(uri: str, identity: str) -> Path:
    """The cached copy of a model of the tracking store, downloaded on first use.

    Keyed by the tracking store and registry URIs and ``identity``; the copy is downloaded
    into a temporary folder beside the cache entry and renamed into place, so a cache entry
    is always complete and two processes loading at once both end with one good copy.
    """
    import hashlib
    import shutil
    import tempfile

    import mlflow

    key = hashlib.sha256(f"{mlflow.get_tracking_uri()}\n{mlflow.get_registry_uri()}\n{identity}".encode()).hexdigest()
    final = _model_cache() / key[:32]
    if (final / "MLmodel").is_file():
        log.debug("model %s from the cache %s", uri, final)
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        fetched = Path(_fetch(uri, staging / "model"))
        if final.exists() and not (final / "MLmodel").is_file():  # a damaged entry (edited by hand): replace it
            shutil.rmtree(final, ignore_errors=True)
        try:
            fetched.rename(final)
        except OSError:
            if not (final / "MLmodel").is_file():  # another process won the race with a good copy: use it
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _fetch(uri: str, dst_path: Path | None = None) -> str:
    """``mlflow.artifacts.download_artifacts`` with its failures as one :class:`ModelNotFoundError` line."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        if dst_path is None:
            return mlflow.artifacts.download_artifacts(artifact_uri=uri)
        dst_path.mkdir()
        return mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst_path))
    except MlflowException as exc:
        raise ModelNotFoundError(f"cannot load model {uri!r}: {exc.message.splitlines()[0]}") from None
    except ImportError as exc:  # e.g. s3:// without boto3: say what is missing, in one line
        raise ModelNotFoundError(f"cannot download model {uri!r}: {exc} (install the client library of that "
                                 "storage, or download the folder yourself and pass it)") from None
    except Exception as exc:  # noqa: BLE001 - storage clients raise their own types (botocore's NoCredentialsError, ...)
        raise ModelNotFoundError(f"cannot download model {uri!r}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters), for a one-line error."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


def _checked(resolved: ResolvedModel) -> ResolvedModel:
    if not (Path(resolved.local_dir) / "MLmodel").exists():
        raise ModelNotFoundError(f"{resolved.uri!r} is not an MLflow model folder (no MLmodel in {resolved.local_dir})")
    return resolved


def _missing_sqlite_store(uri: str) -> bool:
    """True for a ``sqlite:///`` tracking URI whose database file does not exist (so it holds no registry)."""
    prefix = "sqlite:///"
    return uri.startswith(prefix) and not Path(uri[len(prefix):]).exists()
