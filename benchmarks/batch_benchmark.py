"""Batch-scoring benchmark: faces/s of ``engine=local`` against ``engine=spark`` (``local[2]``), and the model-load cost.

Scores, with :func:`emotify_ml.batch.score_batch` (the code of ``python -m pipelines.score_batch``):

* the full FER-2013 test folder (7,178 48x48 crops, ``detect=never``: each image is one face);
* a generated 640x480 video (faces of the bundled sample pasted into frames, as the live
  benchmark makes it; ``detect=always``, every frame, split into ranges of ``--frames-per-item``).

Each engine writes to a fresh output folder; the Spark session is started once (its start-up
time is reported apart) and the seconds of a job include each Python worker loading the model,
whose cost is reported per worker. The two engines' rows are compared (they must be identical).

Usage::

    nice -n 10 python benchmarks/batch_benchmark.py                    # champion / shipped model, else a demo model
    python benchmarks/batch_benchmark.py --model runs:/<id>/model --fer-root ../shared/data/fer2013
    python benchmarks/batch_benchmark.py --limit 500 --json /tmp/batch.json   # a quick run

Prints a markdown table and writes JSON (default ``benchmarks/results/batch.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a source checkout without installing
sys.path.insert(0, str(REPO / "benchmarks"))


def benchmark_model(uri, workdir: Path):
    """``(model URI or folder, description)``: ``uri``, else the champion or shipped model, else the live benchmark's demo model."""
    from emotify_ml.batch import resolve_model
    from emotify_ml.exceptions import ModelNotFoundError

    try:
        resolved = resolve_model(uri)
        return resolved.uri, resolved.uri
    except ModelNotFoundError:
        if uri is not None:
            raise
    from live_benchmark import demo_model

    from emotify_ml.models import write_pyfunc

    classifier = demo_model("hog")
    path = write_pyfunc(classifier.estimator, kind="emotion", path=workdir / "demo_model")
    return str(path), classifier.source


def compare_rows(a: Path, b: Path) -> dict:
    """How two outputs compare (order aside): identical, same labels, largest probability difference."""
    import numpy as np
    import pandas as pd

    from emotify_ml.labels import EMOTIONS

    keys = ["path", "frame", "face"]
    left = pd.read_parquet(a).sort_values(keys).reset_index(drop=True)
    right = pd.read_parquet(b).sort_values(keys).reset_index(drop=True)
    same_shape = left.shape == right.shape
    diff = (float(np.nanmax(np.abs(left[list(EMOTIONS)].to_numpy() - right[list(EMOTIONS)].to_numpy()), initial=0.0))
            if same_shape else None)
    return {"identical": bool(left.equals(right)), "same_labels": bool(same_shape and left.label.equals(right.label)),
            "max_abs_proba_diff": diff}


def run_case(name, inputs, model, workdir: Path, spark, **options) -> dict:
    from emotify_ml.batch import score_batch

    result = {"case": name, "options": options}
    outputs = {}
    for engine in ("local", "spark"):
        out = workdir / f"{name}_{engine}"
        shutil.rmtree(out, ignore_errors=True)
        summary = score_batch(inputs, out, engine=engine, model=model, progress=False, session=spark,
                              say=lambda m: print(m, flush=True), **options)
        outputs[engine] = out
        result[engine] = summary.as_dict()
        print(f"{name} {engine}: {summary.faces} faces in {summary.seconds} s = {summary.faces_per_s} faces/s "
              f"{summary.extra}", flush=True)
    result["identical_rows"] = compare_rows(outputs["local"], outputs["spark"])
    return result


def table(results: dict) -> str:
    lines = ["| input | engine | faces | rows | seconds | faces/s | model load (s) |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for case in results["cases"]:
        for engine in ("local", "spark"):
            s = case[engine]
            load = s["extra"].get("model_load_s", s["extra"].get("model_load_s_per_worker"))
            label = "local (1 process)" if engine == "local" else f"spark {results['spark_master']}"
            lines.append(f"| {case['case']} | {label} | {s['faces']} | {s['rows']} | {s['seconds']} | "
                         f"{s['faces_per_s']} | {load} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="MLflow model URI or folder (default: champion, else shipped, else a demo model)")
    p.add_argument("--fer-root", default=str(REPO.parent / "shared" / "data" / "fer2013"),
                   help="FER-2013 image folders (its test/ is scored)")
    p.add_argument("--limit", type=int, help="score only the first N test images (a quick run)")
    p.add_argument("--video-faces", type=int, default=20, help="faces in the generated video (30 frames each)")
    p.add_argument("--frames-per-item", type=int, default=150, help="video frames per unit of work")
    p.add_argument("--master", default="local[2]", help="Spark master")
    p.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "batch.json"))
    args = p.parse_args(argv)

    from live_benchmark import make_clip

    from emotify_ml.batch import list_inputs, spark_session

    load_at_start = list(os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="emotify-batch-bench-"))
    try:
        model, description = benchmark_model(args.model, workdir)
        images = list_inputs(Path(args.fer_root) / "test")
        if args.limit:
            images = images[:args.limit]
        video = make_clip(workdir / "clip.avi", n_faces=args.video_faces)
        t0 = time.perf_counter()
        spark = spark_session(args.master, local_dir=workdir / "spark")
        spark_start = round(time.perf_counter() - t0, 3)
        try:
            cases = [run_case(f"FER-2013 test ({len(images)} crops, detect=never)", images, model, workdir, spark,
                              detect="never"),
                     run_case(f"640x480 video ({args.video_faces * 30} frames, detect=always)", [video], model, workdir,
                              spark, detect="always", frames_per_item=args.frames_per_item)]
        finally:
            spark.stop()
        for case, short in zip(cases, ("fer_test", "video")):
            case["short"] = short
        results = {"model": description, "model_uri": model, "spark_master": args.master,
                   "spark_session_start_s": spark_start, "cpu_count": os.cpu_count(),
                   "load_average_at_start": load_at_start, "python": platform.python_version(),
                   "platform": platform.platform(), "cases": cases}
        from importlib import metadata

        results["versions"] = {d: metadata.version(d) for d in ("pyspark", "mlflow", "opencv-python-headless",
                                                                 "scikit-learn", "pandas", "pyarrow")}
        print(table(results))
        print(f"spark session start: {spark_start} s; rows identical: "
              f"{'; '.join(str(c['identical_rows']) for c in cases)}")
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        print(f"written {args.json}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
