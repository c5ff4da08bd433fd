"""TensorFlow-free scoring with a compiled emotion model (LiteRT graphs beside the MLflow model).

An emotion model folder that :mod:`emotify_ml.runtime.export` compiled holds::

    <model>/artifacts/compiled/manifest.json         runtime, variants, head, provenance, parity
    <model>/artifacts/compiled/emotion_int8.tflite     the backbone up to its embedding, int8 weights
    <model>/artifacts/compiled/emotion_float32.tflite  the same graph in float32
    <model>/artifacts/compiled/head.npz                the scaler + linear SVMs folded into one dense layer

>>> model = load_compiled("emotify_ml/models/shipped/emotion")          # doctest: +SKIP
>>> model.predict_proba(faces).shape                                     # doctest: +SKIP
(N, 7)

The graph takes (N, 48, 48, 1) float32 pixels in [0, 255] (the backbone carries its own
rescaling) and returns the face ``embedding``. A linear head (scaler + linear SVMs folded
into one dense layer) and its calibration (sigmoid or isotonic, per class, then
normalised) are applied here in float64 NumPy exactly as scikit-learn applies them. Heads that cannot be folded (gradient boosting) run in sklearn on
the compiled embeddings. Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from emotify_ml.exceptions import InputError, ModelNotFoundError
from emotify_ml.features.preprocessing import FACE_SIZE, to_model_input
from emotify_ml.labels import EMOTIONS

COMPILED_DIR = "compiled"
"""Folder of the compiled artifact inside the MLflow model's ``artifacts/``."""
MANIFEST = "manifest.json"
VARIANTS = ("int8", "float32")
DEFAULT_BATCH = 8
"""Faces per interpreter call. Measured on the shipped int8 graph (one thread, faces per CPU-second):
batches of 1 to 8 give the same throughput, 64 and more about 15 % less (activations leave the cache)."""


def compiled_dir(model_dir) -> Path:
    """``<model_dir>/artifacts/compiled``: where the compiled artifact of an MLflow model lives."""
    return Path(model_dir) / "artifacts" / COMPILED_DIR


def has_compiled(model_dir) -> bool:
    """True when the MLflow model folder holds a compiled artifact (a ``manifest.json``)."""
    return (compiled_dir(model_dir) / MANIFEST).is_file()


def read_manifest(model_dir) -> dict:
    """The compiled artifact's manifest; :class:`ModelNotFoundError` when the model was never compiled."""
    path = compiled_dir(model_dir) / MANIFEST
    if not path.is_file():
        raise ModelNotFoundError(f"{str(model_dir)!r} has no compiled artifact (no artifacts/{COMPILED_DIR}/{MANIFEST}); "
                                 f"compile it with `python -m pipelines.export model={model_dir}`")
    return json.loads(path.read_text())


def default_threads() -> int:
    """Interpreter threads: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class LiteRTGraph:
    """One LiteRT graph with a dynamic batch dimension, called batch by batch.

    Full batches go through an interpreter sized once to ``batch_size``; a smaller batch
    (the tail, or one face a frame in live scoring) through a second interpreter that is
    resized only when that size changes. Calls are serialised by a lock (an interpreter is
    not thread-safe).

    Parameters
    ----------
    path : path to a ``.tflite`` file
    num_threads : int, optional
        Default: :func:`default_threads`.
    batch_size : int
        Faces per call.
    """

    def __init__(self, path, *, num_threads: int | None = None, batch_size: int = DEFAULT_BATCH):
        self.path = Path(path)
        self.num_threads = num_threads or default_threads()
        self.batch_size = int(batch_size)
        self._content = self.path.read_bytes()
        self._interpreters: dict[str, list] = {}
        self._lock = threading.Lock()
        probe = self._interpreter()
        sig = probe.get_signature_list()
        if not sig:
            raise ModelNotFoundError(f"{str(self.path)!r} has no signature; re-export it with pipelines.export")
        full = probe._get_full_signature_list()[next(iter(sig))]
        self.input_index = next(iter(full["inputs"].values()))
        self.outputs = dict(full["outputs"])  # name -> tensor index
        self.input_shape = tuple(int(v) for v in probe.get_input_details()[0]["shape_signature"][1:])
        self._interpreters["small"] = [probe, None]

    def _interpreter(self):
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter(model_content=self._content, num_threads=self.num_threads)

    def _sized(self, slot: str, n: int):
        entry = self._interpreters.get(slot)
        if entry is None:
            entry = self._interpreters[slot] = [self._interpreter(), None]
        interp, size = entry
        if size != n:
            interp.resize_tensor_input(self.input_index, [n, *self.input_shape], strict=False)
            interp.allocate_tensors()
            entry[1] = n
        return interp

    def __call__(self, x: np.ndarray, names) -> dict[str, np.ndarray]:
        """Run the graph on ``x`` (N, ...) float32; returns the named outputs, each (N, ...)."""
        names = list(names)
        out = {name: [] for name in names}
        with self._lock:
            for i in range(0, len(x), self.batch_size):
                chunk = np.ascontiguousarray(x[i : i + self.batch_size], np.float32)
                interp = self._sized("full" if len(chunk) == self.batch_size else "small", len(chunk))
                interp.set_tensor(self.input_index, chunk)
                interp.invoke()
                for name in names:
                    out[name].append(interp.get_tensor(self.outputs[name]).copy())
        return {name: np.concatenate(parts) for name, parts in out.items()}


def calibrate(decision: np.ndarray, head: dict) -> np.ndarray:
    """Calibrated probabilities (N, n_classes) from the linear head's decision values, as sklearn computes them.

    ``decision`` is (N, members x K): one block of K one-vs-rest margins per calibrated member
    of a ``CalibratedClassifierCV``; each block is calibrated per class (sigmoid:
    ``expit(-(a f + b))``; isotonic: clipped linear interpolation), normalised to sum 1
    (uniform where every class got 0), and the members are averaged. ``softmax`` (the
    backbone's own head): the softmax of the logits.
    """
    decision = np.asarray(decision, np.float64)
    k = len(head["classes"])
    if head["calibration"] == "softmax":
        z = np.exp(decision - decision.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)
    total = np.zeros((len(decision), k))
    for m, member in enumerate(head["members"]):
        block = decision[:, m * k : (m + 1) * k]
        if head["calibration"] == "sigmoid":
            a, b = np.asarray(member["a"]), np.asarray(member["b"])
            proba = 1.0 / (1.0 + np.exp(a * block + b))
        elif head["calibration"] == "isotonic":
            proba = np.column_stack([np.interp(np.clip(block[:, j], xs[0], xs[-1]), xs, ys)
                                     for j, (xs, ys) in enumerate(zip(member["x"], member["y"]))])
        else:
            raise ModelNotFoundError(f"unknown calibration {head['calibration']!r} in the compiled manifest")
        denominator = proba.sum(1, keepdims=True)
        proba = np.divide(proba, denominator, out=np.full_like(proba, 1.0 / k), where=denominator != 0)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        total += proba
    return total / len(head["members"])


class CompiledEmotionModel:
    """A compiled emotion model: ``predict_proba(faces) -> (N, 7)`` without TensorFlow.

    Made by :func:`load_compiled`. ``faces`` are uint8 crops, (N, H, W) grey or (N, H, W, 3)
    BGR, of any size (resized to the model's square as in training).

    Attributes
    ----------
    manifest : dict
    variant : str
        ``int8`` or ``float32``.
    runtime : str
        ``litert-int8`` or ``litert-float32``.
    source : str
        The model folder.
    class_names : tuple of str
    face_size : int
    """

    kind = "emotion"

    def __init__(self, model_dir, manifest: dict, variant: str, *, num_threads=None, batch_size=DEFAULT_BATCH):
        self.source = str(model_dir)
        self.manifest = manifest
        self.variant = variant
        self.runtime = f"{manifest.get('runtime', 'litert')}-{variant}"
        self.class_names = EMOTIONS
        self.face_size = int(manifest.get("face_size", FACE_SIZE))
        self.flip_tta = bool(manifest.get("flip_tta", False))
        self.head = manifest["head"]
        self.graph = LiteRTGraph(compiled_dir(model_dir) / manifest["variants"][variant]["file"],
                                 num_threads=num_threads, batch_size=batch_size)
        self._sklearn_head = self._dense = None
        if self.head["kind"] == "linear":
            with np.load(compiled_dir(model_dir) / self.head["file"]) as dense:
                self._dense = (dense["weights"], dense["bias"])
        elif self.head["kind"] == "sklearn":  # the Pipeline's steps after the embedding, in skops (no TF)
            from emotify_ml.models.persist import load_estimator

            self._sklearn_head = load_estimator(compiled_dir(model_dir) / self.head["folder"], source=self.source)

    @property
    def classes_(self) -> np.ndarray:
        return np.arange(len(self.class_names))

    def _input(self, faces) -> np.ndarray:
        x = to_model_input(faces, self.face_size)
        return x.astype(np.float32)[..., None]

    def _run(self, faces, names) -> dict[str, np.ndarray]:
        x = self._input(faces)
        out = self.graph(x, names)
        if self.flip_tta:  # the mirror image's outputs averaged, as CNNEmbedder(flip_tta=True) does
            mirrored = self.graph(np.ascontiguousarray(x[:, :, ::-1]), names)
            out = {name: (out[name] + mirrored[name]) / 2.0 for name in names}
        return out

    def embed(self, faces) -> np.ndarray:
        """(N, D) float32 face embeddings from the compiled backbone."""
        return self._run(faces, ["embedding"])["embedding"].astype(np.float32)

    def classify(self, embedding: np.ndarray) -> np.ndarray:
        """(N, 7) probabilities from :meth:`embed`'s output: the head and its calibration."""
        kind = self.head["kind"]
        if kind == "linear":
            weights, bias = self._dense
            proba = calibrate(np.asarray(embedding, np.float64) @ weights + bias, self.head)
        elif kind == "sklearn":
            import sklearn

            with sklearn.config_context(assume_finite=True):
                proba = np.asarray(self._sklearn_head.predict_proba(np.asarray(embedding, np.float32)), np.float64)
        else:
            raise ModelNotFoundError(f"unknown head kind {kind!r} in the compiled manifest of {self.source}")
        return _full_columns(proba, self.head["classes"], len(self.class_names))

    def predict_proba(self, faces, timings: dict | None = None) -> np.ndarray:
        """(N, 7) probabilities in :data:`emotify_ml.labels.EMOTIONS` order; an empty batch gives (0, 7).

        ``timings``, when given, gets ``embed`` (the graph) and ``classify`` (the head)
        milliseconds of this call added.
        """
        if isinstance(faces, np.ndarray) and faces.ndim in (3, 4) and len(faces) == 0:
            return np.zeros((0, len(self.class_names)))
        t0 = time.perf_counter()
        embedding = self.embed(faces)
        t1 = time.perf_counter()
        proba = self.classify(embedding)
        if timings is not None:
            timings["embed"] = timings.get("embed", 0.0) + (t1 - t0) * 1000.0
            timings["classify"] = timings.get("classify", 0.0) + (time.perf_counter() - t1) * 1000.0
        return proba

    def __repr__(self) -> str:
        return f"CompiledEmotionModel(source={self.source!r}, runtime={self.runtime!r})"


def _full_columns(proba: np.ndarray, classes, n_classes: int) -> np.ndarray:
    """Probabilities with one column per class index 0..n_classes-1 (0 for classes absent from training)."""
    classes = np.asarray(classes, int)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    full = np.zeros((len(proba), n_classes))
    full[:, classes] = proba
    return full


def load_compiled(model_dir, variant: str = "int8", *, num_threads: int | None = None,
                  batch_size: int = DEFAULT_BATCH) -> CompiledEmotionModel:
    """Load the compiled artifact of an MLflow emotion model folder for TensorFlow-free scoring.

    Parameters
    ----------
    model_dir : path
        The MLflow model folder (holding ``artifacts/compiled/manifest.json``).
    variant : {"int8", "float32"}
        Which graph.
    num_threads : int, optional
        Interpreter threads; default all cores this process may use.
    batch_size : int
        Faces per interpreter call.

    Raises
    ------
    ModelNotFoundError
        No compiled artifact, or not the requested variant.
    InputError
        ``variant`` is not one of :data:`VARIANTS`.
    """
    if variant not in VARIANTS:
        raise InputError(f"variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int; got {batch_size!r}")
    manifest = read_manifest(model_dir)
    if variant not in manifest.get("variants", {}):
        raise ModelNotFoundError(f"the compiled artifact of {str(model_dir)!r} has no {variant} graph; it has "
                                 f"{', '.join(manifest.get('variants', {})) or 'none'}")
    return CompiledEmotionModel(model_dir, manifest, variant, num_threads=num_threads, batch_size=batch_size)
