"""Body-pose features for action prediction: skeleton maths and the :class:`PoseFeatures` transformer.

A pose is the 16 MPII joints (:data:`emotify_ml.labels.MPII_JOINTS` order) in image
pixels, x to the right and y down. Tables hold it flattened as 32 columns
``x0, y0, x1, y1, ...``; a missing joint is NaN, or the MPII marker ``(-1, -1)``.

The features describe the shape of the body, not where it is in the image or how big:

- joints relative to the torso centre, divided by the torso size (position and scale invariant);
- bone directions (unit vectors) and lengths, signed joint angles (cos, sin) at knees,
  hips, elbows, shoulders and neck;
- distances between every pair of joints, divided by the torso size;
- torso tilt, one missing-joint indicator per joint, and the number of visible joints.

Image orientation is kept on purpose: lying down and standing up differ by the
direction of gravity, which is "down" in almost every photo.

Upper neck and head top are not what a live pose model gives (BlazePose has a nose,
eyes and ears; :mod:`emotify_ml.actions.blazepose` approximates the two). With
``head="direction"`` (the default) they enter only as the direction of the head
seen from the thorax, never as positions or lengths, and never in the centre or scale.
"""

from __future__ import annotations

import functools

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from emotify_ml.exceptions import InputError
from emotify_ml.labels import MPII_JOINTS

N_JOINTS = len(MPII_JOINTS)
J = {name: i for i, name in enumerate(MPII_JOINTS)}

MIRROR_PERMUTATION: tuple[int, ...] = tuple(
    J[name.replace("r ", "l ", 1)] if name.startswith("r ") else J[name.replace("l ", "r ", 1)]
    if name.startswith("l ") else J[name] for name in MPII_JOINTS)
"""Joint index of each joint's left/right counterpart (self for pelvis, thorax, upper neck, head top)."""

HEAD_JOINTS: tuple[int, ...] = (J["upper neck"], J["head top"])
BODY_JOINTS: tuple[int, ...] = tuple(i for i in range(N_JOINTS) if i not in HEAD_JOINTS)

BONES: tuple[tuple[int, int], ...] = tuple((J[a], J[b]) for a, b in (
    ("r ankle", "r knee"), ("r knee", "r hip"), ("r hip", "pelvis"), ("l hip", "pelvis"),
    ("l hip", "l knee"), ("l knee", "l ankle"), ("pelvis", "thorax"),
    ("r wrist", "r elbow"), ("r elbow", "r shoulder"), ("r shoulder", "thorax"),
    ("l shoulder", "thorax"), ("l shoulder", "l elbow"), ("l elbow", "l wrist"),
))
"""Bones between body joints, as (from, to) joint indices."""

HEAD_BONES: tuple[tuple[int, int], ...] = ((J["thorax"], J["upper neck"]), (J["upper neck"], J["head top"]))

ANGLES: tuple[tuple[int, int, int], ...] = tuple((J[a], J[b], J[c]) for a, b, c in (
    ("r ankle", "r knee", "r hip"), ("l ankle", "l knee", "l hip"),
    ("r knee", "r hip", "r shoulder"), ("l knee", "l hip", "l shoulder"),
    ("r wrist", "r elbow", "r shoulder"), ("l wrist", "l elbow", "l shoulder"),
    ("r elbow", "r shoulder", "r hip"), ("l elbow", "l shoulder", "l hip"),
))
"""Joint angles (a, b, c): the signed angle at b from the bone b→a to the bone b→c."""

HEAD_ANGLE: tuple[int, int, int] = (J["pelvis"], J["thorax"], J["head top"])

# torso length ≈ these multiples of shoulder and hip width (medians over MPII: 1 / 0.62 and 1 / 0.37)
_WIDTH_TO_TORSO = {"shoulders": 1.6, "hips": 2.7}
HEAD_MODES = ("direction", "exact", "drop")


def as_joints(X) -> np.ndarray:
    """Poses as a float (N, 16, 2) array with NaN for missing joints.

    Parameters
    ----------
    X : array-like, (N, 32) flattened ``x0, y0, x1, y1, ...`` or (N, 16, 2)
        Joint coordinates in MPII order. A joint is missing when either coordinate
        is NaN or when it is exactly ``(-1, -1)`` (the MPII marker).

    Returns
    -------
    (N, 16, 2) float64, a new array.

    Raises
    ------
    InputError
        On any other shape, or infinite values.

    Examples
    --------
    >>> as_joints(np.full((1, 32), -1.0)).shape
    (1, 16, 2)
    """
    joints = np.array(X, dtype=np.float64)
    if joints.ndim == 2 and joints.shape[1] == 2 * N_JOINTS:
        joints = joints.reshape(len(joints), N_JOINTS, 2)
    if joints.ndim != 3 or joints.shape[1:] != (N_JOINTS, 2):
        raise InputError(f"poses must be (N, {2 * N_JOINTS}) flattened x, y pairs or (N, {N_JOINTS}, 2) "
                         f"in MPII joint order; got shape {np.shape(X)}")
    if np.isinf(joints).any():
        raise InputError("poses contain infinite coordinates; mark missing joints with NaN or (-1, -1)")
    missing = np.isnan(joints).any(2) | (joints == -1).all(2)
    joints[missing] = np.nan
    return joints


def mirror_poses(joints) -> np.ndarray:
    """Left/right mirror images of poses: x → -x and every left joint swapped with its right one.

    Parameters
    ----------
    joints : (N, 16, 2) or (N, 32)

    Returns
    -------
    (N, 16, 2) float64; the mirror of the mirror is the pose itself (up to a shift in x,
    which the features ignore).
    """
    joints = as_joints(joints)[:, list(MIRROR_PERMUTATION)]
    joints[..., 0] *= -1.0
    return joints


def _mean_of(joints, idx):
    """Mean over the joints ``idx`` that are present (NaN where none is), without warnings."""
    sub = joints[:, list(idx)]
    present = np.isfinite(sub).all(2, keepdims=True)
    count = present.sum(1)
    total = np.where(present, sub, 0.0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def complete_torso(joints: np.ndarray) -> np.ndarray:
    """Fill a missing pelvis with the mid-hips and a missing thorax with the mid-shoulders (in place)."""
    for target, pair in ((J["pelvis"], (J["r hip"], J["l hip"])), (J["thorax"], (J["r shoulder"], J["l shoulder"]))):
        gap = np.isnan(joints[:, target]).any(1)
        if gap.any():
            joints[gap, target] = _mean_of(joints[gap], pair)
    return joints


def torso_frame(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (N, 2) and size (N,) of each body, from hips, shoulders, pelvis and thorax only.

    The centre is the mean of the visible hips and shoulders (else pelvis/thorax,
    else every visible body joint). The size is the largest of the torso length
    (pelvis to thorax) and the shoulder and hip widths times their typical ratio to
    it, so a torso foreshortened towards the camera does not blow the pose up.
    Bodies with no usable size get the spread of their visible joints, or 1.
    """
    centre = _mean_of(joints, (J["r hip"], J["l hip"], J["r shoulder"], J["l shoulder"]))
    for fallback in ((J["pelvis"], J["thorax"]), BODY_JOINTS, range(N_JOINTS)):
        gap = np.isnan(centre).any(1)
        if not gap.any():
            break
        centre[gap] = _mean_of(joints[gap], fallback)
    centre = np.nan_to_num(centre)

    def length(a, b):
        return np.linalg.norm(joints[:, a] - joints[:, b], axis=1)

    estimates = np.stack([length(J["pelvis"], J["thorax"]),
                          _WIDTH_TO_TORSO["shoulders"] * length(J["r shoulder"], J["l shoulder"]),
                          _WIDTH_TO_TORSO["hips"] * length(J["r hip"], J["l hip"])], axis=1)
    estimates[np.isnan(estimates)] = 0.0
    size = estimates.max(1)
    small = size < 1e-6
    if small.any():
        sq = np.sum((joints[small] - centre[small, None]) ** 2, axis=2)  # NaN for missing joints
        seen = np.isfinite(sq)
        spread = np.sqrt(np.where(seen, sq, 0.0).sum(1) / np.maximum(seen.sum(1), 1))
        size[small] = np.where(spread > 1e-6, spread, 1.0)
    return centre, size


def normalise_poses(X) -> np.ndarray:
    """Poses relative to the torso centre, in torso sizes (see :func:`torso_frame`); NaN stays NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> pose = rng.uniform(0, 100, (1, 16, 2))
    >>> moved = pose * 3 + 50
    >>> bool(np.allclose(normalise_poses(pose), normalise_poses(moved)))
    True
    """
    joints = complete_torso(as_joints(X))
    centre, size = torso_frame(joints)
    return (joints - centre[:, None]) / size[:, None, None]


def _unit(v):
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 1e-9, v / norm, np.nan), norm[..., 0]


def _signed_angle(joints, a, b, c):
    """cos and sin of the signed angles at joints ``b`` (index arrays: one column per angle)."""
    u, v = joints[:, a] - joints[:, b], joints[:, c] - joints[:, b]
    angle = np.arctan2(u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0], (u * v).sum(-1))
    return np.cos(angle), np.sin(angle)


@functools.lru_cache(maxsize=None)
def _pair_indices(head: str) -> tuple[np.ndarray, np.ndarray]:
    """The joint pairs (i < j) whose distances are features, for a ``head`` mode."""
    keep = [(i, j) for i, j in zip(*np.triu_indices(N_JOINTS, 1))
            if head == "exact" or (i not in HEAD_JOINTS and j not in HEAD_JOINTS)]
    ii, jj = np.array(keep).T
    ii.flags.writeable = jj.flags.writeable = False
    return ii, jj


def pose_feature_names(head: str = "direction", pairwise: bool = True) -> list[str]:
    """Names of the columns :func:`pose_features` returns, in order."""
    short = [n.replace(" ", "_") for n in MPII_JOINTS]
    coords = [i for i in range(N_JOINTS) if head == "exact" or i not in HEAD_JOINTS]
    bones = list(BONES) + (list(HEAD_BONES) if head == "exact" else [])
    names = [f"{short[i]}_{ax}" for i in coords for ax in "xy"]
    for a, b in bones:
        names += [f"bone_{short[a]}-{short[b]}_{k}" for k in ("dx", "dy", "len")]
    angles = list(ANGLES) + ([HEAD_ANGLE] if head != "drop" else [])
    for a, b, c in angles:
        names += [f"angle_{short[a]}-{short[b]}-{short[c]}_{k}" for k in ("cos", "sin")]
    if head == "direction":
        names += [f"head_dir_{ax}" for ax in "xy"] + [f"neck_dir_{ax}" for ax in "xy"]
    names += ["torso_tilt_cos", "torso_tilt_sin"]
    if pairwise:
        names += [f"dist_{short[i]}-{short[j]}" for i, j in zip(*_pair_indices(head))]
    names += [f"missing_{short[i]}" for i in range(N_JOINTS)] + ["n_visible"]
    return names


def pose_features(X, head: str = "direction", pairwise: bool = True) -> np.ndarray:
    """Position- and scale-invariant features of poses (NaN where a joint they need is missing).

    Parameters
    ----------
    X : (N, 32) or (N, 16, 2)
        Poses in image pixels, MPII joint order; missing joints NaN or (-1, -1).
    head : {"direction", "exact", "drop"}
        How upper neck and head top are used: only as the direction of the head from
        the thorax (default, robust to a live pose model's approximation), as exact
        joints like the others, or not at all.
    pairwise : bool
        Add the distance between every pair of joints (in torso sizes).

    Returns
    -------
    (N, F) float64, columns named by :func:`pose_feature_names`.

    Examples
    --------
    >>> pose_features(np.zeros((2, 32))).shape[0]
    2
    """
    if head not in HEAD_MODES:
        raise ValueError(f"head must be one of {HEAD_MODES}; got {head!r}")
    raw = as_joints(X)
    missing = np.isnan(raw).any(2)
    joints = normalise_poses(raw)
    coords = [i for i in range(N_JOINTS) if head == "exact" or i not in HEAD_JOINTS]
    cols = [joints[:, coords].reshape(len(joints), -1)]
    n = len(joints)
    a, b = np.array(list(BONES) + (list(HEAD_BONES) if head == "exact" else [])).T
    direction, length = _unit(joints[:, b] - joints[:, a])  # every bone at once: dx, dy, len per bone
    cols.append(np.concatenate([direction, length[..., None]], axis=2).reshape(n, -1))
    a, b, c = np.array(list(ANGLES) + ([HEAD_ANGLE] if head != "drop" else [])).T
    cols.append(np.stack(_signed_angle(joints, a, b, c), axis=2).reshape(n, -1))  # cos, sin per angle
    if head == "direction":
        cols += [_unit(joints[:, J["head top"]] - joints[:, J["thorax"]])[0],
                 _unit(joints[:, J["upper neck"]] - joints[:, J["thorax"]])[0]]
    tilt = _unit(joints[:, J["thorax"]] - joints[:, J["pelvis"]])[0]
    cols.append(tilt)
    if pairwise:
        ii, jj = _pair_indices(head)
        cols.append(np.linalg.norm(joints[:, ii] - joints[:, jj], axis=2))
    cols += [missing.astype(np.float64), (~missing).sum(1, keepdims=True).astype(np.float64)]
    return np.concatenate(cols, axis=1)


class PoseFeatures(TransformerMixin, BaseEstimator):
    """Transformer: poses (N, 32) → position- and scale-invariant pose features (N, F).

    Parameters
    ----------
    head : {"direction", "exact", "drop"}, default "direction"
        How upper neck and head top are used (see :func:`pose_features`).
    pairwise : bool, default True
        Add all pairwise joint distances.
    fill_value : float or None, default None
        Value replacing NaN features (missing joints) for classifiers that cannot take
        NaN, e.g. an SVM; the missing-joint indicators still say what was missing.
        None keeps NaN (gradient boosting handles it natively).

    Attributes
    ----------
    n_features_in_ : int
        32.
    feature_names_out_ : ndarray of str

    Examples
    --------
    >>> X = np.random.default_rng(0).uniform(0, 200, (4, 32))
    >>> PoseFeatures().fit(X).transform(X).shape == (4, len(PoseFeatures().fit(X).get_feature_names_out()))
    True
    """

    def __init__(self, *, head: str = "direction", pairwise: bool = True, fill_value=None):
        self.head = head
        self.pairwise = pairwise
        self.fill_value = fill_value

    def fit(self, X, y=None):
        """Check the poses and the parameters; learns nothing from the data."""
        if self.head not in HEAD_MODES:
            raise ValueError(f"head must be one of {HEAD_MODES}; got {self.head!r}")
        self._check(X, reset=True)
        self.feature_names_out_ = np.asarray(pose_feature_names(self.head, self.pairwise), dtype=object)
        return self

    def _check(self, X, reset):
        X = np.asarray(X, dtype=np.float64) if not hasattr(X, "columns") else X
        if getattr(X, "ndim", 2) == 3:
            X = np.asarray(X).reshape(len(X), -1)
        X = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", dtype=np.float64)
        if X.shape[1] != 2 * N_JOINTS:
            raise InputError(f"PoseFeatures takes {2 * N_JOINTS} columns (x, y of the {N_JOINTS} MPII joints); "
                             f"got {X.shape[1]}")
        return X

    def transform(self, X):
        """Pose features of ``X`` ((N, 32) or (N, 16, 2) pixels, missing joints NaN or (-1, -1))."""
        check_is_fitted(self)
        return self._transform_array(self._check(X, reset=False))

    def _transform_array(self, X):
        """``transform`` of checked (N, 32) float64 poses (the lean scorer's entry, :mod:`emotify_ml.actions.lean`)."""
        feats = pose_features(X, self.head, self.pairwise)
        if self.fill_value is not None:
            feats = np.where(np.isnan(feats), float(self.fill_value), feats)
        return feats

    def get_feature_names_out(self, input_features=None):
        """Feature names: ``r_ankle_x``, ``bone_r_ankle-r_knee_dx``, ``angle_..._cos``, ``dist_...``, ``missing_...``."""
        check_is_fitted(self)
        return self.feature_names_out_.copy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
