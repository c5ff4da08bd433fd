"""Backbone training: camera augmentation, class balance, distillation, resuming committed checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotify_ml.backbones.camera import CAMERA_DEFAULTS, camera_augment
from emotify_ml.backbones.train import balanced_weights, class_prior
from emotify_ml.exceptions import DataError

TINY = {"widths": [4, 8], "convs_per_block": [1, 1], "embedding_dim": 16, "dropout": 0.1}
OFF = {k: 0.0 for k in CAMERA_DEFAULTS if k.startswith("p_")}


def _faces(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(40, 220, (n, 48, 48), dtype=np.uint8)


def test_camera_augment_is_seeded_and_keeps_shape():
    faces = _faces()
    a = camera_augment(faces, np.random.default_rng(3))
    b = camera_augment(faces, np.random.default_rng(3))
    assert a.shape == faces.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, camera_augment(faces, np.random.default_rng(4)))
    assert np.array_equal(camera_augment(faces, np.random.default_rng(0), **OFF), faces)  # every effect off: unchanged


@pytest.mark.parametrize("effect", ["p_framing", "p_blur", "p_downscale", "p_noise", "p_jpeg", "p_gamma", "p_contrast",
                                    "p_colour", "p_erase"])
def test_each_effect_changes_the_face(effect):
    faces = _faces(4)
    out = camera_augment(faces, np.random.default_rng(1), **{**OFF, effect: 1.0})
    assert not np.array_equal(out, faces), effect


def test_blur_and_downscale_remove_detail_and_jpeg_keeps_the_mean():
    faces = _faces(4)
    detail = lambda x: np.abs(np.diff(x.astype(float), axis=2)).mean()  # noqa: E731
    blurred = camera_augment(faces, np.random.default_rng(0), **{**OFF, "p_blur": 1.0})
    down = camera_augment(faces, np.random.default_rng(0), **{**OFF, "p_downscale": 1.0})
    assert detail(blurred) < detail(faces) and detail(down) < detail(faces)
    jpeg = camera_augment(faces, np.random.default_rng(0), **{**OFF, "p_jpeg": 1.0, "jpeg_quality": (30, 30)})
    assert abs(jpeg.mean() - faces.mean()) < 3


def test_camera_augment_errors():
    with pytest.raises(ValueError, match="unknown camera augmentation parameter"):
        camera_augment(_faces(1), np.random.default_rng(0), sharpen=1.0)
    with pytest.raises(ValueError, match=r"\(N, H, W\) uint8"):
        camera_augment(np.zeros((2, 48, 48), np.float32), np.random.default_rng(0))


def test_balanced_weights_and_prior():
    y = np.r_[np.zeros(90, int), np.ones(10, int)]
    w = balanced_weights(y, 2)
    assert w.mean() == pytest.approx(1.0) and w[-1] / w[0] == pytest.approx(9.0)
    assert balanced_weights(y, 2, tau=0.0).tolist() == [1.0] * 100
    assert class_prior(y, 3).min() > 0  # an absent class never gives log(0)


def test_logit_adjusted_loss_matches_numpy():
    from emotify_ml.backbones.train import logit_adjusted_loss_class

    prior = np.array([0.7, 0.2, 0.1])
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 2]]
    loss = logit_adjusted_loss_class()(np.log(prior).tolist(), tau=1.0)
    logits = np.log(proba) + np.log(prior)
    expected = -np.sum(y * (logits - np.log(np.exp(logits).sum(1, keepdims=True))), axis=1).mean()
    assert float(loss(y, proba)) == pytest.approx(expected, rel=1e-5)
    plain = logit_adjusted_loss_class()(np.log(prior).tolist(), tau=0.0)
    assert float(plain(y, proba)) == pytest.approx(-np.mean(np.log([0.6, 0.6])), rel=1e-5)


def test_training_with_camera_and_balance_resumes_from_a_committed_checkpoint(tmp_path, faces):
    from emotify_ml.backbones.train import train_backbone

    X, y = faces
    kwargs = dict(epochs=2, batch_size=8, warmup_epochs=0, model=TINY, mixed_precision=False, camera={},
                  class_balance="logit_adjust")
    first = train_backbone(X, y, X, y, out_dir=tmp_path / "a", max_epochs_this_call=1, **kwargs)
    assert first["epochs_done"] == 1 and first["model_path"] is None
    # a new folder resumes the checkpoint folder committed elsewhere
    resumed = train_backbone(X, y, X, y, out_dir=tmp_path / "b", init_from=tmp_path / "a", **kwargs)
    assert resumed["epochs_done"] == 2 and [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["model_path"] is not None
    with pytest.raises(DataError, match="not a checkpoint folder"):
        train_backbone(X, y, X, y, out_dir=tmp_path / "d", init_from=tmp_path, **kwargs)
    with pytest.raises(ValueError, match="class_balance must be one of"):
        train_backbone(X, y, X, y, out_dir=tmp_path / "e", **{**kwargs, "class_balance": "focal"})


@pytest.mark.slow
def test_a_committed_model_starts_a_new_training(tmp_path, faces):
    """A finished backbone's weights (matched by layer name and shape) start a fine-tuning run with sample weights."""
    import keras

    from emotify_ml.backbones.train import train_backbone

    X, y = faces
    kwargs = dict(epochs=1, batch_size=8, warmup_epochs=0, model=TINY, mixed_precision=False)
    first = train_backbone(X, y, X, y, out_dir=tmp_path / "a", **kwargs)
    source = keras.saving.load_model(first["model_path"])
    warm = train_backbone(X, y, X, y, out_dir=tmp_path / "b", init_from=first["model_path"],
                          **{**kwargs, "epochs": 1, "learning_rate": 1e-9, "class_balance": "weights"})
    tuned = keras.saving.load_model(warm["model_path"])
    np.testing.assert_allclose(tuned.predict(X[..., None].astype("float32"), verbose=0),
                               source.predict(X[..., None].astype("float32"), verbose=0), atol=1e-3)


def test_distillation_loss_matches_numpy():
    from emotify_ml.backbones.train import distillation_classes

    loss_class, accuracy_class = distillation_classes()
    student = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], np.float32)
    teacher = np.array([[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]], np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 1]]
    alpha, t = 0.3, 2.0

    def soften(p):
        z = np.log(p) / t
        return np.exp(z) / np.exp(z).sum(1, keepdims=True)

    hard = -np.sum(y * np.log(student), axis=1)
    q, p = soften(teacher), soften(student)
    soft = np.sum(q * (np.log(q) - np.log(p)), axis=1) * t * t
    loss = loss_class(3, alpha=alpha, temperature=t)
    assert float(loss(np.concatenate([y, teacher], 1), student)) == pytest.approx(
        np.mean((1 - alpha) * hard + alpha * soft), rel=1e-5)
    assert float(loss(y, student)) == pytest.approx(np.mean(hard), rel=1e-5)  # validation: labels only
    assert float(loss(np.concatenate([y, student], 1), student)) == pytest.approx((1 - alpha) * np.mean(hard), rel=1e-5)
    accuracy = accuracy_class(3)
    accuracy.update_state(np.concatenate([y, teacher], 1), student)
    assert float(accuracy.result()) == pytest.approx(0.5)


def test_distillation_trains_and_resumes_only_with_its_teacher(tmp_path, faces):
    from emotify_ml.backbones.train import train_backbone

    X, y = faces
    kwargs = dict(epochs=2, batch_size=8, warmup_epochs=0, model=TINY, mixed_precision=False)
    teacher = train_backbone(X, y, X, y, out_dir=tmp_path / "teacher", **{**kwargs, "epochs": 1})["model_path"]
    student = dict(kwargs, model={**TINY, "widths": [2, 4]}, teacher=teacher, distill_alpha=0.7)
    first = train_backbone(X, y, X, y, out_dir=tmp_path / "s", max_epochs_this_call=1, **student)
    assert first["epochs_done"] == 1 and 0.0 <= first["history"][0]["val_accuracy"] <= 1.0
    with pytest.raises(DataError, match="trained with distillation"):
        train_backbone(X, y, X, y, out_dir=tmp_path / "s", **kwargs)
    second = train_backbone(X, y, X, y, out_dir=tmp_path / "s", **student)
    assert second["epochs_done"] == 2 and second["model_path"] is not None
    with pytest.raises(ValueError, match="do not combine"):
        train_backbone(X, y, X, y, out_dir=tmp_path / "e", **student, class_balance="logit_adjust")
    with pytest.raises(DataError, match="does not exist"):
        train_backbone(X, y, X, y, out_dir=tmp_path / "e", **{**student, "teacher": tmp_path / "none.keras"})


def test_an_ensemble_of_teachers_is_distilled_as_the_mean_of_their_probabilities(tmp_path, faces):
    from emotify_ml.backbones.train import teacher_probabilities, train_backbone

    X, y = faces
    kwargs = dict(epochs=1, batch_size=8, warmup_epochs=0, model=TINY, mixed_precision=False)
    teachers = [train_backbone(X, y, X, y, out_dir=tmp_path / f"t{seed}", **kwargs, seed=seed)["model_path"]
                for seed in (0, 1)]
    each = [teacher_probabilities(t, X, 7) for t in teachers]
    np.testing.assert_allclose(teacher_probabilities(teachers, X, 7), (each[0] + each[1]) / 2, atol=1e-6)
    student = dict(kwargs, model={**TINY, "widths": [2, 4]}, teacher=teachers)
    done = train_backbone(X, y, X, y, out_dir=tmp_path / "s", **student)
    assert done["model_path"] is not None and len(json.loads((tmp_path / "s" / "state.json").read_text())[
        "distill"]["teacher_sha256"]) == 2
    with pytest.raises(DataError, match="trained with distillation"):  # resumes only with the same ensemble
        train_backbone(X, y, X, y, out_dir=tmp_path / "s", **{**student, "epochs": 2, "teacher": teachers[0]})
    with pytest.raises(ValueError, match="empty list"):
        train_backbone(X, y, X, y, out_dir=tmp_path / "e", **{**student, "teacher": []})
