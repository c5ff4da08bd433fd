"""Train a backbone with augmentation, AdamW + warm-up/cosine, early stopping and resumable checkpoints.

Plain arguments in, a summary out; MLflow logging is injected through
``on_epoch_end`` so this module knows nothing of tracking or Hydra.

Checkpoint folder layout (``out_dir``):

- ``last.keras``: the full model with optimizer state after the last finished epoch;
- ``best.weights.h5``: the net's weights (no optimizer state) of the epoch with the best validation accuracy;
- ``state.json``: epochs done, best epoch and accuracy, the per-epoch history;
- ``backbone.keras``: the final float32 inference model (best weights), written at the end.

Running again with the same ``out_dir`` resumes after the last finished epoch; ``init_from`` starts
a new ``out_dir`` from a committed checkpoint (a checkpoint folder to resume, or a ``.keras`` model
whose weights start the training), so one training can be stopped and resumed over several days.
``pack_to`` keeps a packed copy of the checkpoint (:mod:`emotify_ml.backbones.checkpoint`: 2-3 times
the net's size instead of 4) up to date after every epoch: that folder is what gets committed, and
``init_from=<packed folder>`` resumes it on another machine.

For faces that FER-2013 does not hold: ``camera`` adds the camera augmentation of
:mod:`emotify_ml.backbones.camera` (framing jitter, blur and down-up scaling, noise, JPEG, gamma and
contrast, colour cast as serving converts it, occlusion) in front of the Keras augmenter, and
``class_balance`` makes the rare classes count: per-class sample weights (``"weights"``) or
logit-adjusted cross-entropy (``"logit_adjust"``, Menon et al. 2021), both with strength ``balance_tau``.

For a smaller, faster net: ``teacher`` distils a trained backbone, or an ensemble of them, into the
one being trained (Hinton et al. 2015). The teachers' probabilities on each training face (and its
mirror image) are computed once and averaged; the loss mixes the labels' cross-entropy with the KL
divergence from those softened probabilities (``distill_alpha``, ``distill_temperature``).
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import os
import shutil
import threading
from pathlib import Path

import numpy as np

from emotify_ml.backbones.checkpoint import PACKED, pack_folder, read_state, restore_packed, write_text_atomic
from emotify_ml.backbones.cnn import build_augmenter, build_backbone
from emotify_ml.exceptions import ConfigError, DataError
from emotify_ml.paths import sha256_file

log = logging.getLogger(__name__)


CLASS_BALANCE = ("none", "weights", "logit_adjust")
"""Ways to make rare classes count in :func:`train_backbone` (``class_balance``)."""


def class_prior(labels, n_classes: int) -> np.ndarray:
    """Training class frequencies (every class at least one count, so a log never sees 0)."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=n_classes).astype(np.float64)
    return np.maximum(counts, 1.0) / max(counts.sum(), 1.0)


def balanced_weights(labels, n_classes: int, tau: float = 1.0) -> np.ndarray:
    """Per-sample weights ``(1 / (K * prior(c))) ** tau``, normalised to mean 1 over the samples."""
    prior = class_prior(labels, n_classes)
    w = (1.0 / (n_classes * prior)) ** float(tau)
    per_sample = w[np.asarray(labels, dtype=int)]
    return (per_sample / per_sample.mean()).astype("float32")


@functools.lru_cache(maxsize=None)
def logit_adjusted_loss_class():
    """The Keras loss class of logit-adjusted cross-entropy (registered on first use, so resuming can load it)."""
    import keras

    @keras.saving.register_keras_serializable(package="emotify")
    class LogitAdjustedCrossentropy(keras.losses.Loss):
        """Cross-entropy of ``softmax(logits + tau * log prior)`` for a model that outputs ``softmax(logits)``.

        Training with the prior added makes the model's own softmax the balanced-class posterior
        (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021), so serving needs no change.
        """

        def __init__(self, log_prior=(), tau=1.0, label_smoothing=0.0, name="logit_adjusted_crossentropy", **kwargs):
            super().__init__(name=name, **kwargs)
            self.log_prior = [float(v) for v in log_prior]
            self.tau = float(tau)
            self.label_smoothing = float(label_smoothing)

        def call(self, y_true, y_pred):
            from keras import ops

            y_pred = ops.cast(y_pred, "float32")
            y_true = ops.cast(y_true, "float32")
            logits = ops.log(ops.clip(y_pred, 1e-7, 1.0)) + self.tau * ops.convert_to_tensor(self.log_prior, "float32")
            log_q = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
            k = float(len(self.log_prior))
            target = y_true * (1.0 - self.label_smoothing) + self.label_smoothing / k
            return -ops.sum(target * log_q, axis=-1)

        def get_config(self):
            return {**super().get_config(), "log_prior": self.log_prior, "tau": self.tau,
                    "label_smoothing": self.label_smoothing}

    return LogitAdjustedCrossentropy


@functools.lru_cache(maxsize=None)
def distillation_classes():
    """The Keras loss and metric of distillation (registered on first use, so resuming can load them).

    Distillation targets are ``[one-hot labels | teacher probabilities]`` (``2 * K`` columns); plain
    one-hot targets (``K`` columns, the validation set) get the plain cross-entropy.
    """
    import keras

    @keras.saving.register_keras_serializable(package="emotify")
    class DistillationLoss(keras.losses.Loss):
        """``(1 - alpha) * CE(labels, p) + alpha * T**2 * KL(softmax(log q / T) || softmax(log p / T))``.

        ``p`` is the student's softmax output, ``q`` the teacher's probabilities; ``T**2`` keeps the
        soft term's gradients at the hard term's scale.
        """

        def __init__(self, n_classes=7, alpha=0.5, temperature=4.0, label_smoothing=0.0,
                     name="distillation_loss", **kwargs):
            super().__init__(name=name, **kwargs)
            self.n_classes = int(n_classes)
            self.alpha = float(alpha)
            self.temperature = float(temperature)
            self.label_smoothing = float(label_smoothing)

        def call(self, y_true, y_pred):
            from keras import ops

            k = self.n_classes
            log_p = ops.log(ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0))
            log_p = log_p - ops.logsumexp(log_p, axis=-1, keepdims=True)
            y_true = ops.cast(y_true, "float32")
            target = y_true[:, :k] * (1.0 - self.label_smoothing) + self.label_smoothing / k
            hard = -ops.sum(target * log_p, axis=-1)
            if y_true.shape[-1] == k:
                return hard
            t = self.temperature
            log_q_t = ops.log(ops.clip(y_true[:, k:], 1e-7, 1.0)) / t
            log_q_t = log_q_t - ops.logsumexp(log_q_t, axis=-1, keepdims=True)
            log_p_t = log_p / t
            log_p_t = log_p_t - ops.logsumexp(log_p_t, axis=-1, keepdims=True)
            soft = ops.sum(ops.exp(log_q_t) * (log_q_t - log_p_t), axis=-1) * (t * t)
            return (1.0 - self.alpha) * hard + self.alpha * soft

        def get_config(self):
            return {**super().get_config(), "n_classes": self.n_classes, "alpha": self.alpha,
                    "temperature": self.temperature, "label_smoothing": self.label_smoothing}

    @keras.saving.register_keras_serializable(package="emotify")
    class LabelAccuracy(keras.metrics.CategoricalAccuracy):
        """Accuracy against the labels, the first ``n_classes`` columns of distillation targets."""

        def __init__(self, n_classes=7, name="accuracy", dtype=None):
            super().__init__(name=name, dtype=dtype)
            self.n_classes = int(n_classes)

        def update_state(self, y_true, y_pred, sample_weight=None):
            return super().update_state(y_true[..., : self.n_classes], y_pred, sample_weight=sample_weight)

        def get_config(self):
            return {"name": self.name, "dtype": self.dtype, "n_classes": self.n_classes}

    return DistillationLoss, LabelAccuracy


def teachers_of(teacher) -> list[Path]:
    """The teacher backbones of a ``teacher`` option: one path, or a sequence of paths (an ensemble)."""
    if teacher is None:
        return []
    if isinstance(teacher, (str, Path)):
        return [Path(teacher)]
    if not isinstance(teacher, (list, tuple)) or not all(isinstance(t, (str, Path)) for t in teacher):
        raise ConfigError(f"teacher must be a backbone path (.keras) or a list of them; got {teacher!r}")
    return [Path(t) for t in teacher]


def teacher_probabilities(teacher, images, n_classes: int, batch_size: int = 512) -> np.ndarray:
    """Trained backbones' class probabilities for ``images``: the mean over each face and its mirror image, and
    over the teachers when ``teacher`` is a sequence of them (an ensemble distilled into one net)."""
    import keras

    x = np.asarray(images, np.float32)[..., None]
    total = np.zeros((len(x), n_classes), np.float64)
    teachers = teachers_of(teacher)
    for path in teachers:
        try:
            net = keras.saving.load_model(path, compile=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"teacher {str(path)!r} is not a Keras backbone (.keras): {exc}") from None
        if tuple(net.output_shape) != (None, n_classes):
            raise DataError(f"teacher {str(path)!r} outputs {tuple(net.output_shape)}; "
                            f"distillation needs (None, {n_classes})")
        for faces in (x, x[:, :, ::-1]):
            total += np.concatenate([np.asarray(net(faces[i : i + batch_size], training=False))
                                     for i in range(0, len(faces), batch_size)])
    return (total / (2 * len(teachers))).astype("float32")


def _camera_map(params: dict, seed: int):
    """A ``tf.data`` map that runs :func:`emotify_ml.backbones.camera.camera_augment` on each batch."""
    import tensorflow as tf

    from emotify_ml.backbones.camera import camera_augment

    camera_augment(np.zeros((1, 8, 8), np.uint8), np.random.default_rng(0), **params)  # bad parameters fail now
    counter, lock = itertools.count(), threading.Lock()

    def augment(batch):
        with lock:
            rng = np.random.default_rng([seed, next(counter)])
        faces = np.clip(np.rint(batch[..., 0]), 0, 255).astype(np.uint8)
        return camera_augment(faces, rng, **params).astype("float32")[..., None]

    def fn(x, *rest):
        out = tf.numpy_function(augment, [x], tf.float32)
        out.set_shape(x.shape)
        return (out, *rest)

    return fn


def _dataset(images, labels, *, batch_size, augmenter=None, shuffle_seed=None, camera=None, weights=None):
    import tensorflow as tf

    x = images.astype("float32")[..., None]
    parts = (x, labels.astype("float32") if labels.ndim > 1 else labels.astype("int32"))
    if weights is not None:
        parts = (*parts, weights)
    ds = tf.data.Dataset.from_tensor_slices(parts)
    if shuffle_seed is not None:
        ds = ds.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if camera is not None:
        ds = ds.map(_camera_map(camera, shuffle_seed or 0), num_parallel_calls=1)
    if augmenter is not None:
        ds = ds.map(lambda a, *rest: (augmenter(a, training=True), *rest), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _start_from(init_from, out: Path, net) -> None:
    """Load the weights of a committed ``.keras`` model into ``net`` (layers matched by name and shape)."""
    import keras

    source = keras.saving.load_model(init_from, compile=False)
    loaded = 0
    by_name = {layer.name: layer for layer in source.layers}
    for layer in net.layers:
        other = by_name.get(layer.name)
        if other is not None and [w.shape for w in other.weights] == [w.shape for w in layer.weights] and layer.weights:
            layer.set_weights(other.get_weights())
            loaded += 1
    if not loaded:
        raise DataError(f"init_from {str(init_from)!r} shares no layer (by name and shape) with the model to train")
    log.info("started %s from the weights of %s (%d layers)", out, init_from, loaded)


def cpu_has_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX-512 BF16 or AMX), where mixed precision pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def check_options(*, class_balance: str = "none", balance_tau: float = 1.0, init_from=None, teacher=None,
                  distill_alpha: float = 0.5, distill_temperature: float = 4.0, pack_to=None, out_dir=None) -> None:
    """Check the options of :func:`train_backbone` that a caller can check before anything starts (a tracked run).

    Raises
    ------
    ValueError
        An option out of range, or two that do not combine (``pack_to`` the checkpoint folder itself).
    DataError
        ``init_from`` or ``teacher`` does not exist, ``init_from`` is a folder that holds no
        checkpoint, or ``pack_to`` is a file.
    """
    if class_balance not in CLASS_BALANCE:
        raise ValueError(f"class_balance must be one of {', '.join(CLASS_BALANCE)}; got {class_balance!r}")
    if not float(balance_tau) >= 0.0:
        raise ValueError(f"balance_tau must be >= 0; got {balance_tau!r}")
    if init_from and not Path(init_from).exists():
        raise DataError(f"init_from {str(init_from)!r} does not exist; give a checkpoint folder or a .keras model")
    if init_from and Path(init_from).is_dir():
        read_state(init_from)
    if pack_to is not None:
        if Path(pack_to).exists() and not Path(pack_to).is_dir():
            raise DataError(f"pack_to {str(pack_to)!r} is a file; give a folder to keep the packed checkpoint in")
        if out_dir is not None and Path(pack_to).resolve() == Path(out_dir).resolve():
            raise ValueError(f"pack_to must be another folder than the checkpoint folder out_dir={str(out_dir)!r}")
    if teacher is not None:
        if class_balance == "logit_adjust":
            raise ValueError("teacher (distillation) and class_balance='logit_adjust' do not combine; "
                             "use class_balance 'none' or 'weights'")
        if not 0.0 <= float(distill_alpha) <= 1.0 or not float(distill_temperature) > 0.0:
            raise ValueError(f"distill_alpha must be in [0, 1] and distill_temperature > 0; got {distill_alpha!r}, "
                             f"{distill_temperature!r}")
        teachers = teachers_of(teacher)
        if not teachers:
            raise ConfigError("teacher is an empty list; give a trained backbone (.keras), or several")
        for path in teachers:
            if not path.is_file():
                raise DataError(f"teacher {str(path)!r} does not exist; give a trained backbone (.keras)")


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
    camera: dict | None = None,
    class_balance: str = "none",
    balance_tau: float = 1.0,
    init_from=None,
    teacher=None,
    distill_alpha: float = 0.5,
    distill_temperature: float = 4.0,
    on_epoch_end=None,
    max_epochs_this_call: int | None = None,
    pack_to=None,
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
    camera : dict, optional
        Camera augmentation (:func:`emotify_ml.backbones.camera.camera_augment`) before the Keras
        augmenter; the dict overrides :data:`~emotify_ml.backbones.camera.CAMERA_DEFAULTS` (``{}``: the
        defaults). None: off.
    class_balance : {"none", "weights", "logit_adjust"}
        ``weights``: sample weights ``(1 / (K * prior(c))) ** balance_tau``; ``logit_adjust``: the loss
        adds ``balance_tau * log prior`` to the logits (the served softmax is then balanced).
    balance_tau : float
        Strength of the class balance (0: none, 1: fully balanced).
    init_from : path, optional
        A committed checkpoint to start a new ``out_dir`` from: a checkpoint folder (``state.json`` +
        ``last.keras``, or a packed one: ``state.json`` + ``checkpoint.npz``), copied in and resumed,
        or a ``.keras`` model whose weights (matched by layer name and shape) start the training.
        Ignored when ``out_dir`` already holds a checkpoint.
    teacher : path or sequence of paths, optional
        A trained backbone (``.keras``) to distil, or several (an ensemble: the mean of their
        probabilities is the target): the loss becomes ``(1 - distill_alpha)`` times the
        labels' cross-entropy plus ``distill_alpha`` times the KL divergence from the teacher's
        probabilities softened by ``distill_temperature``. A checkpoint resumes only with the same
        teachers and settings.
    on_epoch_end : callable(epoch: int, logs: dict), optional
        Called after every epoch with train/val metrics (e.g. to log to MLflow).
    max_epochs_this_call : int, optional
        Stop after this many epochs in this call (checkpoints are kept), to split
        long runs across sessions.
    pack_to : path, optional
        A folder to keep a packed copy of the checkpoint in, written after every epoch (and by a
        call that trains no epoch, to pack a folder as it stands): the form to commit and resume
        from. Not ``out_dir`` itself.

    Returns
    -------
    dict with ``best_epoch``, ``best_val_accuracy``, ``epochs_done``, ``history``,
    ``stopped_early`` and ``model_path`` (the float32 inference model; None if unfinished).
    """
    from emotify_ml.extras import require_keras

    keras = require_keras("training a backbone")
    import tensorflow as tf

    check_options(class_balance=class_balance, balance_tau=balance_tau, init_from=init_from, teacher=teacher,
                  distill_alpha=distill_alpha, distill_temperature=distill_temperature, pack_to=pack_to,
                  out_dir=out_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_file = out / "state.json"
    init_path = Path(init_from) if init_from else None
    if init_path is not None and init_path.is_dir() and not state_file.exists():  # checked by check_options
        for name in ("state.json", "last.keras", "best.weights.h5", PACKED):
            if (init_path / name).exists():
                shutil.copyfile(init_path / name, out / name)
        log.info("resuming the checkpoint %s in %s", init_path, out)
    state = json.loads(state_file.read_text()) if state_file.exists() else {
        "epochs_done": 0, "best_epoch": -1, "best_val_accuracy": -1.0, "history": [], "stopped_early": False}
    hashes = [sha256_file(path) for path in teachers_of(teacher)]
    distill = None if teacher is None else {
        "teacher_sha256": hashes[0] if len(hashes) == 1 else hashes, "alpha": float(distill_alpha),
        "temperature": float(distill_temperature)}
    if state["epochs_done"] > 0 and state.get("distill") != distill:
        raise DataError(f"{state_file} was trained with distillation {state.get('distill')}; this call asks for "
                        f"{distill}: pass the same teacher and settings, or another out_dir")
    state["distill"] = distill
    model_kwargs = dict(model or {})
    asked = json.loads(json.dumps(model_kwargs))  # as state.json holds it
    if state["epochs_done"] > 0 and state.get("model", asked) != asked:
        raise DataError(f"{state_file} was trained with model {state['model']}; this call asks for {asked}: pass "
                        "the same backbone settings, or another out_dir")
    state["model"] = asked
    n_classes = int(model_kwargs.get("n_classes", 7))
    start = state["epochs_done"]
    stop = epochs if max_epochs_this_call is None else min(epochs, start + max_epochs_this_call)
    will_train = start < stop and not state["stopped_early"]
    # the teacher's pass over the training faces only when epochs are left to train
    soft_targets = None
    if teacher is not None and will_train:
        soft_targets = teacher_probabilities(teacher, train_images, n_classes)
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
        packed = state["epochs_done"] > 0 and not (out / "last.keras").exists()
        if packed and not (out / PACKED).exists():
            raise DataError(f"{state_file} says {state['epochs_done']} epoch(s) are done but {out} holds neither "
                            f"last.keras nor {PACKED}; delete {out} to train from scratch")
        prior = class_prior(train_labels, n_classes)
        metrics = ["accuracy"]
        if teacher is not None:
            loss_class, accuracy_class = distillation_classes()
            loss = loss_class(n_classes, alpha=distill_alpha, temperature=distill_temperature,
                              label_smoothing=label_smoothing)
            metrics = [accuracy_class(n_classes)]
        elif class_balance == "logit_adjust":
            loss_class = logit_adjusted_loss_class()
            loss = loss_class(np.log(prior).tolist(), tau=balance_tau, label_smoothing=label_smoothing)
        else:
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        if state["epochs_done"] > 0 and not packed:
            logit_adjusted_loss_class(), distillation_classes()  # registered, so a checkpoint trained with them loads
            net = keras.saving.load_model(out / "last.keras")
            log.info("resuming from %s after epoch %d", out / "last.keras", state["epochs_done"])
            # the schedule follows this call's `epochs` (identical when unchanged; re-planned otherwise)
            net.optimizer.learning_rate = schedule
        else:
            net = build_backbone(**model_kwargs)
            if init_path is not None and init_path.is_file():
                _start_from(init_path, out, net)
            net.compile(
                optimizer=keras.optimizers.AdamW(schedule, weight_decay=weight_decay),
                loss=loss,
                metrics=metrics,
            )
            if packed:
                best = restore_packed(net, out / PACKED, epochs_done=state["epochs_done"])
                log.info("resuming the packed checkpoint %s after epoch %d", out / PACKED, state["epochs_done"])
        augmenter = build_augmenter(**(augment or {}), seed=seed)
        onehot = lambda y: np.eye(n_classes, dtype="float32")[y]  # noqa: E731
        targets = onehot(train_labels)
        if soft_targets is not None:
            targets = np.concatenate([targets, soft_targets], axis=1)
        weights = balanced_weights(train_labels, n_classes, balance_tau) if class_balance == "weights" else None
        train_ds = _dataset(train_images, targets, batch_size=batch_size, augmenter=augmenter,
                            shuffle_seed=seed + state["epochs_done"], camera=camera, weights=weights)
        val_ds = _dataset(val_images, onehot(val_labels), batch_size=512)

        class Checkpoint(keras.callbacks.Callback):
            twin = None  # an uncompiled copy of the net: its weights file holds no optimizer state (a third the size)

            def save_best(self, weights=None):
                if self.twin is None:
                    self.twin = build_backbone(**model_kwargs)
                self.twin.set_weights(self.model.get_weights() if weights is None else weights)
                self.twin.save_weights(out / "best.tmp.weights.h5")
                os.replace(out / "best.tmp.weights.h5", out / "best.weights.h5")

            def pack(self):
                if self.twin is None:
                    self.twin = build_backbone(**model_kwargs)
                pack_folder(self.model, out, pack_to, best_net=self.twin)

            def on_epoch_end(self, epoch, logs=None):
                logs = {k: float(v) for k, v in (logs or {}).items()}
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                state["epochs_done"] = epoch + 1
                state["history"].append({"epoch": epoch + 1, **logs})
                if logs.get("val_accuracy", -1) > state["best_val_accuracy"]:
                    state["best_val_accuracy"], state["best_epoch"] = logs["val_accuracy"], epoch + 1
                    self.save_best()
                if epoch + 1 - state["best_epoch"] >= patience:
                    state["stopped_early"] = True
                    self.model.stop_training = True
                self.model.save(out / "last.keras.tmp.keras")
                os.replace(out / "last.keras.tmp.keras", out / "last.keras")
                (out / PACKED).unlink(missing_ok=True)  # a packed checkpoint copied in is now behind last.keras
                write_text_atomic(state_file, json.dumps(state, indent=1))
                if pack_to is not None:
                    self.pack()
                log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in logs.items()})
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, logs)

        checkpoint = Checkpoint()
        checkpoint.set_model(net)
        if packed:  # best.weights.h5 from the packed file (None: its last epoch is the best)
            checkpoint.save_best(best)
        if will_train:
            net.fit(train_ds, validation_data=val_ds, epochs=stop, initial_epoch=start,
                    callbacks=[checkpoint], verbose=2)
        elif pack_to is not None and state["epochs_done"] > 0:
            write_text_atomic(state_file, json.dumps(state, indent=1))
            checkpoint.pack()
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
