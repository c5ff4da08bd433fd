"""Labelled photos of your own: a folder of photos with a csv of labels, or one folder per class.

Two layouts are read (the csv wins when both are present):

- ``root/labels.csv`` with columns ``image,label`` (more columns are ignored); ``image``
  is a path relative to ``root/images/`` when that folder exists, else to ``root``;
- ``root/<class>/<photo>``: the folder names are the labels.

Labels are the 7 FER-2013 names of :data:`emotify_ml.labels.EMOTIONS` (any case). Photos
are listed, not decoded: a photo set of thousands of camera images is read one photo at a
time by whoever scores it (:meth:`PhotoSet.read`).

>>> photos = load_photos("../shared/data/muxspace_dev")        # doctest: +SKIP
>>> len(photos), photos.counts()["disgust"]                     # doctest: +SKIP
(2156, 104)
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotify_ml.exceptions import DataError, DataNotFoundError
from emotify_ml.io.frames import IMAGE_SUFFIXES
from emotify_ml.labels import EMOTION_TO_INDEX, EMOTIONS

LABELS_FILE = "labels.csv"
IMAGES_DIR = "images"
PHOTO_SUFFIXES = IMAGE_SUFFIXES
"""Files a class folder contributes (the image files of :mod:`emotify_ml.io.frames`); anything else is ignored."""


@dataclass(frozen=True)
class PhotoSet:
    """Labelled photos on disk.

    Attributes
    ----------
    paths : (N,) str, absolute paths, in the csv's order (csv layout) or sorted (folders)
    labels : (N,) int64, FER-2013 class indices
    root : str
    layout : ``"csv"`` or ``"folders"``
    name : str, a short name of the set (the root folder's name unless given)
    """

    paths: np.ndarray
    labels: np.ndarray
    root: str
    layout: str
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        """Photos per class, for all 7 classes."""
        n = np.bincount(self.labels, minlength=len(EMOTIONS))
        return {name: int(n[i]) for i, name in enumerate(EMOTIONS)}

    def relative_paths(self) -> list[str]:
        """Paths relative to :attr:`root` (``/`` separated), as the identity and reports name them."""
        root = Path(self.root)
        return [Path(p).relative_to(root).as_posix() for p in self.paths]

    def content_hash(self) -> str:
        """sha256 of every photo's relative path, size and label: changes when any photo or label does."""
        h = hashlib.sha256()
        for rel, path, label in zip(self.relative_paths(), self.paths, self.labels):
            h.update(f"{rel}|{os.path.getsize(path)}|{EMOTIONS[label]}\n".encode())
        return h.hexdigest()

    def identity(self) -> dict[str, object]:
        """Name, root, layout, size, per-class counts and content hash: what an evaluation run records."""
        return {"name": self.name, "root": self.root, "layout": self.layout, "n": len(self),
                "hash": self.content_hash(), **{f"n_{k}": v for k, v in self.counts().items()}}

    def read(self, i: int) -> np.ndarray:
        """Photo ``i`` as an (H, W, 3) BGR uint8 image.

        Raises
        ------
        DataError
            The file is empty or not an image OpenCV can decode (named).
        """
        from emotify_ml.exceptions import InputError
        from emotify_ml.io.frames import read_image

        path = Path(self.paths[i])
        try:
            return read_image(path)
        except InputError as exc:
            raise DataError(f"cannot read photo {str(path)!r}: {exc}") from None


def load_photos(root, *, labels_file: str | None = None, images_dir: str | None = None,
                name: str | None = None) -> PhotoSet:
    """List the labelled photos under ``root`` (see the module docstring for the two layouts).

    Parameters
    ----------
    root : path
        The photo set's folder.
    labels_file : str, optional
        The csv of labels, relative to ``root`` (default ``labels.csv`` when it exists, else
        the class-folder layout is read).
    images_dir : str, optional
        Folder the csv's ``image`` paths are relative to, relative to ``root`` (default
        ``images`` when it exists, else ``root`` itself).
    name : str, optional
        Name of the set in reports (default: the root folder's name).

    Raises
    ------
    DataNotFoundError
        ``root``, the csv, or a photo the csv lists does not exist.
    DataError
        An unknown label (the 7 names are listed), a csv without ``image`` and ``label``
        columns, a photo listed twice with different labels, an unknown class folder, or no photos at all.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataNotFoundError(f"photo folder {str(root)!r} does not exist; expected {LABELS_FILE} with "
                                f"image,label columns, or one folder per class ({', '.join(EMOTIONS)})")
    if not root.is_dir():
        raise DataError(f"photo root {str(root)!r} is not a folder")
    root = root.resolve()
    name = name or root.name
    csv_path = root / (labels_file or LABELS_FILE)
    if labels_file is not None and not csv_path.is_file():
        raise DataNotFoundError(f"labels file {str(csv_path)!r} does not exist")
    if csv_path.is_file():
        base = root / images_dir if images_dir else (root / IMAGES_DIR if (root / IMAGES_DIR).is_dir() else root)
        if not base.is_dir():
            raise DataNotFoundError(f"images folder {str(base)!r} does not exist")
        paths, labels = _read_csv(csv_path, base)
        layout = "csv"
    else:
        paths, labels = _read_folders(root)
        layout = "folders"
    return PhotoSet(np.array(paths, dtype=str), np.array(labels, dtype=np.int64), str(root), layout, name)


def _label(value: str, where: str) -> int:
    key = str(value).strip().lower()
    if key not in EMOTION_TO_INDEX:
        raise DataError(f"{where}: unknown label {value!r}; expected one of {', '.join(EMOTIONS)}")
    return EMOTION_TO_INDEX[key]


def _read_csv(csv_path: Path, base: Path) -> tuple[list[str], list[int]]:
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "image" not in fields or "label" not in fields:
            raise DataError(f"{csv_path}: needs a header with 'image' and 'label' columns; got {reader.fieldnames}")
        reader.fieldnames = fields
        seen: dict[str, int] = {}
        paths, labels, missing = [], [], []
        for line, row in enumerate(reader, start=2):
            image = (row.get("image") or "").strip()
            if not image:
                raise DataError(f"{csv_path}, line {line}: empty image name")
            label = _label(row.get("label") or "", f"{csv_path}, line {line}")
            if image in seen:
                if seen[image] != label:
                    raise DataError(f"{csv_path}, line {line}: {image!r} is listed again with another label "
                                    f"({EMOTIONS[seen[image]]} and {EMOTIONS[label]})")
                continue
            seen[image] = label
            path = base / image
            if not path.is_file():
                missing.append(image)
                continue
            paths.append(str(path))
            labels.append(label)
    if missing:
        raise DataNotFoundError(f"{len(missing)} photo(s) listed in {csv_path} do not exist under {base}, "
                                f"e.g. {', '.join(repr(m) for m in missing[:3])}")
    if not paths:
        raise DataError(f"{csv_path} lists no photos")
    return paths, labels


def _read_folders(root: Path) -> tuple[list[str], list[int]]:
    folders = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                     key=lambda p: p.name.lower())
    if not folders:
        raise DataError(f"{str(root)!r} holds neither {LABELS_FILE} nor class folders; expected {LABELS_FILE} "
                        f"(image,label) or {root}/<class>/<photo> with a class among {', '.join(EMOTIONS)}")
    paths, labels = [], []
    for folder in folders:
        label = _label(folder.name, f"class folder {str(folder)!r}")
        for file in sorted(folder.iterdir()):
            if file.is_file() and file.suffix.lower() in PHOTO_SUFFIXES:
                paths.append(str(file))
                labels.append(label)
    if not paths:
        raise DataError(f"no photos ({', '.join(PHOTO_SUFFIXES)}) in the class folders of {str(root)!r}")
    return paths, labels
