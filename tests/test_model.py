"""The model contract: one FittedModel, one pyfunc (skops, no pickle), one URI resolution, for every kind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression

from emotify_ml.exceptions import InputError, ModelError, ModelKindError, ModelNotFoundError, UntrustedModelError
from emotify_ml.features.hog import HOGTransformer
from emotify_ml.labels import EMOTIONS
from emotify_ml.models import FittedModel, export_model, load_emotion_model, load_model, write_pyfunc
from emotify_ml.pipeline import build_pipeline


@pytest.fixture
def fitted(faces):
    X, y = faces
    pipe = build_pipeline(features={"hog": HOGTransformer(pixels_per_cell=12)}, classifier=LogisticRegression(max_iter=200))
    return pipe.fit(X, y)


@pytest.fixture
def saved(fitted, faces, tmp_path):
    return write_pyfunc(fitted, kind="emotion", path=tmp_path / "model", input_example=faces[0][:2])


def test_pyfunc_contract_grey_bgr_any_size(fitted, faces, saved):
    X, _ = faces
    assert not list(saved.rglob("*.pkl")) and (saved / "artifacts" / "pipeline.skops").is_file()
    model = mlflow.pyfunc.load_model(str(saved))
    out = model.predict(X)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == [*EMOTIONS, "label"]
    np.testing.assert_allclose(out[list(EMOTIONS)].sum(axis=1), 1.0, atol=1e-6)
    bgr = np.ascontiguousarray(np.repeat(X[..., None], 3, axis=3))
    pd.testing.assert_frame_equal(model.predict(bgr), out)
    big = np.stack([np.kron(x, np.ones((2, 2), np.uint8)) for x in X])  # 96x96: resized as in training
    assert model.predict(big).shape == (len(X), 8)
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = X[0], big[1]
    assert model.predict(ragged).shape == (2, 8)  # crops of different sizes, as a 1-D object array
    assert model.predict([X[0], big[1]]).shape == (2, 8)  # or a list, as the library call takes it
    local = load_emotion_model(saved)
    np.testing.assert_allclose(local.predict_proba(X), out[list(EMOTIONS)].to_numpy())
    np.testing.assert_allclose(local.predict_proba(X), fitted.predict_proba(X))  # the skops round trip
    assert model.metadata.signature is not None
    assert (local.kind, local.classes_, local.version, local.runtime) == ("emotion", EMOTIONS, None, "keras")


def test_timings_are_measured_in_the_same_call(fitted, faces):
    X, _ = faces
    model = FittedModel(fitted)
    timings = {}
    proba = model.predict_proba(X, timings=timings)
    np.testing.assert_array_equal(proba, model.predict_proba(X))
    assert set(timings) == {"embed", "classify"} and all(v > 0 for v in timings.values())
    model.predict_proba(X, timings=timings)
    assert timings["embed"] > 0  # added to, not replaced
    assert model.predict_proba(np.zeros((0, 48, 48), np.uint8), timings={}).shape == (0, 7)


def test_missing_class_gets_zero_column(faces):
    X, y = faces
    keep = y != 1
    pipe = build_pipeline(features={"hog": HOGTransformer(pixels_per_cell=12)},
                          classifier=LogisticRegression(max_iter=200)).fit(X[keep], y[keep])
    proba = FittedModel(pipe).predict_proba(X)
    assert proba.shape == (len(X), 7) and np.all(proba[:, 1] == 0)


def test_action_poses_as_a_dataframe_are_read_by_column_name():
    """The 32 named pose columns in another order (or with extra columns) give the same probabilities."""
    from emotify_ml.labels import MPII_CATEGORIES
    from emotify_ml.models import ACTION_INPUT_COLUMNS

    rng = np.random.default_rng(0)
    X = rng.normal(100, 30, (60, 32))
    y = np.arange(60) % len(MPII_CATEGORIES)  # class indices, as the action data gives them
    model = FittedModel(LogisticRegression(max_iter=300).fit(X, y), kind="action")
    table = pd.DataFrame(X, columns=list(ACTION_INPUT_COLUMNS))
    shuffled = table[list(reversed(ACTION_INPUT_COLUMNS))].assign(note=1.0)
    np.testing.assert_allclose(model.predict_proba(shuffled), model.predict_proba(X))
    np.testing.assert_allclose(model.predict_proba(table), model.predict_proba(X))


def test_bad_input_and_bad_uri(fitted, tmp_path, copied_store_uri):
    clf = FittedModel(fitted)
    with pytest.raises(InputError, match="got shape"):
        clf.predict_proba(np.zeros((48, 48), np.uint8))
    assert clf.predict_proba(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    with pytest.raises(ModelNotFoundError, match="neither an existing folder"):
        load_emotion_model(str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFoundError):
        load_emotion_model("runs:/0123456789abcdef/model", tracking_uri=copied_store_uri)
    with pytest.raises(ValueError, match="runtime must be"):
        load_model(tmp_path, runtime="gpu")
    with pytest.raises(ValueError, match="kind must be"):
        load_model(tmp_path, kind="pose")


@pytest.mark.parametrize("uri", ["s3://bucket/models/m", "http://example.invalid/mlflow-artifacts/m",
                                 "https://example.invalid/m", "gs://bucket/m"])
def test_remote_uris_are_refused_without_allow_remote(uri):
    with pytest.raises(UntrustedModelError, match="allow_remote=True"):
        load_emotion_model(uri)


def test_a_tracking_store_below_a_file_is_one_model_error(tmp_path):
    """``sqlite:///<a file>/m.db`` was MLflow's FileExistsError traceback (serve, batch with model=models:/...)."""
    (tmp_path / "file").write_text("not a folder")
    for uri, kwargs in (("models:/emotify-emotion@champion", {}), ("runs:/0123456789abcdef/model", {})):
        with pytest.raises(ModelNotFoundError, match="is a file, not a folder"):
            load_emotion_model(uri, tracking_uri=f"sqlite:///{tmp_path / 'file' / 'm.db'}", **kwargs)


def test_a_tracking_store_that_is_not_a_database_is_one_model_error(tmp_path):
    """A store file that is not a database: one line naming it, no sqlalchemy traceback, no silent fallback."""
    (tmp_path / "m.db").write_text("garbage, not sqlite")
    uri, previous = f"sqlite:///{tmp_path / 'm.db'}", mlflow.get_tracking_uri()
    try:
        for model in (None, "models:/emotify-emotion@champion"):
            with pytest.raises(ModelError, match=r"cannot open the tracking store .*m\.db.*DatabaseError"):
                load_emotion_model(model, tracking_uri=uri)
    finally:
        mlflow.set_tracking_uri(previous)  # resolving sets MLflow's store: later tests must not meet this one


def test_a_remote_model_registry_is_refused_too(copied_store_uri, monkeypatch):
    """``MLFLOW_REGISTRY_URI`` may point elsewhere than the local store: a remote one is refused, and the default
    (the champion) falls back to the shipped model without asking it."""
    from emotify_ml.models import SHIPPED_DIR, resolve_model

    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "https://registry.example.invalid")
    previous = mlflow.get_tracking_uri()
    try:
        with pytest.raises(UntrustedModelError, match="remote model registry"):
            resolve_model("models:/emotify-emotion@champion", tracking_uri=copied_store_uri)
        assert resolve_model(None, tracking_uri=copied_store_uri).local_dir == str(SHIPPED_DIR / "emotion")
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.mark.parametrize("store", ["http://example.invalid:5000", "databricks", "databricks-uc", "databricks://p"])
def test_remote_tracking_store_is_refused(store):
    with pytest.raises(UntrustedModelError, match="remote tracking store"):
        load_emotion_model("models:/emotify-emotion@champion", tracking_uri=store)


@pytest.mark.parametrize("error", [ModuleNotFoundError("No module named 'botocore'"),
                                   type("NoCredentialsError", (Exception,), {})("Unable to locate credentials")])
def test_allowed_s3_failing_is_one_clear_error(error, monkeypatch):
    """``s3://`` with allow_remote and no botocore or no credentials: a ModelNotFoundError naming the cause."""
    import mlflow.artifacts

    def fail(**kwargs):
        raise error

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", fail)
    with pytest.raises(ModelNotFoundError, match=r"cannot download model 's3://bucket/models/m': .*(botocore|credentials)"):
        load_emotion_model("s3://bucket/models/m", allow_remote=True)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_folder_holding_a_pickle_is_refused_and_never_unpickled(saved, tmp_path, monkeypatch):
    import pickle

    monkeypatch.chdir(tmp_path)
    (saved / "artifacts" / "pipeline.joblib").write_bytes(pickle.dumps(_Evil()))
    for load in (load_emotion_model, mlflow.pyfunc.load_model):
        with pytest.raises(UntrustedModelError, match=r"holds a pickle \(artifacts/pipeline.joblib\)"):
            load(str(saved))
    assert not (tmp_path / "pwned").exists()


class Foreign(TransformerMixin, BaseEstimator):
    """A transformer of a module Emotify does not trust."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def test_a_skops_file_with_untrusted_types_is_refused(fitted, tmp_path):
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([*fitted.steps[:-1], ("foreign", Foreign()), fitted.steps[-1]])
    path = write_pyfunc(pipe, kind="emotion", path=tmp_path / "m")
    with pytest.raises(UntrustedModelError, match="types Emotify does not trust: .*Foreign"):
        load_emotion_model(path)


def test_the_wrong_kind_is_refused(saved):
    with pytest.raises(ModelKindError, match="is an emotion model, not an action model"):
        load_model(saved, kind="action")


def test_alias_is_pinned_and_its_version_recorded(fitted, copied_store_uri):
    tracking_uri = copied_store_uri  # a migrated store, copied: creating one takes seconds
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id="0"):  # the store's default: not an experiment an earlier test made active
        write_pyfunc(fitted, kind="emotion", name="model", registered_model_name="emotify-emotion")
    with mlflow.start_run(experiment_id="0"):
        write_pyfunc(fitted, kind="emotion", name="model", registered_model_name="emotify-emotion")
    mlflow.MlflowClient().set_registered_model_alias("emotify-emotion", "champion", "1")
    model = load_emotion_model(tracking_uri=tracking_uri)  # the default: @champion
    assert (model.source, model.name, model.version) == ("models:/emotify-emotion/1", "emotify-emotion", "1")
    latest = load_model("models:/emotify-emotion/2", tracking_uri=tracking_uri)
    assert (latest.name, latest.version) == ("emotify-emotion", "2")


def test_store_models_are_downloaded_once_into_the_cache(fitted, copied_store_uri, monkeypatch):
    """models:/ (alias or version) and runs:/ loads download once into EMOTIFY_CACHE_DIR/models, then reuse it."""
    from pathlib import Path

    import mlflow.artifacts

    from emotify_ml.models import resolve_model

    mlflow.set_tracking_uri(copied_store_uri)
    with mlflow.start_run(experiment_id="0") as run:
        write_pyfunc(fitted, kind="emotion", name="model", registered_model_name="emotify-emotion")
    mlflow.MlflowClient().set_registered_model_alias("emotify-emotion", "champion", "1")
    downloads = []
    real = mlflow.artifacts.download_artifacts

    def counting(**kwargs):
        downloads.append(kwargs["artifact_uri"])
        return real(**kwargs)

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", counting)
    cache = Path(os.environ["EMOTIFY_CACHE_DIR"]) / "models"
    dirs = set()
    for uri in ("models:/emotify-emotion@champion", "models:/emotify-emotion/1", f"runs:/{run.info.run_id}/model",
                "models:/emotify-emotion@champion", f"runs:/{run.info.run_id}/model"):
        resolved = resolve_model(uri, tracking_uri=copied_store_uri)
        assert Path(resolved.local_dir).parent == cache and (Path(resolved.local_dir) / "MLmodel").is_file()
        dirs.add(resolved.local_dir)
    assert downloads == ["models:/emotify-emotion/1", f"runs:/{run.info.run_id}/model"]
    assert len(dirs) == 2 and sorted(p.name for p in cache.iterdir()) == sorted(Path(d).name for d in dirs)
    assert load_emotion_model("models:/emotify-emotion@champion", tracking_uri=copied_store_uri).version == "1"
    assert len(downloads) == 2


def test_the_champion_lookup_is_remembered_while_the_store_is_unchanged(fitted, copied_store_uri, monkeypatch):
    """Start-up: an unchanged sqlite store answers @champion from the record of the last lookup, without
    importing MLflow; any write to the store (an alias moved) makes the next start look again."""
    from emotify_ml.models import resolve, resolve_model

    mlflow.set_tracking_uri(copied_store_uri)
    for _ in range(2):
        with mlflow.start_run(experiment_id="0"):
            write_pyfunc(fitted, kind="emotion", name="model", registered_model_name="emotify-emotion")
    assert resolve_model(tracking_uri=copied_store_uri).version is None  # no champion yet: the shipped model
    lookups = []
    real = resolve._from_store
    monkeypatch.setattr(resolve, "_from_store", lambda uri: lookups.append(uri) or real(uri))
    assert resolve_model(tracking_uri=copied_store_uri).version is None and lookups == []  # remembered: shipped
    mlflow.MlflowClient().set_registered_model_alias("emotify-emotion", "champion", "1")
    assert resolve_model(tracking_uri=copied_store_uri).version == "1" and len(lookups) == 1
    script = ("import sys; from emotify_ml.models import resolve_model; "
              f"r = resolve_model(tracking_uri={copied_store_uri!r}); print(r.version, 'mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "False"]
    mlflow.MlflowClient().set_registered_model_alias("emotify-emotion", "champion", "2")
    assert resolve_model(tracking_uri=copied_store_uri).version == "2" and len(lookups) == 2
    assert resolve_model(tracking_uri=copied_store_uri).version == "2" and len(lookups) == 2


def test_a_local_folder_is_resolved_without_the_tracking_store(saved, copied_store_uri):
    """Start-up: a model folder needs no store, so resolving it with one configured does not import MLflow."""
    script = ("import sys; from emotify_ml.models import resolve_model; "
              f"r = resolve_model({str(saved)!r}, tracking_uri={copied_store_uri!r}); "
              "print(r.version, 'mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "False"]


def test_runtime_auto_uses_the_compiled_model_when_there_is_one(saved, faces, monkeypatch):
    X, _ = faces
    (saved / "artifacts" / "compiled").mkdir()
    (saved / "artifacts" / "compiled" / "manifest.json").write_text(json.dumps({"variants": ["int8"]}))

    class Compiled:
        def predict_proba(self, faces):
            return np.full((len(faces), 7), 1 / 7)

    fake = types.ModuleType("emotify_ml.runtime")
    fake.load_compiled = lambda model_dir, variant="int8": Compiled()
    monkeypatch.setitem(sys.modules, "emotify_ml.runtime", fake)
    auto = load_model(saved)
    assert auto.runtime == "litert-int8" and auto.estimator is None
    np.testing.assert_allclose(auto.predict_proba(X, timings={}), 1 / 7)
    assert load_model(saved, runtime="keras").runtime == "keras"
    monkeypatch.setitem(sys.modules, "emotify_ml.runtime", None)  # the module is not there: auto falls back
    assert load_model(saved).runtime == "keras"
    with pytest.raises(ModelError):
        load_model(saved, runtime="compiled")


def test_export_model_copies_a_complete_model_with_provenance(fitted, faces, saved, tmp_path):
    X, _ = faces
    mlmodel = saved / "MLmodel"  # as a store's logged model says where its artifacts lay
    mlmodel.write_text("artifact_path: file:///home/someone/mlruns/models/m-1/artifacts\n" + mlmodel.read_text())
    dest = export_model(saved, tmp_path / "shipped", provenance={"run_id": "abc"})
    assert json.loads((dest / "provenance.json").read_text()) == {"source": str(saved), "run_id": "abc"}
    np.testing.assert_allclose(load_emotion_model(dest).predict_proba(X), FittedModel(fitted).predict_proba(X))
    assert "file://" not in (dest / "MLmodel").read_text()  # the copy does not carry the builder's paths
    mlflow.pyfunc.load_model(str(dest))
    with pytest.raises(ModelNotFoundError):
        export_model(tmp_path / "nothing", tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_export_converts_a_trusted_legacy_pickle_once(fitted, faces, saved, tmp_path):
    import joblib

    X, _ = faces
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "MLmodel").write_text((saved / "MLmodel").read_text())
    (legacy / "artifacts").mkdir()
    joblib.dump(fitted, legacy / "artifacts" / "pipeline.joblib")
    with pytest.raises(UntrustedModelError):
        export_model(legacy, tmp_path / "refused")
    dest = export_model(legacy, tmp_path / "converted", trust_pickle=True)
    assert not list(dest.rglob("*.joblib"))
    np.testing.assert_array_equal(load_emotion_model(dest).predict_proba(X), FittedModel(fitted).predict_proba(X))


def test_import_loads_nothing():
    code = ("import sys, emotify_ml, emotify_ml.models; "
            "assert not any(m.startswith(('mlflow', 'tensorflow', 'skops', 'emotify_ml.models.')) for m in sys.modules), "
            "sorted(m for m in sys.modules if m.startswith('emotify_ml')); "
            "assert callable(emotify_ml.load_emotion_model)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("extra, code, says", [
    ([], 3, "refusing to load a model from the remote location 's3://bucket/m'"),
    (["--allow-remote-model"], 3, "cannot download model 's3://bucket/m'"),
])
def test_live_refuses_a_remote_model_in_one_line(extra, code, says, capsys, monkeypatch):
    import mlflow.artifacts

    from emotify_ml.live.__main__ import main
    from tests.conftest import REPO

    def missing(**kwargs):
        raise ModuleNotFoundError("No module named 'botocore'")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", missing)
    image = REPO / "data" / "fer2013_sample" / "test" / "happy" / "PrivateTest_3402902.jpg"
    assert main(["--source", str(image), "--no-display", "-q", "--model", "s3://bucket/m", *extra]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and "Traceback" not in err[0]


@pytest.mark.slow  # ~15 s: a fresh sqlite store, a run, a registration and the Hydra entry point
def test_ship_model_pins_the_champion_and_records_it(fitted, tracking_uri, tmp_path, monkeypatch):
    import runpy

    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id="0") as run:
        write_pyfunc(fitted, kind="emotion", name="model", registered_model_name="emotify-emotion")
    mlflow.MlflowClient().set_registered_model_alias("emotify-emotion", "champion", "1")
    monkeypatch.setattr(sys, "argv", ["ship_model", f"tracking.uri={tracking_uri}", f"dest={tmp_path / 'shipped'}"])
    runpy.run_module("pipelines.ship_model", run_name="__main__")  # as `python -m pipelines.ship_model`
    provenance = json.loads((tmp_path / "shipped" / "provenance.json").read_text())
    assert provenance["source"] == "models:/emotify-emotion@champion"
    assert (provenance["registered_version"], provenance["run_id"]) == ("emotify-emotion/1", run.info.run_id)
    assert load_emotion_model(tmp_path / "shipped").kind == "emotion"
    assert not (tmp_path / "shipped" / "registered_model_meta").exists()  # this store's numbering stays here


@pytest.mark.parametrize("failure", ["export", "crash"])
def test_ship_model_compile_failure_leaves_the_shipped_folder_as_it_was(failure, hog_model_dir, hydra_main, tmp_path,
                                                                       monkeypatch, capsys):
    """A model that cannot be compiled ships without the compiled runtime; any other compile failure ships nothing."""
    from pathlib import Path

    import pipelines.export
    from emotify_ml.runtime.export import ExportError

    def broken(folder, resolved):
        assert Path(folder).is_dir() and tmp_path / "shipped" not in Path(folder).parents
        raise ExportError("no CNN step") if failure == "export" else RuntimeError("converter\nexploded")

    monkeypatch.setattr(pipelines.export, "compile_folder", broken)
    dest = tmp_path / "shipped"
    dest.mkdir()
    (dest / "old.txt").write_text("the model shipped before")
    overrides = (f"model={hog_model_dir}", f"dest={dest}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db")
    if failure == "export":
        hydra_main("pipelines.ship_model", *overrides)
        assert load_emotion_model(dest).kind == "emotion" and not (dest / "old.txt").exists()
    else:
        with pytest.raises(SystemExit) as exit_info:
            hydra_main("pipelines.ship_model", *overrides)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not shipped" in err[0] and "RuntimeError: converter exploded" in err[0], err
        assert [p.name for p in dest.iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "mlflow.db") == ["shipped"]  # no staging left
