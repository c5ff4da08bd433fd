"""Fit, evaluate and log one experiment: the library side of ``python -m pipelines.run``.

Takes plain objects (a Pipeline, a :class:`Splits`) and logs to the active MLflow
run. Model choice uses the validation split only; the test split is reported,
never used to choose.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from emotify_ml.evaluation import (SUMMARY_METRICS, baseline_probabilities, confusion_matrix_figure, evaluate,
                                  full_proba, scalar_metrics)

log = logging.getLogger(__name__)


@dataclass
class Splits:
    """Train / validation / test arrays of one task, with class names and the data's identity.

    Validation may be empty for a final refit on train + validation (the model chosen
    beforehand); then the runner reports test only.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    identity: dict = field(default_factory=dict)

    def __post_init__(self):
        if len(self.y_train) == 0:
            raise ValueError(f"the train split is empty; the data set needs training samples "
                             f"(identity: {self.identity})")
        if len(self.y_val) == 0 and len(self.y_test) == 0:
            raise ValueError("the val and test splits are both empty; the data set needs samples to evaluate on, "
                             f"validation (for model choice) or test (identity: {self.identity})")


def measure_speed(predict_proba, X, *, batch: int = 256, singles: int = 50) -> dict[str, float]:
    """Throughput at ``batch`` and latency at batch 1 of a scoring function (after a warm-up call)."""
    if len(X) == 0:
        return {}
    predict_proba(X[:1])
    reps = int(np.ceil(batch / len(X)))
    big = np.concatenate([X] * reps)[:batch] if reps > 1 else X[:batch]
    t0 = time.perf_counter()
    predict_proba(big)
    per_s = len(big) / (time.perf_counter() - t0)
    times = []
    for i in range(min(singles, len(X))):
        t0 = time.perf_counter()
        predict_proba(X[i : i + 1])
        times.append(time.perf_counter() - t0)
    return {"items_per_s_batch": float(per_s), "ms_per_item_batch1": float(1000 * np.median(times))}


def run_experiment(pipeline, splits: Splits, *, model_logger=None, input_example_size: int = 2) -> dict:
    """Fit ``pipeline`` on train, evaluate on validation and test, and log everything to the active MLflow run.

    Logged: ``train_seconds``, ``val_*`` and ``test_*`` metrics (accuracy, macro-F1,
    top-3, ECE, Brier, per class; and the same for a majority-class and a
    class-prior baseline, ``<split>_baseline_<name>_*``), speed (items/s at batch 256, ms at batch 1),
    confusion-matrix PNGs, classification reports, ``metrics.json``, and the fitted
    pipeline through ``model_logger(pipeline, input_example=...)``.

    Returns the flat metrics dict.
    """
    import mlflow
    from sklearn.metrics import classification_report

    names = list(splits.class_names)
    log.info("fitting on %d training samples", len(splits.y_train))
    t0 = time.perf_counter()
    pipeline.fit(splits.X_train, splits.y_train)
    metrics = {"train_seconds": time.perf_counter() - t0}
    log.info("fitted in %.1f s", metrics["train_seconds"])
    report = {}
    baselines = baseline_probabilities(splits.y_train, len(names))
    for split, X, y in (("val", splits.X_val, splits.y_val), ("test", splits.X_test, splits.y_test)):
        if len(y) == 0:
            continue
        t0 = time.perf_counter()
        proba = full_proba(pipeline, X, len(names))
        result = evaluate(y, proba, names)
        metrics.update(scalar_metrics(result, split))
        metrics[f"{split}_predict_seconds"] = time.perf_counter() - t0
        report[split] = result
        for baseline, p in baselines.items():
            base = evaluate(y, np.tile(p, (len(y), 1)), names)
            metrics.update({f"{split}_baseline_{baseline}_{k}": base[k]
                            for k in SUMMARY_METRICS})
        fig = confusion_matrix_figure(result["confusion_matrix"], names,
                                      f"{split}: accuracy {result['accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}")
        mlflow.log_figure(fig, f"plots/confusion_{split}.png")
        import matplotlib.pyplot as plt

        plt.close(fig)
        mlflow.log_text(classification_report(y, proba.argmax(1), labels=range(len(names)), target_names=names,
                                              digits=4, zero_division=0), f"reports/classification_{split}.txt")
        log.info("%s: accuracy %.4f, macro-F1 %.4f", split, result["accuracy"], result["macro_f1"])
    rows = splits.X_val if len(splits.X_val) else splits.X_train  # no validation split: a final refit on train+val
    speed = measure_speed(lambda X: pipeline.predict_proba(X), rows)
    metrics.update(speed)
    mlflow.log_metrics(metrics)
    mlflow.log_dict(report, "metrics.json")
    if model_logger is not None:
        model_logger(pipeline, input_example=rows[:input_example_size])
    return metrics

