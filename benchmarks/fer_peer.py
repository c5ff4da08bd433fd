"""The peer model for side-by-side benchmarks: the fer package's quantized mini-Xception.

The file lies in ``../shared/models/fer_peer`` (see its README): it is never shipped,
never imported by ``emotify_ml``, and every benchmark or test that uses it skips when
it is absent (:func:`peer_model_path` returns None).

    from fer_peer import load_peer           # from a script in benchmarks/
    peer = load_peer()                        # FerPeer, or PeerNotFoundError
    proba = peer.predict_proba(faces)         # (N, 7), FER-2013 class order

The peer takes one (1, 64, 64, 1) float32 face per ``invoke()``: grey, resized to
64x64, ``x / 255``, then ``(x - 0.5) * 2``, as the fer package feeds it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PEER_FILE = "emotion_model_quantized.tflite"
PEER_INPUT_SIZE = 64
PEER_NAME = "fer 25.10.3 mini-Xception (int8 tflite)"


class PeerNotFoundError(FileNotFoundError):
    """The peer's tflite file is not where it was looked for."""


def peer_model_dir() -> Path:
    """``$EMOTIFY_FER_PEER_DIR`` or ``../shared/models/fer_peer`` (next to the repo)."""
    return Path(os.environ.get("EMOTIFY_FER_PEER_DIR", REPO.parent / "shared" / "models" / "fer_peer"))


def peer_model_path() -> Path | None:
    """The peer's tflite file, or None when it is absent (benchmarks and tests then skip it)."""
    path = peer_model_dir() / PEER_FILE
    return path if path.is_file() else None


def peer_input(faces) -> np.ndarray:
    """Face crops (N, H, W) grey or (N, H, W, 3) BGR uint8 -> the peer's (N, 64, 64, 1) float32 input."""
    from emotify_ml.features.preprocessing import to_model_input

    x = to_model_input(faces, PEER_INPUT_SIZE).astype(np.float32) / 255.0
    return ((x - 0.5) * 2.0)[..., None]


class FerPeer:
    """The fer model behind the same ``predict_proba(faces) -> (N, 7)`` call as Emotify's models.

    Parameters
    ----------
    path : str or Path
        The tflite file.
    num_threads : int, optional
        Interpreter threads (default: all cores).
    """

    name = PEER_NAME

    def __init__(self, path, *, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads or os.cpu_count() or 1)
        self.interpreter.allocate_tensors()
        self._in = self.interpreter.get_input_details()[0]["index"]
        self._out = self.interpreter.get_output_details()[0]["index"]

    def predict_proba(self, faces) -> np.ndarray:
        """(N, 7) class scores in FER-2013 order, one ``invoke()`` per face (the graph's batch is 1)."""
        x = peer_input(faces)
        out = np.empty((len(x), 7), np.float32)
        it = self.interpreter
        for i in range(len(x)):
            it.set_tensor(self._in, x[i : i + 1])
            it.invoke()
            out[i] = it.get_tensor(self._out)[0]
        return out

    def predict(self, faces) -> np.ndarray:
        """FER-2013 class indices (arg-max of :meth:`predict_proba`)."""
        return self.predict_proba(faces).argmax(1)

    def __repr__(self) -> str:
        return f"FerPeer({str(self.path)!r})"


def load_peer(path=None, *, num_threads: int | None = None) -> FerPeer:
    """The peer model from ``path`` or :func:`peer_model_path`; :class:`PeerNotFoundError` when absent."""
    path = Path(path) if path is not None else peer_model_path()
    if path is None or not path.is_file():
        raise PeerNotFoundError(f"the fer peer model is not at {path or peer_model_dir() / PEER_FILE}; "
                                "benchmarks against it need ../shared/models/fer_peer")
    return FerPeer(path, num_threads=num_threads)
