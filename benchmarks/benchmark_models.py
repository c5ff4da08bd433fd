"""Score emotion models on FER-2013 PrivateTest: accuracy, macro-F1, per-class F1, speed.

    python benchmarks/benchmark_models.py --model emotify_ml/models/shipped/emotion --model runs:/<id>/model
    python benchmarks/benchmark_models.py --experiment emotify --tracking-uri sqlite:///mlflow.db

Prints a markdown table and writes JSON (``--out``). Speed is measured on this
machine: faces/s scoring a batch of 256 crops, and the median ms for one crop
(embed + classify, the whole Pipeline, after a warm-up call).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emotify_ml.labels import TEST  # noqa: E402


def models_of_experiment(experiment: str, tracking_uri: str) -> list[tuple[str, str, dict]]:
    """(name, model URI, run metrics) of the newest FINISHED run per run name in an MLflow experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"error: no MLflow experiment {experiment!r} at {tracking_uri}")
    seen, out = set(), []
    for run in client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", order_by=["attributes.start_time DESC"]):
        name = run.info.run_name
        if name in seen or "val_accuracy" not in run.data.metrics:
            continue
        seen.add(name)
        out.append((name, f"runs:/{run.info.run_id}/model", run.data.metrics))
    return out


def benchmark(classifier, images, labels) -> dict:
    from emotify_ml.evaluation import evaluate
    from emotify_ml.experiment import measure_speed
    from emotify_ml.labels import EMOTIONS

    t0 = time.perf_counter()
    proba = classifier.predict_proba(images)
    seconds = time.perf_counter() - t0
    result = evaluate(labels, proba, EMOTIONS)
    speed = measure_speed(classifier.predict_proba, images[:512], batch=256, singles=100)
    return {
        "accuracy": result["accuracy"], "macro_f1": result["macro_f1"], "top3_accuracy": result["top3_accuracy"],
        "ece": result["ece"], "per_class_f1": {name: result[f"f1_{name}"] for name in EMOTIONS},
        "confusion_matrix": result["confusion_matrix"], "n": result["n"],
        "faces_per_s_batch256": speed["items_per_s_batch"], "ms_per_face_batch1": speed["ms_per_item_batch1"],
        "full_pass_seconds": seconds,
    }


def _seconds(value) -> str:
    return "" if value is None else f"{value:.0f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="MLflow model URI or model folder (repeatable)")
    parser.add_argument("--experiment", help="benchmark the newest finished run of each name in this MLflow experiment")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    default_root = REPO.parent / "shared" / "data" / "fer2013"
    parser.add_argument("--data-root", default=str(default_root) if default_root.is_dir() else None,
                        help="FER-2013 folder or csv (default: ../shared/data/fer2013, else the bundled sample)")
    parser.add_argument("--split", default=TEST)
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images (quick checks)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "models.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import mlflow

    from emotify_ml.data import load_fer2013
    from emotify_ml.models import load_emotion_model

    mlflow.set_tracking_uri(args.tracking_uri)
    targets = [(m, m, {}) for m in args.model]
    if args.experiment:
        targets += models_of_experiment(args.experiment, args.tracking_uri)
    if not targets:
        parser.error("give --model and/or --experiment")
    data = load_fer2013(args.data_root).split(args.split)
    images, labels = data.images[: args.limit], data.labels[: args.limit]

    rows = []
    for name, uri, run_metrics in targets:
        result = benchmark(load_emotion_model(uri), images, labels)
        rows.append({"name": name, "model": uri, "train_seconds": run_metrics.get("train_seconds"),
                     "val_accuracy": run_metrics.get("val_accuracy"), **result})
        print(f"{name}: accuracy {result['accuracy']:.4f}", file=sys.stderr)
    header = "| model | PrivateTest acc | macro-F1 | faces/s @256 | ms/face @1 | train s |\n|---|---:|---:|---:|---:|---:|"
    lines = [header] + [
        f"| {r['name']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['faces_per_s_batch256']:.0f} | "
        f"{r['ms_per_face_batch1']:.2f} | {_seconds(r['train_seconds'])} |"
        for r in rows]
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import platform

    out.write_text(json.dumps({"split": args.split, "data_root": args.data_root, "n": int(len(labels)),
                               "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                               "results": rows}, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
