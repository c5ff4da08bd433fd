"""MPII Human Pose annotations (the flattened csv): poses with activity labels.

The csv has one row per image: ``ID, NAME``, the 16 joints of
:data:`emotify_ml.labels.MPII_JOINTS` as ``<joint>_X, <joint>_Y`` in image pixels
(``-1, -1`` = not annotated), ``Scale`` (person height / 200 px), ``Activity`` (397
fine activities) and ``Category`` (the 20 of :data:`emotify_ml.labels.MPII_CATEGORIES`,
plus the literal ``NA`` on 41 unlabelled rows, which are dropped).

:func:`load_mpii` returns an :class:`MPIIData`; :func:`load_mpii_splits` returns the
experiment's :class:`emotify_ml.experiment.Splits`, with a fixed, seeded, stratified
20 % test split. MPII images are video frames: near-duplicate poses of one clip can
sit on both sides of a random split, so held-out scores are optimistic for new people.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotify_ml.data.csv_text import csv_rows
from emotify_ml.exceptions import DataError, DataNotFoundError
from emotify_ml.labels import MPII_CATEGORIES, MPII_JOINTS
from emotify_ml.paths import repo_root

log = logging.getLogger(__name__)

HEADER: tuple[str, ...] = ("ID", "NAME", *(f"{j}_{ax}" for j in MPII_JOINTS for ax in "XY"),
                           "Scale", "Activity", "Category")
"""The columns the csv must have, in order."""

UNLABELLED = "NA"
LABEL_KINDS = ("category", "activity")
MISSING = -1.0


def sample_mpii_path() -> Path:
    """The 300-row sample bundled with the repo (``data/mpii_sample/mpii_sample.csv``)."""
    return repo_root() / "data" / "mpii_sample" / "mpii_sample.csv"


@dataclass(frozen=True)
class MPIIData:
    """Labelled MPII poses.

    Attributes
    ----------
    joints : (N, 16, 2) float64
        Pixel coordinates in :data:`~emotify_ml.labels.MPII_JOINTS` order; NaN where not annotated.
    visible : (N, 16) bool
        True where the joint is annotated.
    scale : (N,) float64
        MPII person scale (height / 200 px).
    labels : (N,) int64
        Indices into ``class_names``.
    class_names : tuple of str
        :data:`~emotify_ml.labels.MPII_CATEGORIES`, or the sorted fine activities.
    categories : (N,) int64
        Category indices (whatever ``labels`` holds; used to stratify splits).
    activities : (N,) str
    names : (N,) str
        Image file names.
    path : str
    sha256 : str
        Of the file's bytes (of its decompressed bytes for a gzipped csv).
    n_unlabelled : int
        ``NA`` rows dropped.
    n_skipped : int
        Malformed rows skipped with ``on_error="skip"``.
    """

    joints: np.ndarray
    visible: np.ndarray
    scale: np.ndarray
    labels: np.ndarray
    class_names: tuple
    categories: np.ndarray
    activities: np.ndarray
    names: np.ndarray
    path: str
    sha256: str
    n_unlabelled: int = 0
    n_skipped: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    def flat_joints(self) -> np.ndarray:
        """Joints as the (N, 32) table the pose features take (``x0, y0, x1, y1, ...``; NaN = missing)."""
        return self.joints.reshape(len(self.joints), -1).copy()

    def counts(self) -> dict[str, int]:
        """Rows per class name."""
        return {name: int(n) for name, n in zip(self.class_names, np.bincount(self.labels, minlength=len(self.class_names)))}


def _parse_row(row: list[str], line: int, path: Path) -> tuple:
    if len(row) != len(HEADER):
        raise DataError(f"{path}:{line}: {len(row)} fields, expected {len(HEADER)} ({', '.join(HEADER[:3])}, ...)")
    try:
        coords = np.array([float(v) for v in row[2:34]], dtype=np.float64)
        scale = float(row[34])
    except ValueError:
        bad = next(v for v in row[2:35] if not _is_float(v))
        raise DataError(f"{path}:{line}: non-numeric joint or Scale value {bad!r}") from None
    if not np.isfinite(coords).all() or not np.isfinite(scale):
        raise DataError(f"{path}:{line}: joint coordinates and Scale must be finite numbers")
    category, activity = row[36].strip(), row[35].strip()
    if category != UNLABELLED and category not in MPII_CATEGORIES:
        raise DataError(f"{path}:{line}: unknown Category {category!r}; expected one of the 20 MPII categories or NA")
    return row[1], coords, scale, activity, category


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def load_mpii(path=None, *, labels: str = "category", on_error: str = "raise") -> MPIIData:
    """Read the MPII Human Pose csv, dropping the ``NA`` rows.

    Parameters
    ----------
    path : path, optional
        The csv (UTF-8 with or without a BOM, plain or gzipped); None is the 300-row sample bundled
        with the repo (:func:`sample_mpii_path`), never a guessed location: the full set is named by
        config (``data.path=<folder>/mpii_human_pose.csv``).
    labels : {"category", "activity"}
        Label vocabulary: the 20 categories or the fine activities (sorted names).
    on_error : {"raise", "skip"}
        A malformed row (wrong field count, non-numeric joint, unknown category) raises
        naming the line, or is skipped and counted in ``n_skipped``.

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    DataError
        The header is not the MPII one, a row is malformed (``on_error="raise"``), or no labelled row is left.

    Examples
    --------
    >>> data = load_mpii(sample_mpii_path())
    >>> data.joints.shape[1:], len(data.class_names)
    ((16, 2), 20)
    """
    if labels not in LABEL_KINDS:
        raise ValueError(f"labels must be one of {LABEL_KINDS}; got {labels!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
    path = Path(path).expanduser() if path is not None else sample_mpii_path()
    if not path.is_file():
        raise DataNotFoundError(f"MPII csv {str(path)!r} does not exist; expected mpii_human_pose.csv "
                                f"(columns {', '.join(HEADER[:3])}, ..., Scale, Activity, Category)")
    digest = hashlib.sha256()
    reader = csv_rows(path, digest)
    header = tuple(h.strip() for h in next(reader, (0, []))[1])
    if header != HEADER:
        diff = next((f"column {i + 1} is {h!r}, expected {e!r}" for i, (h, e) in enumerate(zip(header, HEADER)) if h != e),
                    f"{len(header)} columns, expected {len(HEADER)}")
        raise DataError(f"{path} is not the MPII Human Pose csv: {diff}")
    rows, n_unlabelled, n_skipped = [], 0, 0
    for line, row in reader:
        if not row:
            continue
        try:
            parsed = _parse_row(row, line, path)
        except DataError:
            if on_error == "raise":
                raise
            n_skipped += 1
            continue
        if parsed[4] == UNLABELLED:
            n_unlabelled += 1
            continue
        rows.append(parsed)
    if n_skipped:
        log.warning("skipped %d malformed rows of %s", n_skipped, path)
    if not rows:
        raise DataError(f"{path} has no labelled rows (all are {UNLABELLED!r} or malformed)")
    names, coords, scale, activities, categories = zip(*rows)
    joints = np.stack(coords).reshape(-1, len(MPII_JOINTS), 2)
    visible = ~(joints == MISSING).all(2)
    joints[~visible] = np.nan
    cat_index = {c: i for i, c in enumerate(MPII_CATEGORIES)}
    cats = np.array([cat_index[c] for c in categories], dtype=np.int64)
    activities = np.array(activities, dtype=object)
    if labels == "category":
        class_names, y = MPII_CATEGORIES, cats
    else:
        class_names = tuple(sorted(set(activities)))
        index = {a: i for i, a in enumerate(class_names)}
        y = np.array([index[a] for a in activities], dtype=np.int64)
    return MPIIData(joints=joints, visible=visible, scale=np.array(scale), labels=y, class_names=tuple(class_names),
                    categories=cats, activities=activities, names=np.array(names, dtype=object), path=str(path),
                    sha256=digest.hexdigest(), n_unlabelled=n_unlabelled, n_skipped=n_skipped)


def split_indices(strata, *, test_size: float = 0.2, val_size: float = 0.15, seed: int = 0):
    """Stratified train / validation / test row indices, fixed by ``seed``.

    The test split takes ``test_size`` of all rows; validation takes ``val_size`` of
    all rows from the rest. Classes too small to stratify are pooled for the split.

    Returns
    -------
    (train, val, test) : three sorted int arrays
    """
    from sklearn.model_selection import train_test_split

    strata = np.asarray(strata)
    if not 0 < test_size < 1 or not 0 <= val_size < 1 - test_size:
        raise ValueError(f"need 0 < test_size < 1 and 0 <= val_size < 1 - test_size; got {test_size}, {val_size}")
    idx = np.arange(len(strata))

    def stratify(rows):
        s = strata[rows].copy()
        values, counts = np.unique(s, return_counts=True)
        s[np.isin(s, values[counts < 3])] = -1
        return s if len(np.unique(s)) > 1 and np.unique(s, return_counts=True)[1].min() >= 2 else None

    rest, test = train_test_split(idx, test_size=test_size, random_state=seed, stratify=stratify(idx))
    if val_size == 0:
        return np.sort(rest), np.array([], dtype=int), np.sort(test)
    train, val = train_test_split(rest, test_size=val_size / (1 - test_size), random_state=seed,
                                  stratify=stratify(rest))
    return np.sort(train), np.sort(val), np.sort(test)


def load_mpii_splits(path=None, *, labels: str = "category", test_size: float = 0.2, val_size: float = 0.15,
                     seed: int = 0, on_error: str = "raise", max_train=None):
    """MPII poses as an experiment's :class:`~emotify_ml.experiment.Splits`.

    ``X`` is the (N, 32) joint table (NaN = missing) of :meth:`MPIIData.flat_joints`;
    ``y`` indexes ``class_names``. The test split (``test_size`` of the labelled rows)
    is stratified by category and fixed by ``seed``, whatever ``labels`` is; validation
    (for model choice) is carved from the rest.

    Parameters
    ----------
    path, labels, on_error
        As in :func:`load_mpii`.
    test_size, val_size : float
        Fractions of all labelled rows.
    seed : int
        Fixes both splits. Keep the default to compare with published numbers.
    max_train : int, optional
        Keep only the first ``max_train`` training rows (a stratified-enough random
        subset, as rows are shuffled by the split): quick runs and tests.
    """
    from emotify_ml.experiment import Splits

    data = load_mpii(path, labels=labels, on_error=on_error)
    train, val, test = split_indices(data.categories, test_size=test_size, val_size=val_size, seed=seed)
    if max_train is not None:
        train = np.sort(np.random.default_rng(seed).permutation(train)[: int(max_train)])
    X, y = data.flat_joints(), data.labels
    identity = {"path": data.path, "sha256": data.sha256, "labels": labels, "seed": seed, "test_size": test_size,
                "val_size": val_size, "n_rows": len(data), "n_unlabelled_dropped": data.n_unlabelled,
                "n_skipped": data.n_skipped, "n_train": len(train), "n_val": len(val), "n_test": len(test)}
    return Splits(X[train], y[train], X[val], y[val], X[test], y[test], class_names=data.class_names,
                  identity=identity)
