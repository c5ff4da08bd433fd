"""Per-face tracking across frames by box overlap (IoU), so each face keeps an id and its own smoothing."""

from __future__ import annotations

import numpy as np

from emotify_ml.scoring.options import TrackingOptions

_DEFAULT = TrackingOptions()


def iou_matrix(a, b) -> np.ndarray:
    """Intersection over union of every box of ``a`` (M, 4) with every box of ``b`` (N, 4), ``x, y, w, h``.

    Examples
    --------
    >>> iou_matrix([[0, 0, 10, 10]], [[5, 0, 10, 10], [20, 20, 5, 5]]).round(3)
    array([[0.333, 0.   ]])
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    inter = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None) * \
        np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    union = (a[:, 2:3] * a[:, 3:4]) + (b[:, 2] * b[:, 3]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def match_boxes(track_boxes, boxes, iou_threshold: float, first=None) -> np.ndarray:
    """The track each box continues (-1: none): greedy one-to-one matching, most-overlapping pairs first.

    A pair needs an IoU of at least ``iou_threshold``; each track and each box is matched at
    most once. With ``first`` (a boolean mask over ``boxes``), those boxes are matched first and
    the others only to the tracks they left (ByteTrack's two passes: confident faces, then faint ones).

    Examples
    --------
    >>> match_boxes([[0, 0, 10, 10]], [[1, 0, 10, 10], [0, 1, 10, 10]], 0.3, first=[False, True]).tolist()
    [-1, 0]
    """
    track_boxes = np.asarray(track_boxes, np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    owner = np.full(len(boxes), -1, np.int64)
    if not (len(boxes) and len(track_boxes)):
        return owner
    overlap = iou_matrix(track_boxes, boxes)
    taken = np.zeros(len(track_boxes), bool)
    passes = [np.ones(len(boxes), bool)] if first is None else [np.asarray(first, bool), ~np.asarray(first, bool)]
    for allowed in passes:
        for flat in np.argsort(-np.where(allowed[None, :], overlap, -1.0), axis=None, kind="stable"):
            t, k = np.unravel_index(flat, overlap.shape)
            if not allowed[k] or overlap[t, k] < iou_threshold:
                break
            if taken[t] or owner[k] >= 0:
                continue
            taken[t] = True
            owner[k] = t
    return owner


class IoUTracker:
    """Greedy IoU matching of each frame's boxes to the tracks of earlier frames.

    A box takes the id of the unmatched track it overlaps most (IoU at least
    ``iou_threshold``); other boxes start new tracks. A track unseen for more than
    ``max_missed`` frames is dropped, and its id is never reused.

    Parameters
    ----------
    iou_threshold : float, default=0.3
        Least overlap for a box to continue a track.
    max_missed : int, default=10
        Frames a track survives without a matching box (a face briefly missed keeps its id
        and its smoothed probabilities).

    Examples
    --------
    >>> tracker = IoUTracker()
    >>> tracker.update([[10, 10, 50, 50], [200, 10, 50, 50]]).tolist()
    [1, 2]
    >>> tracker.update([[204, 12, 50, 50]]).tolist()
    [2]
    """

    def __init__(self, *, iou_threshold: float = _DEFAULT.iou_threshold, max_missed: int = _DEFAULT.max_missed):
        if not 0.0 < float(iou_threshold) <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1]; got {iou_threshold!r}")
        if int(max_missed) < 0:
            raise ValueError(f"max_missed must be >= 0; got {max_missed!r}")
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.reset()

    def reset(self) -> None:
        """Forget every track (ids keep increasing)."""
        self._ids = np.zeros(0, np.int64)
        self._boxes = np.zeros((0, 4), np.float64)
        self._missed = np.zeros(0, np.int64)
        self.dropped: list[int] = []
        if not hasattr(self, "_next_id"):
            self._next_id = 1

    @property
    def active_ids(self) -> list[int]:
        """Ids of the tracks alive now."""
        return self._ids.tolist()

    @property
    def boxes(self) -> np.ndarray:
        """(T, 4) last box of each track alive now (a copy), in the order of :attr:`active_ids`."""
        return self._boxes.copy()

    @property
    def missed_ids(self) -> list[int]:
        """Ids of the tracks alive now that no box of the last update matched (a face lost, for now)."""
        return self._ids[self._missed > 0].tolist()

    def update(self, boxes, first=None) -> np.ndarray:
        """Assign a track id to each box of the new frame.

        Parameters
        ----------
        boxes : (K, 4) array-like
            This frame's boxes, ``x, y, w, h``.
        first : (K,) bool, optional
            Boxes matched to tracks before the others (the faces at the detector's score
            threshold; see :func:`match_boxes`). None: all boxes alike.

        Returns
        -------
        (K,) int64
            The track id of each box, in the order of ``boxes``. The ids of tracks dropped in
            this update are in :attr:`dropped`.
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        ids = np.full(len(boxes), -1, np.int64)
        matched = np.zeros(len(self._ids), bool)
        owner = match_boxes(self._boxes, boxes, self.iou_threshold, first=first)
        for k in np.flatnonzero(owner >= 0):
            t = owner[k]
            matched[t] = True
            ids[k] = self._ids[t]
            self._boxes[t] = boxes[k]
            self._missed[t] = 0
        self._missed[~matched] += 1
        keep = self._missed <= self.max_missed
        self.dropped = self._ids[~keep].tolist()
        new = ids < 0
        ids[new] = np.arange(self._next_id, self._next_id + int(new.sum()))
        self._next_id += int(new.sum())
        self._ids = np.concatenate([self._ids[keep], ids[new]])
        self._boxes = np.concatenate([self._boxes[keep], boxes[new]])
        self._missed = np.concatenate([self._missed[keep], np.zeros(int(new.sum()), np.int64)])
        return ids
