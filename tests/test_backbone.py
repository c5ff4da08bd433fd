"""The CNN backbone: training (one tiny epoch, resumable), the embedder and the softmax head."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from emotify_ml.exceptions import InputError, ModelNotFoundError
from emotify_ml.features.cnn_embedding import BackboneClassifier, CNNEmbedder

TINY = {"widths": [4, 8], "convs_per_block": [1, 1], "embedding_dim": 16, "dropout": 0.1}


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    """A tiny backbone trained for one epoch on a slice of the bundled sample."""
    from emotify_ml.backbones.train import train_backbone
    from emotify_ml.data import load_fer2013

    data = load_fer2013(cache=False)
    train, val = data.split("Training"), data.split("PublicTest")
    out = tmp_path_factory.mktemp("backbone")
    summary = train_backbone(train.images[::2], train.labels[::2], val.images, val.labels, out_dir=out, epochs=1,
                             batch_size=64, warmup_epochs=0, model=TINY, mixed_precision=False, seed=1)
    return out, summary


def test_training_writes_checkpoints_and_a_model(tiny_backbone):
    out, summary = tiny_backbone
    assert summary["epochs_done"] == 1 and summary["best_epoch"] == 1
    assert {"loss", "val_accuracy", "learning_rate"} <= set(summary["history"][0])
    for name in ("last.keras", "best.weights.h5", "state.json", "backbone.keras"):
        assert (out / name).exists(), name
    assert json.loads((out / "state.json").read_text())["epochs_done"] == 1
    import h5py

    with h5py.File(out / "best.weights.h5") as best:  # the net's weights only: small enough to commit
        assert "optimizer" not in best and "layers" in best


def test_training_resumes_after_the_last_epoch(tmp_path, faces):
    from emotify_ml.backbones.train import train_backbone

    X, y = faces
    kwargs = dict(out_dir=tmp_path, epochs=2, batch_size=8, warmup_epochs=0, model=TINY, mixed_precision=False)
    first = train_backbone(X, y, X, y, max_epochs_this_call=1, **kwargs)
    assert first["epochs_done"] == 1 and first["model_path"] is None
    second = train_backbone(X, y, X, y, **kwargs)
    assert second["epochs_done"] == 2 and [h["epoch"] for h in second["history"]] == [1, 2]
    assert second["model_path"] is not None


def test_embedder_contract_and_determinism(tiny_backbone, sample_data):
    path = str(tiny_backbone[0] / "backbone.keras")
    X = sample_data.images[:40]
    emb = CNNEmbedder(model_path=path, batch_size=16)
    with pytest.raises(NotFittedError):
        emb.transform(X)
    assert clone(emb).get_params() == emb.get_params()
    out = emb.fit(X).transform(X)
    assert out.shape == (40, 16) and out.dtype == np.float32
    np.testing.assert_array_equal(out, emb.transform(X))  # deterministic
    np.testing.assert_allclose(out[:7], emb.transform(X[:7]), rtol=1e-5, atol=1e-6)  # batch-independent
    assert list(emb.get_feature_names_out()[:2]) == ["cnn0", "cnn1"]
    restored = pickle.loads(pickle.dumps(emb))  # the weights travel inside the pickle
    assert "_fn" not in restored.__dict__
    np.testing.assert_allclose(restored.transform(X), out, rtol=1e-5, atol=1e-6)
    gap = CNNEmbedder(model_path=path, layer="gap").fit(X)
    assert gap.transform(X[:3]).shape == (3, 8)
    flip = CNNEmbedder(model_path=path, flip_tta=True).fit(X).transform(X[:3])
    mirrored = CNNEmbedder(model_path=path, flip_tta=True).fit(X).transform(X[:3, :, ::-1])
    np.testing.assert_allclose(flip, mirrored, rtol=1e-4, atol=1e-5)  # flip averaging is mirror-invariant


def test_embedder_errors(tiny_backbone, tmp_path):
    path = str(tiny_backbone[0] / "backbone.keras")
    X = np.zeros((2, 48, 48), np.uint8)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        CNNEmbedder(model_path=str(tmp_path / "none.keras")).fit(X)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        CNNEmbedder(model_path=path, layer="nope").fit(X)
    with pytest.raises(InputError, match="takes \\(48, 48\\) images"):
        CNNEmbedder(model_path=path).fit(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(InputError, match="expects \\(N, 48, 48\\)"):
        CNNEmbedder(model_path=path).fit(X).transform(np.zeros((2, 48, 48, 3), np.uint8))


def test_backbone_classifier_matches_keras(tiny_backbone, sample_data):
    import keras

    path = tiny_backbone[0] / "backbone.keras"
    X = sample_data.images[:10]
    clf = BackboneClassifier(model_path=str(path)).fit(X, sample_data.labels[:10])
    proba = clf.predict_proba(X)
    expected = keras.saving.load_model(path)(X.astype("float32")[..., None], training=False)
    np.testing.assert_allclose(proba, np.asarray(expected), rtol=1e-5, atol=1e-6)
    assert clf.predict(X).shape == (10,) and list(clf.classes_) == list(range(7))


def test_residual_units_pair_the_convolutions_and_keep_their_count():
    from emotify_ml.backbones.cnn import build_backbone

    kw = {"widths": (4, 8), "convs_per_block": (2, 4), "embedding_dim": 8}
    plain, residual = build_backbone(**kw), build_backbone(**kw, residual=True)
    se = build_backbone(**kw, residual=True, squeeze_excite=2)

    def convs(model, size):
        return [layer for layer in model.layers if type(layer).__name__ == "Conv2D" and layer.kernel_size == (size, size)]

    assert len(convs(plain, 3)) == len(convs(residual, 3)) == len(convs(se, 3)) == 6
    assert not convs(plain, 1) and len(convs(residual, 1)) == 2  # a projection where the width changes: 1 -> 4, 4 -> 8
    assert sum(type(layer).__name__ == "Add" for layer in residual.layers) == 3
    assert sum(type(layer).__name__ == "Multiply" for layer in se.layers) == 3 and residual.name == "emotify_resnet"
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype("float32")
    for model in (plain, residual, se):
        proba = np.asarray(model(x, training=False))
        assert proba.shape == (3, 7) and np.allclose(proba.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("kw, message", [({"convs_per_block": (2, 3), "residual": True}, "must be even"),
                                         ({"convs_per_block": (2, 2), "squeeze_excite": 4}, "residual=True")])
def test_residual_option_errors(kw, message):
    from emotify_ml.backbones.cnn import build_backbone

    with pytest.raises(ValueError, match=message):
        build_backbone(widths=(4, 8), embedding_dim=8, **kw)
