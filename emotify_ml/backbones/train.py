"""Train a backbone with augmentation, AdamW + warm-up/cosine, early stopping and resumable checkpoints.

Plain arguments in, a summary out; MLflow logging is injected through
``on_epoch_end`` so this module knows nothing of tracking or Hydra.

Checkpoint folder layout (``out_dir``):

- ``last.keras``: the full model with optimizer state after the last finished epoch;
- ``best.weights.h5``: weights of the epoch with the best validation accuracy;
- ``state.json``: epochs done, best epoch and accuracy, the per-epoch history;
- ``backbone.keras``: the final float32 inference model (best weights), written at the end.

Running again with the same ``out_dir`` resumes after the last finished epoch.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from emotify_ml.backbones.cnn import build_augmenter, build_backbone
from emotify_ml.exceptions import DataError

log = logging.getLogger(__name__)


def _dataset(images, labels, *, batch_size, augmenter=None, shuffle_seed=None):
    import tensorflow as tf

    x = images.astype("float32")[..., None]
    ds = tf.data.Dataset.from_tensor_slices((x, labels.astype("int32")))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augmenter is not None:
        ds = ds.map(lambda a, b: (augmenter(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX-512 BF16 or AMX), where mixed precision pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def train_backbone(
    train_images,
    train_labels,
    val_images,
    val_labels,
    *,
    out_dir,
    epochs: int = 32,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    weight_decay: float = 5e-4,
    warmup_epochs: int = 2,
    label_smoothing: float = 0.1,
    patience: int = 8,
    mixed_precision: bool | None = None,
    seed: int = 0,
    model: dict | None = None,
    augment: dict | None = None,
    on_epoch_end=None,
    max_epochs_this_call: int | None = None,
) -> dict:
    """Train (or resume) a backbone and return a summary.

    Parameters
    ----------
    train_images, val_images : (N, 48, 48) uint8
    train_labels, val_labels : (N,) int
    out_dir : path
        Checkpoint folder; training resumes from it when it holds ``state.json``.
    epochs : int
        Total epochs of the cosine schedule. Resuming with another value re-plans
        the schedule so that it ends at the new total.
    mixed_precision : bool or None
        Use ``mixed_bfloat16`` (None: on a CPU with native bfloat16, AVX-512 BF16 or AMX,
        where it roughly doubles throughput; off on GPUs and on other CPUs, where it is emulated).
    model, augment : dict
        Keyword arguments of :func:`build_backbone` and :func:`build_augmenter`.
    on_epoch_end : callable(epoch: int, logs: dict), optional
        Called after every epoch with train/val metrics (e.g. to log to MLflow).
    max_epochs_this_call : int, optional
        Stop after this many epochs in this call (checkpoints are kept), to split
        long runs across sessions.

    Returns
    -------
    dict with ``best_epoch``, ``best_val_accuracy``, ``epochs_done``, ``history``,
    ``stopped_early`` and ``model_path`` (the float32 inference model; None if unfinished).
    """
    import keras
    import tensorflow as tf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_file = out / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {
        "epochs_done": 0, "best_epoch": -1, "best_val_accuracy": -1.0, "history": [], "stopped_early": False}
    model_kwargs = dict(model or {})
    keras.utils.set_random_seed(seed)
    if mixed_precision is None:
        mixed_precision = not tf.config.list_physical_devices("GPU") and cpu_has_bf16()
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed_precision else "float32")
    try:
        steps_per_epoch = math.ceil(len(train_images) / batch_size)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=learning_rate / 10,
            decay_steps=max(1, (epochs - warmup_epochs) * steps_per_epoch),
            warmup_target=learning_rate,
            warmup_steps=warmup_epochs * steps_per_epoch,
            alpha=0.01,
        )
        if state["epochs_done"] > 0 and not (out / "last.keras").exists():
            raise DataError(f"{state_file} says {state['epochs_done']} epoch(s) are done but {out / 'last.keras'} is "
                            f"missing; delete {out} to train from scratch")
        if state["epochs_done"] > 0:
            net = keras.saving.load_model(out / "last.keras")
            log.info("resuming from %s after epoch %d", out / "last.keras", state["epochs_done"])
            # the schedule follows this call's `epochs` (identical when unchanged; re-planned otherwise)
            net.optimizer.learning_rate = schedule
        else:
            net = build_backbone(**model_kwargs)
            net.compile(
                optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                metrics=["accuracy"],
            )
        augmenter = build_augmenter(**(augment or {}), seed=seed)
        n_classes = net.output_shape[-1]
        onehot = lambda y: np.eye(n_classes, dtype="float32")[y]  # noqa: E731
        train_ds = _dataset(train_images, onehot(train_labels), batch_size=batch_size, augmenter=augmenter,
                            shuffle_seed=seed + state["epochs_done"])
        val_ds = _dataset(val_images, onehot(val_labels), batch_size=512)

        class Checkpoint(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = {k: float(v) for k, v in (logs or {}).items()}
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                state["epochs_done"] = epoch + 1
                state["history"].append({"epoch": epoch + 1, **logs})
                if logs.get("val_accuracy", -1) > state["best_val_accuracy"]:
                    state["best_val_accuracy"], state["best_epoch"] = logs["val_accuracy"], epoch + 1
                    self.model.save_weights(out / "best.weights.h5")
                if epoch + 1 - state["best_epoch"] >= patience:
                    state["stopped_early"] = True
                    self.model.stop_training = True
                self.model.save(out / "last.keras.tmp.keras")
                os.replace(out / "last.keras.tmp.keras", out / "last.keras")
                state_file.write_text(json.dumps(state, indent=1))
                log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in logs.items()})
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, logs)

        start = state["epochs_done"]
        stop = epochs if max_epochs_this_call is None else min(epochs, start + max_epochs_this_call)
        if start < stop and not state["stopped_early"]:
            net.fit(train_ds, validation_data=val_ds, epochs=stop, initial_epoch=start,
                    callbacks=[Checkpoint()], verbose=2)
        finished = state["stopped_early"] or state["epochs_done"] >= epochs
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    summary = {k: state[k] for k in ("best_epoch", "best_val_accuracy", "epochs_done", "history", "stopped_early")}
    summary["model_path"] = None
    if finished:
        final = build_backbone(**model_kwargs)  # float32 for portable, fast inference on any CPU
        final.load_weights(out / "best.weights.h5")
        final.save(out / "backbone.keras")
        summary["model_path"] = str(out / "backbone.keras")
    return summary
