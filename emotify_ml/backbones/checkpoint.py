"""A training checkpoint small enough to commit, exact enough to resume.

A checkpoint folder (``emotify_ml.backbones.train``) holds ``last.keras``: the net and its AdamW
state in float32, three times the net's size (20 MB for the 1.7 M-parameter residual net), plus
``best.weights.h5``. A *packed* checkpoint is what a training leaves in git so that another
machine resumes it (``train.init_from=<packed folder>``):

- ``state.json``: epochs done, the best epoch, the per-epoch history (as in the folder);
- ``checkpoint.npz``: the last epoch's weights in float32 (exact), the optimizer's moving averages
  in bfloat16 (8 bits of mantissa: a relative error of 0.4 % on averages of noisy gradients, far
  below the noise they average), its iteration count, the epoch it was written after (checked
  against ``state.json`` on resuming), and the best epoch's weights (float32) only when the best
  epoch is not the last one.

That is 2 to 3 times the net's float32 size instead of 4; resuming restores the weights exactly and
the optimizer to bfloat16 precision. The net's shape is checked; the loss and the optimizer's
settings are the resuming call's (a ``last.keras`` resume takes them from the file).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import zipfile
import zlib
from pathlib import Path

import numpy as np

from emotify_ml.exceptions import DataError, FolderInUseError

PACKED = "checkpoint.npz"
LOCK = ".lock"
_FORMAT = 1
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


@contextlib.contextmanager
def hold(*folders):
    """Hold the checkpoint folders of one training for the block, so that a second training cannot write them.

    Two trainings resuming one folder would each write their own checkpoints over the other's, epoch
    by epoch. The hold is an exclusive ``flock`` on ``<folder>/.lock`` (the file names the holder),
    released when the block ends or the process dies, even by SIGKILL, so it never goes stale. ``None``
    entries are skipped; missing folders are created. Where ``fcntl`` is missing (Windows) nothing is held.

    Raises
    ------
    FolderInUseError
        Another process holds one of the folders.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with contextlib.ExitStack() as stack:
        for folder in (Path(f) for f in folders if f is not None):
            folder.mkdir(parents=True, exist_ok=True)
            lock = stack.enter_context(open(folder / LOCK, "a+"))
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                holder = lock.read().strip() or "another process"
                raise FolderInUseError(
                    f"{str(folder)!r} is being written by another training ({holder}): two trainings in one "
                    "checkpoint folder overwrite each other's checkpoints; wait for it or stop it, or give this "
                    "one another out_dir / pack_to") from None
            lock.seek(0)
            lock.truncate()
            lock.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            lock.flush()
        yield


def read_state(folder) -> dict:
    """The ``state.json`` of a checkpoint folder (packed or not), checked.

    Raises
    ------
    DataError
        The folder holds no checkpoint (``state.json`` and ``last.keras``, or ``state.json`` and
        ``checkpoint.npz``), or its state is not one.
    """
    folder = Path(folder)
    state_file = folder / "state.json"
    if not state_file.is_file() or not ((folder / "last.keras").is_file() or (folder / PACKED).is_file()):
        raise DataError(f"init_from {str(folder)!r} is not a checkpoint folder (needs state.json and last.keras, "
                        f"or state.json and {PACKED})")
    try:
        state = json.loads(state_file.read_text())
        int(state["epochs_done"]), int(state["best_epoch"]), list(state["history"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{str(state_file)!r} is not a training state (epochs_done, best_epoch, history): "
                        f"{type(exc).__name__}: {exc}") from None
    return state


def write_text_atomic(path, text: str) -> None:
    """Write a file whole or not at all (a kill leaves the previous version)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _bf16(array: np.ndarray) -> np.ndarray:
    import ml_dtypes

    return np.asarray(array, dtype=np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)


def _from_bf16(array: np.ndarray) -> np.ndarray:
    import ml_dtypes

    return array.view(ml_dtypes.bfloat16).astype(np.float32)


def _optimizer_slots(net) -> dict:
    """The optimizer's per-weight variables by name (iteration count and learning rate excluded).

    The name is the variable's path without the optimizer's own prefix (``adam_w/``, ``adam_w_1/``: Keras
    numbers optimizers per process), e.g. ``b0_conv0_kernel_momentum``.
    """
    optimizer = net.optimizer
    if not optimizer.built:
        optimizer.build(net.trainable_variables)
    return {v.path.split("/", 1)[-1]: v for v in optimizer.variables
            if v is not optimizer.iterations and len(v.shape)}


def save_packed(net, path, *, epochs_done: int = 0, best_weights=None) -> Path:
    """Write ``net`` (compiled, trained for ``epochs_done`` epochs) as a packed checkpoint file; returns its path.

    ``best_weights``: the best epoch's ``get_weights()`` list when it is not the last epoch's.
    """
    arrays = {"format": np.int64(_FORMAT), "iterations": np.int64(int(net.optimizer.iterations.numpy())),
              "epochs_done": np.int64(epochs_done)}
    for i, w in enumerate(net.get_weights()):
        arrays[f"last/{i:04d}"] = np.asarray(w, dtype=np.float32)
    for name, variable in _optimizer_slots(net).items():
        arrays[f"optimizer/{name}"] = _bf16(variable.numpy())
    for i, w in enumerate(best_weights or ()):
        arrays[f"best/{i:04d}"] = np.asarray(w, dtype=np.float32)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


def restore_packed(net, path, *, epochs_done: int | None = None) -> list | None:
    """Load a packed checkpoint into ``net`` (built and compiled as it was trained).

    Returns the best epoch's weights when the file holds them (``None``: the last epoch was the best).

    Raises
    ------
    DataError
        When the file is not a packed checkpoint (unreadable, truncated), not one of this net
        (another shape or optimizer), or was written after another epoch than ``epochs_done``
        (its ``state.json`` says).
    """
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
        version, iterations, written_after = (int(arrays[k]) for k in ("format", "iterations", "epochs_done"))
    except _READ_ERRORS as exc:
        raise DataError(f"{str(path)!r} is not a readable packed checkpoint ({type(exc).__name__}: {exc}); "
                        "pack one with train.pack_to") from None
    if version != _FORMAT:
        raise DataError(f"{str(path)!r} is a packed checkpoint of format {version}; this version reads {_FORMAT}")
    if epochs_done is not None and written_after != epochs_done:
        raise DataError(f"{str(path)!r} was written after epoch {written_after} but its state.json says "
                        f"{epochs_done} epochs are done: the two files are of different epochs")

    def weights(prefix):
        keys = sorted(k for k in arrays if k.startswith(prefix + "/"))
        return [arrays[k] for k in keys]

    last, best = weights("last"), weights("best")
    for name, stored in (("last", last), ("best", best)):
        if name == "best" and not stored:
            continue
        shapes = [tuple(w.shape) for w in stored]
        for variable, shape in zip(net.weights, shapes):
            if tuple(variable.shape) != shape:
                raise DataError(f"{str(path)!r} holds {name} weights of another net ({variable.path}: {shape}, "
                                f"the net to train has {tuple(variable.shape)}): resume with the backbone it was "
                                "trained with")
        if len(shapes) != len(net.weights):
            raise DataError(f"{str(path)!r} holds {len(shapes)} {name} weight arrays, the net to train has "
                            f"{len(net.weights)}: resume with the backbone it was trained with")
    net.set_weights(last)
    slots = _optimizer_slots(net)
    stored = {k.removeprefix("optimizer/"): v for k, v in arrays.items() if k.startswith("optimizer/")}
    if set(stored) != set(slots):
        missing, extra = sorted(set(slots) - set(stored)), sorted(set(stored) - set(slots))
        raise DataError(f"{str(path)!r} holds the state of another optimizer or net (missing {missing[:3]}, "
                        f"unexpected {extra[:3]})")
    for name, variable in slots.items():
        if tuple(stored[name].shape) != tuple(variable.shape):
            raise DataError(f"{str(path)!r}: optimizer variable {name} has shape {stored[name].shape}, "
                            f"the net needs {tuple(variable.shape)}")
        variable.assign(_from_bf16(stored[name]))
    net.optimizer.iterations.assign(iterations)
    return best or None


def pack_folder(net, out_dir, dest, *, best_net=None) -> Path:
    """Pack the checkpoint folder ``out_dir`` (its state and ``net``, the last epoch's) into ``dest``.

    ``best_net``: a net of the same shape, used to read ``best.weights.h5`` when the best epoch is not
    the last. ``dest`` receives ``checkpoint.npz``, then ``state.json`` and the folder's
    ``mlflow_run.json``, each replaced whole, so a kill leaves either file of the previous epoch or of
    this one, never half of one; a mix of the two is refused on resuming.
    """
    out, dest = Path(out_dir), Path(dest)
    if dest.resolve() == out.resolve():
        raise ValueError(f"pack_to must be another folder than the checkpoint folder {str(out)!r}")
    state = json.loads((out / "state.json").read_text())
    best_weights = None
    if state["best_epoch"] != state["epochs_done"]:
        if not (out / "best.weights.h5").exists():
            raise DataError(f"{out} says epoch {state['best_epoch']} is the best but holds no best.weights.h5")
        if best_net is None:
            raise ValueError("the best epoch is not the last: pass best_net to read best.weights.h5")
        best_net.load_weights(out / "best.weights.h5")
        best_weights = best_net.get_weights()
    dest.mkdir(parents=True, exist_ok=True)
    save_packed(net, dest / PACKED, epochs_done=state["epochs_done"], best_weights=best_weights)
    for name in ("state.json", "mlflow_run.json"):
        if (out / name).exists():
            write_text_atomic(dest / name, (out / name).read_text())
    return dest
