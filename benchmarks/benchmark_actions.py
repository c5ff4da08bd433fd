"""Score action models on the fixed MPII test (or validation) split: top-1, top-3, macro-F1, ECE, speed, fusion.

    python benchmarks/benchmark_actions.py                                   # the shipped action model
    python benchmarks/benchmark_actions.py --model runs:/<id>/model --model emotify_ml/models/shipped/action
    python benchmarks/benchmark_actions.py --split val --model runs:/<id>/model ...   # models trained on train only

Prints markdown tables and writes JSON (``--out``, default ``benchmarks/results/actions[_val].json``):

- each model against the majority-class and class-prior baselines, on the test poses as annotated and
  with knees and ankles removed ("upper body": what a webcam at a desk sees);
- the fusion table for the first model: one emotion imposed on every pose (MPII has no
  emotion labels), for several λ, and how many top-1 labels that changes. A uniform
  emotion must leave every probability as it is.

Speed is the median ms to score one pose (the live loop's batch of 1, LightGBM on one
thread as live sets it) and poses/s for a batch of 256, as the live loop scores them
(:func:`emotify_ml.actions.lean.lean_model`) and through the fitted model's own ``predict_proba``
(``predict_proba_*`` in the JSON, with the largest difference between the two). The models are scored on the test
split of ``--data``; when that file is not the one a model was trained from (its
``provenance.json`` says which), the script stops, because the sample's rows overlap training.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# (emotion name or "uniform", λ) rows of the fusion table; λ = 0 is pose only
FUSION_ROWS = (("uniform", 0.0), ("uniform", 1.0), ("neutral", 1.0), ("happy", 1.0), ("sad", 1.0),
               ("happy", 2.0), ("sad", 2.0))
def _row(result) -> dict:
    from emotify_ml.evaluation import SUMMARY_METRICS

    return {k: float(result[k]) for k in SUMMARY_METRICS}


def _fmt(name, row) -> str:
    return (f"| {name} | {100 * row['accuracy']:.1f} % | {100 * row['top3_accuracy']:.1f} % | "
            f"{row['macro_f1']:.3f} | {row['ece']:.3f} | {row['brier']:.3f} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", help="action model URI or folder (repeatable; default: the shipped one)")
    p.add_argument("--data", default=None, help="MPII csv, e.g. ../shared/data/mpii/mpii_human_pose.csv (default: the bundled sample)")
    p.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow store for runs:/ and models:/ URIs")
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="score the test split (default) or the validation split (for models trained on train only)")
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/actions[_val].json)")
    args = p.parse_args(argv)

    from emotify_ml.actions.fusion import fuse, load_action_prior
    from emotify_ml.actions.estimators import LEG_JOINTS
    from emotify_ml.actions.lean import lean_model
    from emotify_ml.actions.threads import set_n_jobs
    from emotify_ml.models import load_action_model
    from emotify_ml.actions.pose_features import as_joints
    from emotify_ml.data.mpii import load_mpii_splits
    from emotify_ml.evaluation import baseline_probabilities, evaluate
    from emotify_ml.experiment import measure_speed
    from emotify_ml.labels import EMOTIONS

    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    splits = load_mpii_splits(args.data)
    names = list(splits.class_names)
    X, y = (splits.X_test, splits.y_test) if args.split == "test" else (splits.X_val, splits.y_val)
    seen = np.r_[splits.y_train, splits.y_val] if args.split == "test" else splits.y_train
    out = Path(args.out or REPO / "benchmarks" / "results" / f"actions{'' if args.split == 'test' else '_val'}.json")
    upper = as_joints(X)
    upper[:, list(LEG_JOINTS)] = np.nan
    upper = upper.reshape(len(X), -1)
    report = {"data": splits.identity, "split": args.split, "n": int(len(y)), "models": {}, "baselines": {},
              "fusion": []}
    # the baselines know the labels the models may have trained on (train + validation for the shipped one)
    for base, proba in baseline_probabilities(seen, len(names)).items():
        report["baselines"][base] = _row(evaluate(y, np.tile(proba, (len(y), 1)), names))

    first_proba = None
    for uri in args.model or [None]:
        model = load_action_model(uri)
        trained_on = _training_data_hash(uri)
        if trained_on and trained_on != splits.identity["sha256"]:
            print(f"benchmark_actions: error: {model.source} was trained on data with sha256 {trained_on[:12]}…, "
                  f"not {splits.identity['path']} ({splits.identity['sha256'][:12]}…); its {args.split} split "
                  "would overlap the training rows. Pass --data with the MPII csv it was trained on.", file=sys.stderr)
            return 2
        set_n_jobs(model.estimator, 1)
        lean = lean_model(model)  # as the live loop scores it
        t0 = time.perf_counter()
        proba = lean.predict_proba(X)
        seconds = time.perf_counter() - t0
        speed = measure_speed(lean.predict_proba, X[:512], batch=256, singles=200)
        own = measure_speed(model.predict_proba, X[:512], batch=256, singles=200)  # the fitted model's predict_proba
        report["models"][model.source if uri else "shipped (emotify_ml/models/shipped/action)"] = {
            **_row(evaluate(y, proba, names)), "upper_body": _row(evaluate(y, lean.predict_proba(upper), names)),
            "full_pass_seconds": seconds,
            "poses_per_s_batch256": speed["items_per_s_batch"], "ms_per_pose_batch1": speed["ms_per_item_batch1"],
            "predict_proba_poses_per_s_batch256": own["items_per_s_batch"],
            "predict_proba_ms_per_pose_batch1": own["ms_per_item_batch1"],
            "lean_max_abs_difference": float(np.abs(proba - model.predict_proba(X)).max())}
        first_proba = proba if first_proba is None else first_proba

    prior = load_action_prior()
    pose_top1 = first_proba.argmax(1)
    for emotion, lam in FUSION_ROWS:
        q = np.full(len(EMOTIONS), 1 / len(EMOTIONS)) if emotion == "uniform" else np.eye(len(EMOTIONS))[
            EMOTIONS.index(emotion)]
        fused = fuse(first_proba, np.tile(q, (len(y), 1)), prior, lam)
        report["fusion"].append({"emotion": emotion, "lambda": lam, **_row(evaluate(y, fused, names)),
                                 "top1_changed": float(np.mean(fused.argmax(1) != pose_top1)),
                                 "max_abs_change": float(np.abs(fused - first_proba).max())})

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    report["machine"] = {"cpu_cores": cores,
                         "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
                         "platform": platform.platform(), "python": platform.python_version()}
    report["date"] = time.strftime("%Y-%m-%d %H:%M:%S")

    print(f"MPII {args.split} split: {len(y)} poses ({splits.identity.get('path')})\n")
    print("| model | top-1 | top-3 | macro-F1 | ECE | Brier | ms/pose (batch 1; predict_proba) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in report["baselines"].items():
        print(_fmt(name, row) + " – |")
    for name, row in report["models"].items():
        print(_fmt(name, row) + f" {row['ms_per_pose_batch1']:.2f} ({row['predict_proba_ms_per_pose_batch1']:.2f}) |")
        print(_fmt(f"{name}, upper body only", row["upper_body"]) + " |")
    print("\nfusion (first model; the emotion is imposed on every pose):\n")
    print("| emotion | λ | top-1 | top-3 | macro-F1 | ECE | Brier | top-1 changed | largest change |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in report["fusion"]:
        print(_fmt(f"{row['emotion']} | {row['lambda']:g}", row)
              + f" {100 * row['top1_changed']:.1f} % | {row['max_abs_change']:.1e} |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nresults: {out}")
    uniform = [row for row in report["fusion"] if row["emotion"] == "uniform"]
    if any(row["max_abs_change"] > 1e-9 for row in uniform):
        print("benchmark_actions: error: a uniform emotion changed the pose probabilities", file=sys.stderr)
        return 1
    return 0


def _training_data_hash(uri) -> str | None:
    """sha256 of the data a model was trained on: from its provenance.json (shipped or exported models)
    or its MLflow run's ``dataset.sha256`` parameter; None when unknown."""
    from emotify_ml.models import KINDS

    folder = Path(uri) if uri is not None else KINDS["action"].shipped_dir
    provenance = folder / "provenance.json"
    if provenance.is_file():
        return json.loads(provenance.read_text()).get("params", {}).get("dataset.sha256")
    if str(uri).startswith("runs:/"):
        import mlflow

        return mlflow.get_run(str(uri)[len("runs:/"):].split("/")[0]).data.params.get("dataset.sha256")
    return None


if __name__ == "__main__":
    sys.exit(main())
