"""Compiled runtime: export to LiteRT (float32, int8), TF-free scoring, parity with the Keras path."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from emotify_ml.exceptions import InputError, ModelNotFoundError
from emotify_ml.runtime import compiled_dir, has_compiled, load_compiled, read_manifest
from emotify_ml.runtime.compiled import calibrate
from tests.conftest import synthetic_faces

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "emotify_ml" / "models" / "shipped" / "emotion"


def _tiny_backbone(path: Path) -> Path:
    from emotify_ml.backbones.cnn import build_backbone

    build_backbone(widths=(8, 16), convs_per_block=(1, 1), embedding_dim=16).save(path)
    return path


def _model(folder: Path, classifier, backbone: Path, *, features=True):
    from emotify_ml.features.cnn_embedding import CNNEmbedder
    from emotify_ml.models import write_pyfunc
    from emotify_ml.pipeline import build_pipeline

    X, y = synthetic_faces(42)
    pipeline = build_pipeline(features=CNNEmbedder(model_path=str(backbone)) if features else None,
                              classifier=classifier).fit(X, y)
    write_pyfunc(pipeline, kind="emotion", path=folder)
    return pipeline


@pytest.fixture(scope="module")
def tiny_compiled(tmp_path_factory):
    """A tiny CNN + calibrated linear SVM emotion model, compiled (int8 and float32)."""
    from emotify_ml.pipeline import make_svm
    from emotify_ml.runtime.export import compile_model

    tmp = tmp_path_factory.mktemp("compiled")
    pipeline = _model(tmp / "model", make_svm(calibration_cv=2), _tiny_backbone(tmp / "tiny.keras"))
    X, y = synthetic_faces(42, seed=3)
    compile_model(tmp / "model", parity_sets={"synthetic": (X, y)}, source={"uri": "test"})
    return tmp / "model", pipeline


def test_export_writes_manifest_graphs_and_head(tiny_compiled):
    folder, _ = tiny_compiled
    assert has_compiled(folder)
    manifest = read_manifest(folder)
    assert manifest["runtime"] == "litert" and "ai-edge-litert" in manifest["versions"]
    assert manifest["head"]["kind"] == "linear" and manifest["head"]["calibration"] == "sigmoid"
    assert manifest["source"]["uri"] == "test" and len(manifest["source"]["artifacts_sha256"]) == 64
    for variant in ("int8", "float32"):
        info = manifest["variants"][variant]
        assert (compiled_dir(folder) / info["file"]).stat().st_size == info["bytes"]
        assert manifest["parity"][variant]["synthetic"]["n"] == 42
    assert manifest["variants"]["int8"]["quantization"] == "dynamic"
    assert not list((folder / "artifacts").glob("tmp*")), "the staging folder is removed"


def test_compiled_float32_matches_the_pipeline(tiny_compiled):
    from emotify_ml.evaluation import full_proba

    folder, pipeline = tiny_compiled
    X, _ = synthetic_faces(21, seed=5)
    reference = full_proba(pipeline, X, 7)
    model = load_compiled(folder, "float32")
    np.testing.assert_allclose(model.predict_proba(X), reference, atol=1e-4)
    np.testing.assert_allclose(model.embed(X), pipeline[:-2].transform(X), atol=1e-4)
    timings = {}
    one_by_one = np.concatenate([model.predict_proba(X[i : i + 1], timings=timings) for i in range(len(X))])
    np.testing.assert_allclose(one_by_one, model.predict_proba(X), atol=1e-9)  # batching changes nothing
    assert timings["embed"] > 0 and timings["classify"] > 0
    assert model.predict_proba(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    bgr = np.repeat(X[:2, :, :, None], 3, axis=3)  # any crops: BGR, other sizes
    assert model.predict_proba(bgr).shape == (2, 7)


def test_int8_agrees_with_the_pipeline(tiny_compiled):
    from emotify_ml.evaluation import full_proba

    folder, pipeline = tiny_compiled
    X, _ = synthetic_faces(70, seed=7)
    model = load_compiled(folder, "int8")
    assert model.runtime == "litert-int8"
    # an untrained tiny net: its embedding, not its labels, is what int8 must keep (the shipped model's labels
    # are checked in test_shipped_compiled_parity_on_the_bundled_sample)
    keras_embedding = pipeline[:-2].transform(X)
    assert np.corrcoef(model.embed(X).ravel(), keras_embedding.ravel())[0, 1] > 0.99
    assert model.predict_proba(X).shape == full_proba(pipeline, X, 7).shape


@pytest.mark.parametrize("method,ensemble", [("sigmoid", False), ("sigmoid", True), ("isotonic", False)])
def test_folded_head_and_calibration_equal_sklearn(method, ensemble):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from emotify_ml.runtime.export import fold_linear_head

    rng = np.random.default_rng(0)
    X = rng.normal(size=(210, 12)) * rng.uniform(0.01, 5, 12) + rng.normal(size=12)
    y = np.arange(210) % 6  # six classes: a missing seventh gets a zero column
    clf = CalibratedClassifierCV(LinearSVC(), method=method, cv=3, ensemble=ensemble)
    pipe = make_pipeline(StandardScaler(), clf).fit(X, y)
    head = fold_linear_head(pipe[0], pipe[1])
    assert head["weights"].shape == (12, 6 * len(clf.calibrated_classifiers_))
    proba = calibrate(X @ head["weights"] + head["bias"], head)
    np.testing.assert_allclose(proba, pipe.predict_proba(X), atol=1e-10)
    assert isinstance(fold_linear_head(None, LinearSVC().fit(X, y)), str)  # no probabilities: not folded


@pytest.mark.slow  # a conversion of its own (TensorFlow's converter takes seconds)
def test_gbm_head_runs_in_sklearn_on_compiled_embeddings(tmp_path):
    from emotify_ml.evaluation import full_proba
    from emotify_ml.pipeline import make_gbm
    from emotify_ml.runtime.export import compile_model

    pipeline = _model(tmp_path / "model", make_gbm(max_iter=5, early_stopping=False), _tiny_backbone(tmp_path / "t.keras"))
    X, y = synthetic_faces(14, seed=2)
    compile_model(tmp_path / "model", variants=["float32"], parity_sets={"synthetic": (X, y)})
    model = load_compiled(tmp_path / "model", "float32")
    assert model.manifest["head"]["kind"] == "sklearn"
    np.testing.assert_allclose(model.predict_proba(X), full_proba(pipeline, X, 7), atol=1e-4)
    with pytest.raises(ModelNotFoundError, match="no int8"):
        load_compiled(tmp_path / "model", "int8")


@pytest.mark.slow  # a conversion of its own
def test_a_residual_squeeze_excite_backbone_compiles(tmp_path):
    from emotify_ml.backbones.cnn import build_backbone
    from emotify_ml.evaluation import full_proba
    from emotify_ml.pipeline import make_svm
    from emotify_ml.runtime.export import compile_model

    backbone = tmp_path / "res.keras"
    build_backbone(widths=(8, 16), convs_per_block=(2, 2), embedding_dim=16, residual=True, squeeze_excite=4).save(backbone)
    pipeline = _model(tmp_path / "model", make_svm(calibration_cv=2), backbone)
    X, y = synthetic_faces(14, seed=4)
    compile_model(tmp_path / "model", parity_sets={"synthetic": (X, y)})
    np.testing.assert_allclose(load_compiled(tmp_path / "model", "float32").predict_proba(X),
                               full_proba(pipeline, X, 7), atol=1e-4)
    keras_embedding = pipeline[:-2].transform(X)
    assert np.corrcoef(load_compiled(tmp_path / "model", "int8").embed(X).ravel(), keras_embedding.ravel())[0, 1] > 0.99


@pytest.mark.slow  # a conversion of its own
def test_backbone_softmax_compiles_as_a_linear_head(tmp_path):
    from emotify_ml.evaluation import full_proba
    from emotify_ml.features.cnn_embedding import BackboneClassifier
    from emotify_ml.runtime.export import compile_model

    backbone = _tiny_backbone(tmp_path / "t.keras")
    pipeline = _model(tmp_path / "model", BackboneClassifier(model_path=str(backbone)), backbone, features=False)
    X, y = synthetic_faces(14, seed=4)
    compile_model(tmp_path / "model", variants=["float32"], parity_sets={"synthetic": (X, y)})
    model = load_compiled(tmp_path / "model", "float32")
    assert model.manifest["head"]["calibration"] == "softmax"
    np.testing.assert_allclose(model.predict_proba(X), full_proba(pipeline, X, 7), atol=1e-5)


def test_hand_made_features_do_not_compile(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from emotify_ml.features.hog import HOGTransformer
    from emotify_ml.pipeline import build_pipeline
    from emotify_ml.runtime.export import ExportError, analyse_head

    X, y = synthetic_faces(14)
    pipeline = build_pipeline(features=HOGTransformer(), classifier=LogisticRegression(max_iter=50)).fit(X, y)
    with pytest.raises(ExportError, match="CNNEmbedder"):
        analyse_head(pipeline)


def test_load_compiled_errors(tmp_path, tiny_compiled):
    with pytest.raises(ModelNotFoundError, match="pipelines.export"):
        load_compiled(tmp_path)
    with pytest.raises(InputError, match="variant"):
        load_compiled(tiny_compiled[0], "fp16")


@pytest.mark.slow  # a conversion of its own
def test_export_entry_point_compiles_a_copy(tmp_path, tiny_compiled):
    from omegaconf import OmegaConf

    from pipelines.export import export

    cfg = OmegaConf.load(REPO / "experiments" / "export.yaml")
    cfg.tracking = {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    cfg.model, cfg.out, cfg.variants, cfg.parity_full = str(tiny_compiled[0]), str(tmp_path / "copy"), ["float32"], False
    folder = export(cfg)
    manifest = read_manifest(folder)
    assert list(manifest["variants"]) == ["float32"] and manifest["parity"]["float32"]["sample_all"]["n"] > 500
    assert manifest["source"]["uri"] == str(tiny_compiled[0])


def _copy_compiled(source: Path):
    """A stand-in for ``pipelines.export.compile_folder`` that copies ``source``'s compiled artifact (no conversion)."""
    import shutil

    def compile_folder(folder, resolved, **options):
        shutil.copytree(compiled_dir(source), compiled_dir(folder), dirs_exist_ok=True)
        return compiled_dir(folder)

    return compile_folder


def _export_cfg(tracking_uri, model):
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(REPO / "experiments" / "export.yaml")
    cfg.tracking, cfg.model = {"uri": tracking_uri}, model
    return cfg


@pytest.fixture
def store_champion(tiny_compiled, copied_store_uri, monkeypatch):
    """The tiny model logged in a run of a fresh store and registered as ``emotify-emotion@champion`` (not compiled);
    ``pipelines.export.compile_folder`` copies the tiny compiled artifact instead of converting. Returns the run id."""
    import mlflow

    import pipelines.export
    from emotify_ml.mlflow_runs import tracked_run
    from emotify_ml.models import log_emotion_model

    with tracked_run(tracking_uri=copied_store_uri, experiment="export", run_name="tiny") as run:
        log_emotion_model(tiny_compiled[1])
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "emotify-emotion").version
    mlflow.MlflowClient(copied_store_uri).set_registered_model_alias("emotify-emotion", "champion", version)
    monkeypatch.setattr(pipelines.export, "compile_folder", _copy_compiled(tiny_compiled[0]))
    return run.info.run_id


def test_export_of_a_store_model_stores_the_artifact_in_it(store_champion, copied_store_uri, monkeypatch, tmp_path):
    """The champion of the store scores compiled once exported: the artifact goes into its MLflow model, and every
    cached copy of it (the version's, the run's) is downloaded anew, here and on another machine."""
    import pipelines.export
    from emotify_ml.models import load_emotion_model, resolve_model

    uris = (None, "models:/emotify-emotion/1", f"runs:/{store_champion}/model")
    assert not any(has_compiled(resolve_model(uri, tracking_uri=copied_store_uri).local_dir) for uri in uris)
    folder = pipelines.export.export(_export_cfg(copied_store_uri, f"runs:/{store_champion}/model"))  # via the run
    assert has_compiled(folder)
    for uri in uris:
        assert has_compiled(resolve_model(uri, tracking_uri=copied_store_uri).local_dir), uri
    assert load_emotion_model(tracking_uri=copied_store_uri).runtime == "litert-int8"
    monkeypatch.setenv("EMOTIFY_CACHE_DIR", str(tmp_path / "another_machine"))  # nothing cached: from the store
    assert has_compiled(resolve_model("models:/emotify-emotion@champion", tracking_uri=copied_store_uri).local_dir)


def test_export_refuses_an_out_folder_that_holds_other_things(tiny_compiled, tmp_path):
    from emotify_ml.exceptions import ConfigError
    from pipelines.export import export

    (tmp_path / "notes.txt").write_text("not a model")
    for out in (tmp_path, tiny_compiled[0].parent):  # a folder of other files; the model's own parent
        cfg = _export_cfg(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tiny_compiled[0]))
        cfg.out = str(out)
        with pytest.raises(ConfigError, match="holds other things"):
            export(cfg)
    assert (tmp_path / "notes.txt").is_file() and (tiny_compiled[0] / "MLmodel").is_file()


def test_ship_model_also_stores_the_artifact_in_the_champion(store_champion, copied_store_uri, hydra_main, tmp_path):
    import mlflow

    from emotify_ml.models import resolve_model
    from emotify_ml.paths import sha256_file

    hydra_main("pipelines.ship_model", f"tracking.uri={copied_store_uri}", f"dest={tmp_path / 'shipped'}")
    assert has_compiled(tmp_path / "shipped")
    tags = mlflow.MlflowClient(copied_store_uri).get_model_version("emotify-emotion", "1").tags
    assert tags["emotify.compiled"] == sha256_file(compiled_dir(tmp_path / "shipped") / "manifest.json")
    assert has_compiled(resolve_model(None, tracking_uri=copied_store_uri).local_dir)


def test_export_of_a_version_registered_from_a_folder_is_one_model_error(tiny_compiled, copied_store_uri, monkeypatch):
    import mlflow

    import pipelines.export
    from emotify_ml.exceptions import ModelError

    client = mlflow.MlflowClient(copied_store_uri)
    client.create_registered_model("emotify-emotion")
    version = client.create_model_version("emotify-emotion", source=str(tiny_compiled[0])).version
    monkeypatch.setattr(pipelines.export, "compile_folder", _copy_compiled(tiny_compiled[0]))
    with pytest.raises(ModelError, match="not a model logged in the tracking store.*out=<folder>"):
        pipelines.export.export(_export_cfg(copied_store_uri, f"models:/emotify-emotion/{version}"))
    assert "emotify.compiled" not in client.get_model_version("emotify-emotion", version).tags


_NO_TF_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from emotify_ml.runtime import load_compiled
    for variant in ("int8", "float32"):
        proba = load_compiled(sys.argv[1], variant).predict_proba(np.full((3, 64, 64), 120, np.uint8))
        assert proba.shape == (3, 7), proba.shape
    try:
        from emotify_ml.models import load_model
    except ImportError:
        load_model = None
    if load_model is not None:  # the model loader's runtime hook
        fitted = load_model(sys.argv[1], runtime="compiled")
        assert fitted.runtime == "litert-int8", fitted.runtime
        assert fitted.predict_proba(np.full((2, 48, 48), 90, np.uint8), timings={}).shape == (2, 7)
    # no TensorFlow or Keras; and, for start-up time, neither sklearn nor mlflow (a linear head is NumPy)
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "sklearn", "mlflow"))
    print("HEAVY", heavy)
    sys.exit(1 if heavy else 0)
""")


def test_scoring_a_compiled_model_never_imports_tensorflow(tiny_compiled):
    result = subprocess.run([sys.executable, "-c", _NO_TF_SCRIPT, str(tiny_compiled[0])],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


@pytest.mark.skipif(not has_compiled(SHIPPED), reason="the shipped model has no compiled artifact")
def test_shipped_compiled_parity_on_the_bundled_sample(sample_data):
    """The shipped model's compiled graphs against its Keras pipeline on every face of the bundled sample."""
    from emotify_ml.evaluation import full_proba
    from emotify_ml.runtime.export import load_pipeline

    reference = full_proba(load_pipeline(SHIPPED), sample_data.images, 7)
    shipped = read_manifest(SHIPPED)["variants"]
    for variant, agreement, points in (("float32", 0.995, 0.3), ("int8", 0.985, 0.7)):
        if variant not in shipped:
            continue
        got = load_compiled(SHIPPED, variant).predict_proba(sample_data.images)
        assert np.mean(got.argmax(1) == reference.argmax(1)) >= agreement, variant
        accuracy = [np.mean(p.argmax(1) == sample_data.labels) for p in (reference, got)]
        assert abs(accuracy[1] - accuracy[0]) * 100 <= points, (variant, accuracy)
    manifest = json.loads((compiled_dir(SHIPPED) / "manifest.json").read_text())
    assert manifest["parity"]["int8"]["sample_all"]["label_agreement"] >= 0.985
    full = manifest["parity"]["int8"].get("fer2013_PrivateTest")
    if full:  # measured at export on the full PrivateTest: within the bounds
        assert full["label_agreement"] >= 0.985 and abs(full["accuracy_delta_points"]) <= 0.7


@pytest.mark.skipif(not has_compiled(SHIPPED), reason="the shipped model has no compiled artifact")
def test_live_on_a_photo_with_the_default_model_imports_no_tensorflow_nor_mlflow(tmp_path, sample_data):
    """Start-up: no store in the working folder, so the default (shipped, compiled) model needs neither."""
    import cv2

    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), cv2.resize(sample_data.images[0], (192, 192)))
    script = ("import sys; from emotify_ml.live.__main__ import main; "
              f"code = main(['--source', {str(photo)!r}, '--no-display', '--quiet', "
              f"'--jsonl', {str(tmp_path / 'f.jsonl')!r}]); "
              "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'mlflow')); "
              "print('HEAVY', heavy); sys.exit(code or (1 if heavy else 0))")
    env = {k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert (tmp_path / "f.jsonl").read_text().strip()
