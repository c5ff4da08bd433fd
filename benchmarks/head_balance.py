"""Rare classes with the existing head: post-hoc logit adjustment swept on validation, chosen by the written rule.

The model's probabilities are computed once per set; ``p'(c | x) ∝ p(c | x) / prior(c) ** tau``
(:class:`emotify_ml.pipeline.LogitAdjusted`, the prior of FER-2013's training split) is then applied
for each ``tau``. ``tau = 0`` is the model as it is; a head fitted with ``classifier.logit_adjust=tau``
on the same data scores exactly like the row of that ``tau`` (same SVM, same calibration, same seed).

Sets: PublicTest (validation: the 48x48 files as crops), muxspace_dev (validation: the product path,
:func:`emotify_ml.photo_evaluation.score_photos`) and PrivateTest (reported, never used to choose).

Model-choice rule (docs/accuracy.md): **score = (PublicTest accuracy + muxspace_dev macro-F1) / 2**;
a candidate replaces the current model only when its score is higher by more than 0.005, within the
live budget (embed + classify <= 5 ms a face).

    python benchmarks/head_balance.py [--model <uri or folder>] [--runtime keras] [--taus 0 0.25 0.5 0.75 1]

Prints a table and writes ``benchmarks/results/head_balance.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared"


def adjust(proba: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """``proba / prior ** tau``, rows renormalised (what :class:`emotify_ml.pipeline.LogitAdjusted` computes)."""
    out = np.asarray(proba, np.float64) / np.asarray(prior, np.float64) ** float(tau)
    return out / out.sum(axis=1, keepdims=True)


def rule(public_accuracy: float, muxspace_macro_f1: float) -> float:
    """The written model-choice rule: the mean of PublicTest accuracy and muxspace_dev macro-F1."""
    return (public_accuracy + muxspace_macro_f1) / 2.0


RULE_MARGIN = 0.005
"""A candidate replaces the current model (``tau = 0``) only when it beats it by more than this on the rule."""


def choose(rows: list[dict]) -> dict:
    """The row the rule picks: the best score, if it beats the current model's (the first row) by :data:`RULE_MARGIN`."""
    best = max(rows, key=lambda r: r["rule"])
    return best if best["rule"] > rows[0]["rule"] + RULE_MARGIN else rows[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--runtime", default="keras")
    parser.add_argument("--taus", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--fer-root", default=str(SHARED / "data" / "fer2013"))
    parser.add_argument("--photos", default=str(SHARED / "data" / "muxspace_dev"))
    parser.add_argument("--out", default=str(RESULTS / "head_balance.json"))
    args = parser.parse_args(argv)

    from accuracy_benchmark import metrics, write_json

    from emotify_ml.data import load_fer2013
    from emotify_ml.data.photos import load_photos
    from emotify_ml.labels import EMOTIONS, TEST, TRAIN, VALIDATION
    from emotify_ml.models import load_emotion_model
    from emotify_ml.photo_evaluation import score_photos

    model = load_emotion_model(args.model, runtime=args.runtime)
    data = load_fer2013(args.fer_root)
    prior = np.bincount(data.split(TRAIN).labels, minlength=len(EMOTIONS)) / len(data.split(TRAIN))
    sets = {}
    for name, usage in (("publictest", VALIDATION), ("privatetest", TEST)):
        split = data.split(usage)
        sets[name] = (split.labels, model.predict_proba(split.images))
    scores = score_photos(load_photos(args.photos), model)
    sets["muxspace_dev"] = (scores.photos.labels[scores.found], scores.proba[scores.found])

    rows = []
    for tau in args.taus:
        row = {"tau": tau}
        for name, (y, proba) in sets.items():
            row[name] = metrics(y, adjust(proba, prior, tau))
        row["rule"] = rule(row["publictest"]["accuracy"], row["muxspace_dev"]["macro_f1"])
        rows.append(row)
    best = choose(rows)
    cols = [("publictest", "accuracy"), ("publictest", "macro_f1"), ("muxspace_dev", "accuracy"),
            ("muxspace_dev", "macro_f1"), ("muxspace_dev", "recall_disgust"), ("muxspace_dev", "recall_surprise"),
            ("muxspace_dev", "neutral_as_angry"), ("privatetest", "accuracy"), ("privatetest", "macro_f1")]
    print(f"model {model.source} ({model.runtime}); prior {np.round(prior, 3).tolist()}; "
          f"muxspace_dev: {int(scores.found.sum())} faces found of {len(scores.found)} photos\n")
    print("| tau | rule | " + " | ".join(f"{s} {m}" for s, m in cols) + " |\n|---:|---:|" + "---:|" * len(cols))
    for r in rows:
        mark = " **chosen**" if r is best else ""
        print(f"| {r['tau']:g}{mark} | {r['rule']:.4f} | " + " | ".join(f"{r[s][m]:.3f}" for s, m in cols) + " |")
    write_json({"model": str(model.source), "runtime": model.runtime, "prior": prior.tolist(),
                "rule": "(PublicTest accuracy + muxspace_dev macro-F1) / 2, replacing tau=0 only when higher by > 0.005",
                "chosen_tau": best["tau"], "rows": rows}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
