"""Packed checkpoints: a training committed on one machine resumes on another."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from emotify_ml.exceptions import DataError

TINY = {"widths": [4, 8], "convs_per_block": [1, 1], "embedding_dim": 16, "dropout": 0.1}
KWARGS = dict(epochs=3, batch_size=8, warmup_epochs=1, model=TINY, mixed_precision=False)


def _compiled(model=TINY):
    import keras

    from emotify_ml.backbones.cnn import build_backbone

    net = build_backbone(**model)
    net.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
    net.optimizer.build(net.trainable_variables)
    return net


def _slots(net):
    return {v.path.split("/", 1)[-1]: v.numpy() for v in net.optimizer.variables if len(v.shape)}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """One epoch of a three-epoch training, its folder and the packed copy kept beside it."""
    from emotify_ml.backbones.train import train_backbone
    from tests.conftest import synthetic_faces

    X, y = synthetic_faces()
    root = tmp_path_factory.mktemp("packed")
    summary = train_backbone(X, y, X, y, out_dir=root / "run", pack_to=root / "packed", max_epochs_this_call=1,
                             **KWARGS)
    return root, summary


def test_the_packed_copy_holds_the_state_and_is_smaller(packed):
    root, summary = packed
    assert summary["epochs_done"] == 1 and summary["model_path"] is None
    assert sorted(p.name for p in (root / "packed").iterdir()) == ["checkpoint.npz", "state.json"]
    assert json.loads((root / "packed" / "state.json").read_text()) == json.loads((root / "run" / "state.json").read_text())
    assert (root / "packed" / "checkpoint.npz").stat().st_size < 0.8 * (root / "run" / "last.keras").stat().st_size


def test_restoring_gives_the_weights_exactly_and_the_optimizer_to_bfloat16(packed):
    import keras

    from emotify_ml.backbones.checkpoint import restore_packed

    root, _ = packed
    full = keras.saving.load_model(root / "run" / "last.keras")
    net = _compiled()
    assert restore_packed(net, root / "packed" / "checkpoint.npz") is None  # the only epoch is the best
    for a, b in zip(full.get_weights(), net.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(net.optimizer.iterations.numpy()) == int(full.optimizer.iterations.numpy()) > 0
    want, got = _slots(full), _slots(net)
    assert set(want) == set(got) and any(np.abs(v).max() > 0 for v in want.values())
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=2 ** -8, atol=1e-30, err_msg=name)


def test_a_new_folder_resumes_the_packed_copy_on_the_same_schedule(packed, faces):
    import keras

    from emotify_ml.backbones.train import train_backbone

    root, _ = packed
    X, y = faces
    resumed = train_backbone(X, y, X, y, out_dir=root / "elsewhere", init_from=root / "packed", **KWARGS)
    assert resumed["epochs_done"] == 3 and [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["model_path"] is not None
    # the iteration count came back: the learning rate after epoch 2 is the schedule's after two epochs of steps
    steps = -(-len(X) // KWARGS["batch_size"])
    schedule = keras.optimizers.schedules.CosineDecay(2e-4, decay_steps=2 * steps, warmup_target=2e-3,
                                                      warmup_steps=steps, alpha=0.01)  # train_backbone's, 3 epochs
    after = [float(schedule(n * steps)) for n in (1, 2, 3)]
    assert after[0] > after[1] > after[2]
    assert [h["learning_rate"] for h in resumed["history"]] == pytest.approx(after, rel=1e-5)


def test_a_call_that_trains_no_epoch_packs_the_folder_as_it_stands(packed, faces):
    from emotify_ml.backbones.train import train_backbone

    root, _ = packed
    X, y = faces
    again = train_backbone(X, y, X, y, out_dir=root / "run", pack_to=root / "later", max_epochs_this_call=0, **KWARGS)
    assert again["epochs_done"] == 1
    with np.load(root / "packed" / "checkpoint.npz") as a, np.load(root / "later" / "checkpoint.npz") as b:
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_a_best_epoch_before_the_last_travels_and_ends_as_the_model(tmp_path, faces):
    """Epoch 1 is made the best (an accuracy no later epoch reaches): packed, resumed elsewhere, it is the model."""
    import keras

    from emotify_ml.backbones.cnn import build_backbone
    from emotify_ml.backbones.train import train_backbone

    X, y = faces
    train_backbone(X, y, X, y, out_dir=tmp_path / "run", max_epochs_this_call=2, **KWARGS)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    state.update(best_epoch=1, best_val_accuracy=2.0)
    (tmp_path / "run" / "state.json").write_text(json.dumps(state))
    marked = build_backbone(**TINY)  # weights no training gives: the test sees which weights end as the model
    marked.set_weights([np.full_like(w, 0.01 * i) for i, w in enumerate(marked.get_weights())])
    marked.save_weights(tmp_path / "run" / "best.weights.h5")
    train_backbone(X, y, X, y, out_dir=tmp_path / "run", pack_to=tmp_path / "packed", max_epochs_this_call=0, **KWARGS)
    with np.load(tmp_path / "packed" / "checkpoint.npz") as packed_file:
        assert any(k.startswith("best/") for k in packed_file.files) and int(packed_file["epochs_done"]) == 2
    done = train_backbone(X, y, X, y, out_dir=tmp_path / "two", init_from=tmp_path / "packed", **KWARGS)
    assert done["epochs_done"] == 3 and done["best_epoch"] == 1
    for a, b in zip(keras.saving.load_model(done["model_path"]).get_weights(), marked.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "two" / "checkpoint.npz").exists()  # last.keras took over after epoch 3


def test_packed_files_of_different_epochs_another_model_or_pack_to_the_folder_itself_are_refused(packed, faces,
                                                                                                   tmp_path):
    import shutil

    from emotify_ml.backbones.train import train_backbone

    root, _ = packed
    X, y = faces
    with pytest.raises(ValueError, match="pack_to must be another folder than the checkpoint folder"):
        train_backbone(X, y, X, y, out_dir=root / "run", pack_to=root / "run", max_epochs_this_call=0, **KWARGS)
    mixed = tmp_path / "mixed"
    shutil.copytree(root / "packed", mixed)
    state = json.loads((mixed / "state.json").read_text())
    state["epochs_done"] = 2
    (mixed / "state.json").write_text(json.dumps(state))
    with pytest.raises(DataError, match="was written after epoch 1 but its state.json says 2 epochs are done"):
        train_backbone(X, y, X, y, out_dir=tmp_path / "a", init_from=mixed, **KWARGS)
    with pytest.raises(DataError, match="was trained with model .* this call asks for"):
        train_backbone(X, y, X, y, out_dir=tmp_path / "b", init_from=root / "packed",
                       **{**KWARGS, "model": {**TINY, "dropout": 0.5}})


def test_the_best_epoch_travels_when_it_is_not_the_last(tmp_path):
    from emotify_ml.backbones.checkpoint import restore_packed, save_packed

    net = _compiled()
    rng = np.random.default_rng(0)
    for variable in net.optimizer.variables:
        if len(variable.shape):
            variable.assign(rng.random(variable.shape).astype("float32"))
    best = [w + 1.0 for w in net.get_weights()]
    save_packed(net, tmp_path / "c.npz", best_weights=best)
    other = _compiled()
    restored = restore_packed(other, tmp_path / "c.npz")
    for a, b in zip(best, restored, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_packed_checkpoint_of_another_net_or_no_checkpoint_is_refused(tmp_path):
    from emotify_ml.backbones.checkpoint import restore_packed, save_packed

    save_packed(_compiled(), tmp_path / "c.npz")
    with pytest.raises(DataError, match="weights of another net"):
        restore_packed(_compiled({**TINY, "widths": [4, 16]}), tmp_path / "c.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable packed checkpoint"):
        restore_packed(_compiled(), tmp_path / "junk.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "c.npz").read_bytes()[:3000])  # an interrupted copy
    with pytest.raises(DataError, match="not a readable packed checkpoint"):
        restore_packed(_compiled(), tmp_path / "cut.npz")


def test_init_from_a_folder_without_a_checkpoint_says_what_it_needs(tmp_path, faces):
    from emotify_ml.backbones.train import train_backbone

    X, y = faces
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "state.json").write_text("{}")
    with pytest.raises(DataError, match="needs state.json and last.keras, or state.json and checkpoint.npz"):
        train_backbone(X, y, X, y, out_dir=tmp_path / "b", init_from=tmp_path / "half", **KWARGS)


def test_a_run_resumed_from_a_packed_folder_logs_the_earlier_epochs(packed, tmp_path):
    import shutil

    import mlflow

    from pipelines.train_backbone import log_resumed_history

    root, _ = packed
    source = shutil.copytree(root / "packed", tmp_path / "packed")
    (source / "mlflow_run.json").write_text(json.dumps({"run_id": "the-first-machines-run"}))
    uri, before = f"sqlite:///{tmp_path}/m.db", mlflow.get_tracking_uri()
    client = mlflow.tracking.MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(run_id=run_id):
            log_resumed_history(source, tmp_path / "fresh")
            log_resumed_history(None, tmp_path / "fresh")  # nothing to resume: nothing more logged
    finally:
        mlflow.set_tracking_uri(before)
    run = client.get_run(run_id)
    assert run.data.tags["continues_run"] == "the-first-machines-run" and run.data.tags["resumed_after_epoch"] == "1"
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1]


@pytest.mark.slow
def test_a_tracked_training_resumed_on_another_machine_logs_the_whole_curve(tmp_path, hydra_main):
    """Machine one trains epoch 1 and leaves the packed folder; machine two (another store) trains epoch 2."""
    import mlflow

    tiny = ["backbone=vgg", "model.widths=[4,8]", "model.convs_per_block=[1,1]", "model.embedding_dim=16",
            "train.epochs=2", "train.warmup_epochs=0", "train.batch_size=32", "train.mixed_precision=false"]
    hydra_main("pipelines.train_backbone", *tiny, "train.max_epochs_this_call=1", f"train.pack_to={tmp_path}/packed",
               f"out_dir={tmp_path}/one", f"tracking.uri=sqlite:///{tmp_path}/one.db", f"hydra.run.dir={tmp_path}/h1")
    first = json.loads((tmp_path / "packed" / "mlflow_run.json").read_text())["run_id"]
    hydra_main("pipelines.train_backbone", *tiny, f"train.init_from={tmp_path}/packed", f"out_dir={tmp_path}/two",
               f"tracking.uri=sqlite:///{tmp_path}/two.db", f"hydra.run.dir={tmp_path}/h2")
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path}/two.db")
    run_id = json.loads((tmp_path / "two" / "mlflow_run.json").read_text())["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["continues_run"] == first and run.data.tags["resumed_after_epoch"] == "1"
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2]  # epoch 1 from the first machine
    assert "test_accuracy" in run.data.metrics and (tmp_path / "two" / "backbone.keras").exists()


def test_a_held_folder_refuses_a_second_holder_until_released(tmp_path):
    from emotify_ml.backbones.checkpoint import hold
    from emotify_ml.exceptions import FolderInUseError

    with hold(tmp_path / "run", None, tmp_path / "packed"):
        assert (tmp_path / "run" / ".lock").read_text().startswith(f"pid {os.getpid()} on ")
        with pytest.raises(FolderInUseError, match="is being written by another training"), hold(tmp_path / "packed"):
            pass
        with hold(tmp_path / "other"):  # other folders stay free
            pass
    with hold(tmp_path / "run"), hold(tmp_path / "packed"):  # released at the end of the block
        pass
