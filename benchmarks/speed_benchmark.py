"""Speed of Emotify's runtimes and the fer peer, side by side in one run, on FER-2013 PrivateTest crops.

Rows (the same crops, the same process, one after the other):

* Emotify ``keras``: the shipped model's fitted pipeline (TensorFlow);
* Emotify ``compiled float32`` and ``compiled int8``: its LiteRT graphs (``artifacts/compiled``, no TensorFlow);
* ``fer``: the fer package's quantized mini-Xception (``../shared/models/fer_peer``; skipped when absent),
  one face per ``invoke()`` as that package runs it.
* ``--also LABEL=FOLDER``: other compiled models (e.g. the previously shipped one), compiled int8.

Each model is called through its Python API (``emotify_ml.models.load_model(...).predict_proba``):
faces/s over all crops in batches of ``--batch`` (default 512) and the same per CPU-second of
this process (less sensitive to other processes on a shared machine), and faces/s and median
ms at batch 1 over ``--singles`` crops (after a warm-up call). The models take turns for ``--rounds``
rounds and each keeps its best round, so a burst of load from other processes does not pick
the winner. Accuracy on the crops and label agreement with the keras row are reported too.

Then, each in a fresh process (wall seconds and peak resident memory):

* start-up: ``python -m emotify_ml.live --source <one photo> --no-display --jsonl ...`` (command to
  exit after the first and only scored frame), keras (a copy of the model without its compiled
  folder), compiled (the shipped model, named, and the default model), and, with
  ``--startup-before``, the compiled model run by an older checkout;
* ``python -m pipelines.score_batch detect=never`` on the FER-2013 test folder (``--score-batch``).

Usage::

    nice -n 10 python benchmarks/speed_benchmark.py                 # writes benchmarks/results/speed.json
    python benchmarks/speed_benchmark.py --limit 500 --no-startup --json /tmp/speed.json   # quick

Prints a markdown table; the README quotes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

SHIPPED = REPO / "emotify_ml" / "models" / "shipped" / "emotion"
SHARED_FER = REPO.parent / "shared" / "data" / "fer2013"


def crops(root, limit):
    """PrivateTest crops and labels of ``root`` (default ../shared/data/fer2013, else the bundled sample)."""
    from emotify_ml.data.fer2013 import load_fer2013
    from emotify_ml.labels import TEST
    from emotify_ml.paths import sample_data_dir

    root = Path(root) if root else (SHARED_FER if SHARED_FER.is_dir() else sample_data_dir())
    data = load_fer2013(root).split(TEST)
    n = len(data) if limit is None else min(limit, len(data))
    return data.images[:n], data.labels[:n], root


def speed(predict_proba, faces, *, batch: int, singles: int) -> dict:
    """faces/s over ``faces`` in batches of ``batch``; faces/s and median ms one face at a time."""
    predict_proba(faces[:batch])  # warm-up: graph tracing, interpreter allocation
    t0, c0 = time.perf_counter(), time.process_time()
    parts = [predict_proba(faces[i : i + batch]) for i in range(0, len(faces), batch)]
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    times = []
    for i in range(min(singles, len(faces))):
        t = time.perf_counter()
        predict_proba(faces[i : i + 1])
        times.append(time.perf_counter() - t)
    return {"proba": np.concatenate(parts), "faces_per_s_batched": len(faces) / seconds,
            "faces_per_cpu_s_batched": len(faces) / cpu_seconds,
            "faces_per_s_batch1": len(times) / float(np.sum(times)), "ms_per_face_batch1": 1000 * float(np.median(times)),
            "ms_per_face_batched": 1000 * seconds / len(faces)}


def model_rows(faces, labels, *, batch, singles, rounds, also=()) -> list[dict]:
    from fer_peer import PEER_NAME, load_peer, peer_model_path

    from emotify_ml.models import load_model

    candidates = [("Emotify keras", lambda: load_model(SHIPPED, runtime="keras")),
                  ("Emotify compiled float32", lambda: load_model(SHIPPED, runtime="compiled:float32")),
                  ("Emotify compiled int8", lambda: load_model(SHIPPED, runtime="compiled:int8"))]
    candidates += [(f"{label} compiled int8", lambda m=model: load_model(m, runtime="compiled:int8"))
                   for label, model in also]
    if peer_model_path() is not None:
        candidates.append((PEER_NAME, load_peer))
    others = {name for name, _ in candidates[3:]}  # other models and the peer: no agreement with the keras row
    models, rows = [], []
    for name, load in candidates:
        t0 = time.perf_counter()
        models.append(load())
        rows.append({"model": name, "runtime": getattr(models[-1], "runtime", "litert (fer)"),
                     "load_s": time.perf_counter() - t0, "n": int(len(faces))})
    for r in range(rounds):
        for row, model in zip(rows, models):
            result = speed(model.predict_proba, faces, batch=batch, singles=singles)
            pred = result.pop("proba").argmax(1)
            row["rounds"] = row.get("rounds", []) + [result]
            row["pred"] = pred
            print(f"  round {r + 1}, {row['model']}: {result['faces_per_s_batched']:.0f} faces/s batched, "
                  f"{result['faces_per_s_batch1']:.0f} faces/s one by one", flush=True)
    reference = rows[0]["pred"]
    for row in rows:
        pred = row.pop("pred")
        row.update(max(row["rounds"], key=lambda m: m["faces_per_s_batched"]))
        row["faces_per_s_batch1"] = max(m["faces_per_s_batch1"] for m in row["rounds"])
        row["faces_per_cpu_s_batched"] = max(m["faces_per_cpu_s_batched"] for m in row["rounds"])
        row["ms_per_face_batch1"] = min(m["ms_per_face_batch1"] for m in row["rounds"])
        row["accuracy"] = float(np.mean(pred == labels))
        row["label_agreement_with_keras"] = (None if row is rows[0] or row["model"] in others
                                             else float(np.mean(pred == reference)))
    return rows


def run_measured(cmd, env=None, cwd=REPO) -> dict:
    """Wall and CPU (user + system) seconds, peak RSS (MiB) and exit code of a command in a fresh process."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode; "
               "s = time.perf_counter() - t; u = resource.getrusage(resource.RUSAGE_CHILDREN); "
               "print(s, u.ru_utime + u.ru_stime, u.ru_maxrss, rc)")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, cwd=cwd,
                         env={**os.environ, **(env or {})}, timeout=1800)
    seconds, cpu, rss_kib, rc = out.stdout.split()[-4:]
    return {"seconds": float(seconds), "cpu_seconds": float(cpu), "peak_rss_mib": int(rss_kib) / 1024,
            "exit_code": int(rc)}


def keras_copy(workdir: Path) -> Path:
    """The shipped model without its compiled folder: what scoring loaded before the compiled runtime."""
    dest = workdir / "keras_model"
    shutil.copytree(SHIPPED, dest, ignore=shutil.ignore_patterns("compiled"))
    return dest


def startup_rows(workdir: Path, before: Path | None = None) -> list[dict]:
    """Live on one photo, each in a fresh process: keras, compiled (this checkout, and ``before``, an older one)."""
    import cv2
    import skimage.data

    photo = workdir / "astronaut.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    cases = [("keras", keras_copy(workdir), REPO, None), ("compiled int8", SHIPPED, REPO, None),
             ("compiled int8, default model (looks for a champion first)", None, REPO, None)]
    if before is not None:
        commit = (before / "COMMIT").read_text().strip() if (before / "COMMIT").is_file() else str(before)
        cases.append((f"compiled int8, before the start-up work ({commit})", SHIPPED, before, {"PYTHONPATH": str(before)}))
    rows = []
    for name, model, cwd, env in cases:
        cmd = [sys.executable, "-m", "emotify_ml.live", "--source", str(photo), "--no-display",
               "--jsonl", str(workdir / "startup.jsonl")] + (["--model", str(model)] if model else [])
        run_measured(cmd, env, cwd)  # warm the file cache
        result = run_measured(cmd, env, cwd)
        rows.append({"command": "python -m emotify_ml.live <photo> --no-display", "runtime": name, **result})
        print(f"  live start-up, {name}: {result['seconds']:.2f} s ({result['cpu_seconds']:.2f} CPU s), "
              f"{result['peak_rss_mib']:.0f} MiB", flush=True)
    return rows


def score_batch_rows(workdir: Path, fer_root: Path, also=()) -> list[dict]:
    test = fer_root / "test"
    n = sum(1 for p in test.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    rows = []
    models = [("keras", workdir / "keras_model"), ("compiled int8", SHIPPED)]
    models += [(f"{label}, compiled int8", Path(model)) for label, model in also]
    for i, (name, model) in enumerate(models):
        if name == "keras" and not model.exists():  # made by the start-up rows when they ran
            model = keras_copy(workdir)
        out = workdir / f"batch_{i}"
        cmd = [sys.executable, "-m", "pipelines.score_batch", f"input={test}", f"output={out}", "detect=never",
               f"model={model}", "progress=false"]
        result = run_measured(cmd)
        if result["exit_code"] != 0:
            raise SystemExit(f"error: {' '.join(map(str, cmd))} failed (exit code {result['exit_code']})")
        rows.append({"command": "python -m pipelines.score_batch detect=never", "runtime": name, "faces": n,
                     "faces_per_s": n / result["seconds"], **result})
        print(f"  score_batch detect=never, {name}: {n / result['seconds']:.0f} faces/s "
              f"({result['seconds']:.1f} s with start-up)", flush=True)
    return rows


def table(rows) -> str:
    lines = ["| model | runtime | faces/s batched | faces per CPU-second | faces/s one by one | ms/face one by one "
             "| accuracy | agreement with keras |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        agree = "" if r["label_agreement_with_keras"] is None else f"{100 * r['label_agreement_with_keras']:.2f} %"
        lines.append(f"| {r['model']} | {r['runtime']} | {r['faces_per_s_batched']:,.0f} | "
                     f"{r['faces_per_cpu_s_batched']:,.0f} | {r['faces_per_s_batch1']:,.0f} | "
                     f"{r['ms_per_face_batch1']:.2f} | {100 * r['accuracy']:.2f} % | {agree} |")
    return "\n".join(lines)


def environment() -> dict:
    from importlib import metadata

    versions = {}
    for dist in ("ai-edge-litert", "tensorflow-cpu", "keras", "scikit-learn", "numpy", "opencv-python-headless"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return {"cores": len(os.sched_getaffinity(0)), "machine": platform.machine(), "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(), "versions": versions,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="FER-2013 root (default: ../shared/data/fer2013, else the sample)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N PrivateTest crops")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--singles", type=int, default=300, help="crops scored one at a time")
    parser.add_argument("--rounds", type=int, default=3, help="turns each model takes; its best round is kept")
    parser.add_argument("--no-startup", dest="startup", action="store_false", help="skip the live start-up runs")
    parser.add_argument("--startup-before", default=None,
                        help="an older checkout (e.g. `git archive <commit> | tar -x -C dir`, its commit in dir/COMMIT) "
                        "whose live start-up is measured too, with the same model")
    parser.add_argument("--score-batch", action=argparse.BooleanOptionalAction, default=True,
                        help="time pipelines.score_batch detect=never on the test folder (default: on with the full data)")
    parser.add_argument("--also", action="append", default=[], metavar="LABEL=FOLDER",
                        help="another compiled model folder (e.g. the previously shipped one) timed beside the "
                        "shipped model (crops, compiled int8, and score_batch); repeatable")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "speed.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from emotify_ml.runtime import has_compiled, read_manifest

    also = [tuple(item.split("=", 1)) for item in args.also]
    for item, pair in zip(args.also, also):
        if len(pair) != 2:
            raise SystemExit(f"error: --also takes LABEL=FOLDER; got {item!r}")
    also = [(label, str(Path(folder).resolve())) for label, folder in also]  # the subprocesses run in the repo
    for model in [SHIPPED] + [Path(folder) for _, folder in also]:
        if not has_compiled(model):
            raise SystemExit(f"error: {model} has no compiled artifact; run python -m pipelines.export model={model}")
    faces, labels, root = crops(args.data_root, args.limit)
    print(f"{len(faces)} PrivateTest crops from {root}", flush=True)
    result = {"environment": environment(), "data": {"root": str(root), "split": "PrivateTest", "n": int(len(faces))},
              "model": str(SHIPPED.relative_to(REPO)), "compiled": {k: read_manifest(SHIPPED)[k] for k in ("variants", "versions")},
              "batch": args.batch, "singles": args.singles, "rounds": args.rounds,
              "also": dict(also),
              "crops": model_rows(faces, labels, batch=args.batch, singles=args.singles, rounds=args.rounds, also=also)}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.startup:
            result["startup"] = startup_rows(workdir, Path(args.startup_before) if args.startup_before else None)
        if args.score_batch and (root / "test").is_dir() and args.limit is None:
            result["score_batch"] = score_batch_rows(workdir, root, also)
    print(table(result["crops"]))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
