"""Why LiteRT and dynamic int8: the shipped backbone in each runtime and quantization, on FER-2013 PrivateTest.

Rows: LiteRT float32 and int8 (the shipped ``artifacts/compiled`` graphs: int8 is dynamic, int8
weights and activations quantized per face at run time), LiteRT static int8 (full integer,
activation ranges calibrated on 400 training faces; compiled here into a temporary copy), and,
when ``onnxruntime`` and ``tf2onnx`` are installed, ONNX Runtime float32 (the float32 graph
converted by ``tf2onnx.convert.from_tflite``) and int8 (``quantize_dynamic``).

Each row: faces per CPU-second with one thread (batches of 8, best of 3 passes; CPU time is
what a loaded shared machine distorts least), and label agreement and accuracy of the full
model (graph + the shipped head, the same NumPy head for every row) against the float32 graph,
which agrees with the Keras pipeline on 100 % of PrivateTest (see the manifest).

    nice -n 10 python benchmarks/runtime_choice.py       # writes benchmarks/results/runtimes.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHIPPED = REPO / "emotify_ml" / "models" / "shipped" / "emotion"
SHARED_FER = REPO.parent / "shared" / "data" / "fer2013"


def cpu_speed(embed, x, *, batch=8, n=512, passes=3) -> float:
    """Faces per CPU-second of ``embed`` over ``n`` faces in batches of ``batch`` (best of ``passes``)."""
    x = x[:n]
    embed(x[:batch])
    best = 0.0
    for _ in range(passes):
        t = time.process_time()
        for i in range(0, len(x), batch):
            embed(x[i : i + batch])
        best = max(best, len(x) / (time.process_time() - t))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="FER-2013 root (default: ../shared/data/fer2013, else the sample)")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "runtimes.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from emotify_ml.data.fer2013 import load_fer2013
    from emotify_ml.labels import TEST
    from emotify_ml.runtime import compiled_dir, load_compiled, read_manifest
    from emotify_ml.paths import sample_data_dir
    from emotify_ml.runtime.export import compile_model

    root = Path(args.data_root) if args.data_root else (SHARED_FER if SHARED_FER.is_dir() else sample_data_dir())
    test = load_fer2013(root).split(TEST)
    faces, labels = test.images, test.labels
    x = faces[..., None].astype(np.float32)
    head = load_compiled(SHIPPED, "float32", num_threads=1)
    reference = head.predict_proba(faces).argmax(1)
    rows = []

    def add(name, embed):
        pred = head.classify(np.concatenate([embed(x[i : i + 256]) for i in range(0, len(x), 256)])).argmax(1)
        rows.append({"runtime": name, "faces_per_cpu_s_1_thread": cpu_speed(embed, x),
                     "label_agreement_with_float32": float(np.mean(pred == reference)),
                     "accuracy": float(np.mean(pred == labels)), "n": int(len(x))})
        print(f"  {name}: {rows[-1]['faces_per_cpu_s_1_thread']:.0f} faces per CPU-s, "
              f"agreement {rows[-1]['label_agreement_with_float32']:.4f}", flush=True)

    for variant in ("float32", "int8"):
        graph = load_compiled(SHIPPED, variant, num_threads=1).graph
        add(f"LiteRT {variant}" + (" (dynamic)" if variant == "int8" else ""),
            lambda b, g=graph: g(b, ["embedding"])["embedding"])
    with tempfile.TemporaryDirectory() as tmp:
        static = Path(tmp) / "model"
        shutil.copytree(SHIPPED, static, ignore=shutil.ignore_patterns("compiled"))
        compile_model(static, variants=["int8"], quantization="static", data_root=root, parity_sets={})
        graph = load_compiled(static, "int8", num_threads=1).graph
        add("LiteRT int8 (static, 400 training faces)", lambda b, g=graph: g(b, ["embedding"])["embedding"])
        try:
            import onnxruntime as ort
            import tf2onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic
        except ImportError as exc:
            print(f"  ONNX Runtime not measured: {exc}")
            ort = None
        if ort is not None:
            f32 = Path(tmp) / "f32.onnx"
            tf2onnx.convert.from_tflite(str(compiled_dir(SHIPPED) / read_manifest(SHIPPED)["variants"]["float32"]["file"]),
                                        output_path=str(f32))
            quantize_dynamic(str(f32), str(Path(tmp) / "int8.onnx"), weight_type=QuantType.QInt8)
            for name, path in (("ONNX Runtime float32", f32), ("ONNX Runtime int8 (dynamic)", Path(tmp) / "int8.onnx")):
                options = ort.SessionOptions()
                options.intra_op_num_threads = options.inter_op_num_threads = 1
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                feed = session.get_inputs()[0].name
                add(name, lambda b, s=session, f=feed: s.run(None, {f: b})[0])
    versions = {}
    from importlib import metadata

    for dist in ("ai-edge-litert", "onnxruntime", "tf2onnx", "tensorflow-cpu"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    result = {"data": {"root": str(root), "split": TEST, "n": int(len(x))}, "versions": versions,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    print("| runtime | faces per CPU-second (1 thread) | label agreement with float32 | accuracy |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['runtime']} | {r['faces_per_cpu_s_1_thread']:,.0f} | {100 * r['label_agreement_with_float32']:.2f} % "
              f"| {100 * r['accuracy']:.2f} % |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
