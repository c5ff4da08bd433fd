"""FER-2013 loaders for the Kaggle image-folder layout and the original csv.

Both return a :class:`FERData`: uint8 images (N, 48, 48), integer labels in the
FER-2013 index order of :mod:`emotify_ml.labels`, and the usage of each image
(``Training``, ``PublicTest`` or ``PrivateTest``).

Image size: FER-2013 images are 48x48. Other sizes are resized to 48x48 with
area interpolation (``resize=True``, the default) or refused (``resize=False``).

Caching: decoding 35,887 JPEGs takes a few seconds with threads; the decoded
arrays are cached as an ``.npz`` in :func:`emotify_ml.paths.cache_dir`, keyed by
the root's absolute path and the names, sizes and modification times of its
files, so a second load takes well under a second and any change invalidates it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from emotify_ml.data.csv_text import csv_rows
from emotify_ml.exceptions import DataError, DataNotFoundError
from emotify_ml.features.preprocessing import FACE_SIZE, to_grey_square
from emotify_ml.labels import EMOTION_TO_INDEX, EMOTIONS, FER_USAGES, TEST, TRAIN
from emotify_ml.paths import cache_dir as default_cache_dir
from emotify_ml.paths import sample_data_dir

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_FOLDER_USAGE = {"train": TRAIN, "test": TEST}
_CACHE_VERSION = "1"


@dataclass(frozen=True)
class FERData:
    """Decoded FER-2013 images with their labels and usage split.

    Attributes
    ----------
    images : (N, 48, 48) uint8
    labels : (N,) int64, FER-2013 class indices
    usage : (N,) str, one of ``Training``, ``PublicTest``, ``PrivateTest``
    paths : (N,) str, source file (folder layout) or ``csv:<line>``
    root : str, where the data came from
    n_skipped : int, unreadable items skipped with ``on_error="skip"``
    """

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    paths: np.ndarray
    root: str
    n_skipped: int = 0
    _digest: list = field(default_factory=list, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, usage: str) -> "FERData":
        """The subset with the given usage (``Training``, ``PublicTest``, ``PrivateTest``)."""
        if usage not in FER_USAGES:
            raise ValueError(f"usage must be one of {FER_USAGES}; got {usage!r}")
        m = self.usage == usage
        return FERData(self.images[m], self.labels[m], self.usage[m], self.paths[m], self.root)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per usage and class name."""
        return {
            u: {EMOTIONS[k]: int(np.sum((self.usage == u) & (self.labels == k))) for k in range(len(EMOTIONS))}
            for u in FER_USAGES
            if np.any(self.usage == u)
        }

    def to_splits(self):
        """Training / PublicTest (validation) / PrivateTest (test) as an experiment's :class:`Splits`."""
        from emotify_ml.experiment import Splits

        parts = [self.split(u) for u in FER_USAGES]
        identity = {"root": self.root, "hash": self.content_hash(), "n_skipped": self.n_skipped,
                    **{f"n_{u}": len(p) for u, p in zip(FER_USAGES, parts)}}
        return Splits(*(a for p in parts for a in (p.images, p.labels)), class_names=EMOTIONS, identity=identity)

    def content_hash(self) -> str:
        """sha256 over images, labels and usage: the data set's identity for tracking."""
        if not self._digest:
            h = hashlib.sha256()
            order = np.lexsort((self.paths,)) if len(self.paths) else np.arange(0)
            h.update(np.ascontiguousarray(self.images[order]).tobytes())
            h.update(np.ascontiguousarray(self.labels[order]).astype("<i8").tobytes())
            h.update("\n".join(self.usage[order].tolist()).encode())
            self._digest.append(h.hexdigest())
        return self._digest[0]


def load_fer2013(root=None, **kwargs) -> FERData:
    """Load FER-2013 from a folder root (``train|test/<class>/*.jpg``) or a ``fer2013.csv`` file.

    ``root=None`` loads the sample bundled with the repo (``data/fer2013_sample``).
    Keyword arguments go to :func:`load_fer2013_folder` or :func:`load_fer2013_csv`.
    """
    path = Path(root).expanduser() if root is not None else sample_data_dir()
    if path.is_file() or path.name.lower().endswith((".csv", ".csv.gz")):
        return load_fer2013_csv(path, **kwargs)
    return load_fer2013_folder(path, **kwargs)


def _fit_size(img: np.ndarray, where: str | None, resize: bool) -> np.ndarray:
    if img.shape == (FACE_SIZE, FACE_SIZE):
        return img
    if not resize:
        raise DataError(f"{where + ': ' if where else ''}image is {img.shape[1]}x{img.shape[0]}, expected {FACE_SIZE}x{FACE_SIZE} (pass resize=True to resize)")
    return to_grey_square(img, FACE_SIZE)


def _usage_of(split_dir: str, name: str) -> str:
    for usage in FER_USAGES:
        if name.startswith(usage + "_"):
            return usage
    return _FOLDER_USAGE[split_dir]


def _scan_folder(root: Path) -> list[tuple[str, str, int, str]]:
    """List (path, class, label, usage) of every image; validate the layout."""
    if not root.exists():
        raise DataNotFoundError(f"FER-2013 root {str(root)!r} does not exist; expected a folder with train/ and test/ class folders, or a fer2013.csv")
    if not root.is_dir():
        raise DataError(f"FER-2013 root {str(root)!r} is not a folder or a .csv file")
    splits = [d for d in ("train", "test") if (root / d).is_dir()]
    if not splits:
        raise DataError(f"{str(root)!r} has neither train/ nor test/; expected {root}/train/<class>/*.jpg and {root}/test/<class>/*.jpg")
    items = []
    for split_dir in splits:
        for class_dir in sorted(p for p in (root / split_dir).iterdir() if p.is_dir()):
            name = class_dir.name.lower()
            if name not in EMOTION_TO_INDEX:
                raise DataError(f"unknown class folder {str(class_dir)!r}; expected one of {', '.join(EMOTIONS)}")
            label = EMOTION_TO_INDEX[name]
            with os.scandir(class_dir) as it:
                for entry in it:
                    if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES):
                        items.append((entry.path, name, label, _usage_of(split_dir, entry.name)))
    if not items:
        raise DataError(f"no images (*.jpg, *.png) found under {str(root)!r}/train|test/<class>/")
    items.sort()
    return items


def _cache_key(root: Path, items, resize: bool, on_error: str) -> str:
    h = hashlib.sha256(f"{_CACHE_VERSION}|{root.resolve()}|{resize}|{on_error}".encode())
    for path, *_ in items:
        st = os.stat(path)
        h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def load_fer2013_folder(
    root,
    *,
    resize: bool = True,
    on_error: str = "raise",
    cache: bool = True,
    cache_dir=None,
    n_jobs: int = 8,
) -> FERData:
    """Load the Kaggle folder layout ``root/{train,test}/<class>/*.jpg``.

    Usage comes from the file-name prefix (``Training_``, ``PublicTest_``,
    ``PrivateTest_``); files without one take ``Training`` in train/ and
    ``PrivateTest`` in test/.

    Parameters
    ----------
    root : path
        Folder holding ``train/`` and/or ``test/``.
    resize : bool
        Resize images that are not 48x48 (True) or raise :class:`DataError` (False).
    on_error : {"raise", "skip"}
        What to do with an unreadable image: raise naming the file, or skip it
        and log how many were skipped.
    cache : bool
        Read and write the decoded-array cache.
    cache_dir : path, optional
        Cache folder; defaults to :func:`emotify_ml.paths.cache_dir`.
    n_jobs : int
        Decoding threads on a cold load.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
    root = Path(root).expanduser()
    items = _scan_folder(root)
    cache_file = None
    if cache:
        cache_file = Path(cache_dir or default_cache_dir()) / "fer2013" / f"{_cache_key(root, items, resize, on_error)}.npz"
        if cache_file.exists():
            try:
                with np.load(cache_file, allow_pickle=False) as z:
                    data = FERData(z["images"], z["labels"], z["usage"], z["paths"], str(root), int(z["n_skipped"]))
                log.debug("loaded %d FER-2013 images from cache %s", len(data), cache_file)
                return data
            except (OSError, ValueError, KeyError) as exc:  # a broken cache is rebuilt, never trusted
                log.warning("ignoring unreadable cache %s (%s)", cache_file, exc)

    def decode(path: str):
        buf = np.fromfile(path, dtype=np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if buf.size else None
        if img is None:
            if on_error == "raise":
                raise DataError(f"cannot decode image {path!r} (corrupt or not an image); pass on_error='skip' to skip such files")
            return None
        return _fit_size(img, path, resize)

    with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
        decoded = list(pool.map(decode, [it[0] for it in items]))
    keep = [i for i, img in enumerate(decoded) if img is not None]
    n_skipped = len(items) - len(keep)
    if n_skipped:
        log.warning("skipped %d unreadable image(s) under %s", n_skipped, root)
    if not keep:
        raise DataError(f"no readable images under {str(root)!r}")
    data = FERData(
        images=np.stack([decoded[i] for i in keep]).astype(np.uint8),
        labels=np.array([items[i][2] for i in keep], dtype=np.int64),
        usage=np.array([items[i][3] for i in keep]),
        paths=np.array([items[i][0] for i in keep]),
        root=str(root),
        n_skipped=n_skipped,
    )
    if cache_file is not None:
        _write_cache(cache_file, data)
    return data


def _write_cache(cache_file: Path, data: FERData) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.stem + f".{os.getpid()}.tmp.npz")
        np.savez(tmp, images=data.images, labels=data.labels, usage=data.usage, paths=data.paths, n_skipped=data.n_skipped)
        os.replace(tmp, cache_file)
    except OSError as exc:  # a read-only cache is a slow second load, not a failure
        log.warning("could not write cache %s (%s)", cache_file, exc)


def load_fer2013_csv(path, *, resize: bool = True, on_error: str = "raise", **_ignored) -> FERData:
    """Load the original Kaggle ``fer2013.csv`` (columns ``emotion, pixels, Usage``).

    UTF-8 with or without a BOM, plain or gzipped (``fer2013.csv.gz``); a file that is
    not UTF-8 text is refused naming the file and line (:mod:`emotify_ml.data.csv_text`).

    ``pixels`` holds 2304 space-separated grey values (48x48). Rows with another
    square pixel count are resized (``resize=True``) or refused. A malformed row
    (bad emotion, non-numeric or out-of-range pixels, unknown Usage) raises
    :class:`DataError` naming the line, or is skipped with ``on_error="skip"``.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"FER-2013 csv {str(path)!r} does not exist")
    images, labels, usage, where = [], [], [], []
    n_skipped = 0
    rows = csv_rows(path)
    _, header = next(rows, (0, None))
    if header is None:
        raise DataError(f"{str(path)!r} is empty; expected a header 'emotion,pixels,Usage'")
    cols = {name.strip().lower(): i for i, name in enumerate(header)}
    missing = [c for c in ("emotion", "pixels") if c not in cols]
    if missing:
        raise DataError(f"{str(path)!r} header {header} lacks column(s) {missing}; expected 'emotion,pixels,Usage'")
    ie, ip, iu = cols["emotion"], cols["pixels"], cols.get("usage")
    for lineno, row in rows:
        if not row:
            continue
        try:
            if len(row) < len(header):
                raise DataError(f"has {len(row)} fields, expected {len(header)}")
            try:
                label = int(row[ie])
            except ValueError:
                raise DataError(f"emotion {row[ie][:20]!r} is not an integer") from None
            if not 0 <= label < len(EMOTIONS):
                raise DataError(f"emotion {label} is outside 0..{len(EMOTIONS) - 1}")
            try:
                pix = np.array(row[ip].split(), dtype=np.int64)
            except (ValueError, OverflowError):
                raise DataError("pixels are not all integers") from None
            side = int(round(np.sqrt(pix.size)))
            if pix.size == 0 or side * side != pix.size:
                raise DataError(f"has {pix.size} pixels, expected {FACE_SIZE * FACE_SIZE} (a square image)")
            if pix.min() < 0 or pix.max() > 255:
                raise DataError("pixels must lie in 0..255")
            u = row[iu].strip() if iu is not None else TRAIN
            if u not in FER_USAGES:
                raise DataError(f"Usage {u[:20]!r} is not one of {FER_USAGES}")
            img = _fit_size(pix.astype(np.uint8).reshape(side, side), None, resize)
        except DataError as exc:
            if on_error == "raise":
                raise DataError(f"{path}: line {lineno}: {exc}") from None
            n_skipped += 1
            continue
        images.append(img)
        labels.append(label)
        usage.append(u)
        where.append(f"csv:{lineno}")
    if n_skipped:
        log.warning("skipped %d malformed row(s) of %s", n_skipped, path)
    if not images:
        raise DataError(f"{str(path)!r} holds no usable rows")
    return FERData(np.stack(images), np.array(labels, np.int64), np.array(usage), np.array(where), str(path), n_skipped)
