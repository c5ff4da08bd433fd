"""Metrics shared by every experiment: accuracy, macro-F1, top-k, calibration, per-class scores."""

from __future__ import annotations

import numpy as np


def full_proba(estimator, X, n_classes: int) -> np.ndarray:
    """``predict_proba`` with a column for every class index 0..n_classes-1, also those absent from training."""
    return full_columns(estimator.predict_proba(X), estimator.classes_, n_classes)


def full_columns(proba, classes, n_classes: int) -> np.ndarray:
    """Probabilities whose columns are the class indices ``classes`` spread over 0..n_classes-1 (absent ones 0)."""
    proba = np.asarray(proba, dtype=np.float64)
    classes = np.asarray(classes).astype(int)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    full = np.zeros((len(proba), n_classes))
    full[:, classes] = proba
    return full


def expected_calibration_error(y_true, proba, n_bins: int = 15) -> float:
    """ECE of the top-1 confidence: the bin-weighted gap between confidence and accuracy."""
    proba = np.asarray(proba)
    conf = proba.max(1)
    correct = proba.argmax(1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def top_k_accuracy(y_true, proba, k: int) -> float:
    """Share of samples whose true class is among the ``k`` most probable."""
    top = np.argsort(-np.asarray(proba), axis=1)[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1)))


def evaluate(y_true, proba, class_names) -> dict:
    """All metrics of one split.

    Parameters
    ----------
    y_true : (N,) int class indices
    proba : (N, K) probabilities, columns in ``class_names`` order
    class_names : sequence of K names

    Returns
    -------
    dict with scalar metrics (``accuracy``, ``macro_f1``, ``top3_accuracy``, ``ece``,
    ``brier``, ``f1_<class>``, ``precision_<class>``, ``recall_<class>``) and, under
    ``confusion_matrix``, the K x K counts (rows true, columns predicted).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.arange(len(class_names))
    pred = proba.argmax(1)
    p, r, f, _ = precision_recall_fscore_support(y_true, pred, labels=labels, zero_division=0)
    onehot = np.eye(len(class_names))[y_true]
    out = {
        "accuracy": float(accuracy_score(y_true, pred)),
        "macro_f1": float(f1_score(y_true, pred, labels=labels, average="macro", zero_division=0)),
        "top3_accuracy": top_k_accuracy(y_true, proba, 3),
        "ece": expected_calibration_error(y_true, proba),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
        "n": int(len(y_true)),
    }
    for name, pi, ri, fi in zip(class_names, p, r, f):
        key = str(name).replace(" ", "_").replace("/", "_")
        out[f"precision_{key}"], out[f"recall_{key}"], out[f"f1_{key}"] = float(pi), float(ri), float(fi)
    out["confusion_matrix"] = confusion_matrix(y_true, pred, labels=labels).tolist()
    return out


SUMMARY_METRICS: tuple[str, ...] = ("accuracy", "top3_accuracy", "macro_f1", "ece", "brier")
"""The scalar metrics of :func:`evaluate` that reports and baselines show."""


def baseline_probabilities(y_train, n_classes: int) -> dict[str, np.ndarray]:
    """The two reference predictors every model is compared with, as one probability row each.

    ``majority``: all mass on the most frequent training class; ``prior``: the training
    class frequencies (the best calibrated guess that ignores the input).
    """
    prior = np.bincount(np.asarray(y_train, dtype=int), minlength=n_classes) / max(len(y_train), 1)
    return {"majority": np.eye(n_classes)[np.argmax(prior)], "prior": prior}


def scalar_metrics(metrics: dict, prefix: str) -> dict[str, float]:
    """The scalar entries of :func:`evaluate`'s result, keyed ``<prefix>_<name>``."""
    return {f"{prefix}_{k}": float(v) for k, v in metrics.items() if np.isscalar(v)}


def confusion_matrix_figure(cm, class_names, title: str = ""):
    """A row-normalised confusion matrix as a matplotlib Figure (counts in each cell)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = max(5.0, 0.55 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(class_names) <= 12:
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{cm[i, j]}\n{norm[i, j]:.0%}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title)
    fig.tight_layout()
    return fig
