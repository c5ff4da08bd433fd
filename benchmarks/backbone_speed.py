"""Which backbone is fast enough: candidate nets as int8 LiteRT graphs against the fer peer, one run.

Speed does not depend on the weights, so each candidate is built untrained (``build_backbone`` with
its ``model`` settings), cut at the embedding as ``pipelines.export`` cuts it, converted to the
shipped int8 (dynamic) graph and run by the product's runner (``LiteRTGraph``). Rows: multiply-adds
and parameters a face, the graph's size, and faces per CPU-second with one thread, batches of 8
(best of 3 passes), as ``benchmarks/runtime_choice.py`` measures, and the live budget of issue 13
as the product spends it: one face's six views (a batch of 6) through a two-thread graph, the
median wall-clock milliseconds of 200 calls (run it with the machine otherwise idle). The fer
peer's graph (``../shared/models/fer_peer``, one face per ``invoke()`` on its ready 64x64 input) is
timed in the same run on the same faces. ``separable`` rows are depthwise-separable nets of the same widths
(Xception-style blocks, built here only), measured to see whether fewer multiply-adds buy speed in
this runtime.

    nice -n 10 python benchmarks/backbone_speed.py      # writes benchmarks/results/backbone_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

CANDIDATES = {
    "vgg (experiments/backbone/vgg.yaml, the teacher)": {"widths": [32, 64, 128, 256], "convs_per_block": [2, 2, 3, 3]},
    "vgg_small (experiments/backbone/vgg_small.yaml, shipped)": {"widths": [16, 32, 96, 192],
                                                                 "convs_per_block": [1, 2, 2, 2]},
    "resnet (experiments/backbone/resnet.yaml)": {"widths": [32, 64, 128, 256], "convs_per_block": [2, 4, 4, 2],
                                                  "residual": True},
    "resnet + squeeze-excite (r=4)": {"widths": [32, 64, 128, 256], "convs_per_block": [2, 4, 4, 2],
                                      "residual": True, "squeeze_excite": 4},
    "vgg 16-32-64-128, 1-2-2-2": {"widths": [16, 32, 64, 128], "convs_per_block": [1, 2, 2, 2]},
    "vgg 24-48-96-192, 1-2-2-2": {"widths": [24, 48, 96, 192], "convs_per_block": [1, 2, 2, 2]},
    "vgg 32-64-128-256, 1-1-2-2": {"widths": [32, 64, 128, 256], "convs_per_block": [1, 1, 2, 2]},
    "separable 48-96-192-256, 2-2-2-2": {"separable": True, "widths": [48, 96, 192, 256],
                                         "convs_per_block": [2, 2, 2, 2]},
    "separable 32-64-128-256, 2-2-2-2": {"separable": True, "widths": [32, 64, 128, 256],
                                         "convs_per_block": [2, 2, 2, 2]},
}


def separable_backbone(*, widths, convs_per_block, embedding_dim=256):
    """A depthwise-separable net: a 3x3 stem, then blocks of separable conv-BN-ReLU with a 1x1 stride-2 shortcut."""
    import keras
    from keras import layers

    inputs = keras.Input((48, 48, 1))
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    bn_relu = lambda conv, x: layers.ReLU()(layers.BatchNormalization()(conv(x)))  # noqa: E731
    x = bn_relu(layers.Conv2D(widths[0] // 2, 3, padding="same", use_bias=False), x)
    for b, (width, n) in enumerate(zip(widths, convs_per_block)):
        last, shortcut = b == len(widths) - 1, x
        for _ in range(n):
            x = bn_relu(layers.SeparableConv2D(width, 3, padding="same", use_bias=False), x)
        if not last:
            x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        shortcut = layers.Conv2D(width, 1, strides=1 if last else 2, padding="same", use_bias=False)(shortcut)
        x = layers.Add()([x, layers.BatchNormalization()(shortcut)])
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(embedding_dim, activation="relu", name="embedding")(x)
    return keras.Model(inputs, layers.Dense(7, activation="softmax")(x))


def median_ms(call, x, *, calls=200) -> float:
    """Median wall-clock milliseconds of ``call(x)`` over ``calls`` calls, after 10 unmeasured ones."""
    for _ in range(10):
        call(x)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def multiply_adds(net) -> int:
    """Multiply-adds of one face through the convolutions and dense layers."""
    total = 0
    for layer in net.layers:
        kind = type(layer).__name__
        shape = layer.output.shape
        pixels = int(np.prod(shape[1:3])) if len(shape) == 4 else 1
        if kind == "Conv2D":
            total += pixels * int(np.prod(layer.kernel.shape))
        elif kind == "SeparableConv2D":
            total += pixels * (int(np.prod(layer.depthwise_kernel.shape)) + int(np.prod(layer.pointwise_kernel.shape)))
        elif kind == "Dense":
            total += int(np.prod(layer.kernel.shape))
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=512, help="faces timed per pass")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "backbone_speed.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from fer_peer import PEER_NAME, load_peer, peer_input, peer_model_path
    from runtime_choice import cpu_speed

    from emotify_ml.backbones.cnn import EMBEDDING_LAYER, build_backbone
    from emotify_ml.runtime.compiled import LiteRTGraph
    from emotify_ml.runtime.export import convert

    faces = np.random.default_rng(0).integers(0, 256, (args.faces, 48, 48), dtype=np.uint8)
    x = faces[..., None].astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory(prefix="emotify-backbone-speed-") as tmp:
        for k, (name, settings) in enumerate(CANDIDATES.items()):
            settings = dict(settings)
            net = separable_backbone(**settings) if settings.pop("separable", False) else build_backbone(**settings)
            graph = keras.Model(net.inputs, {"embedding": net.get_layer(EMBEDDING_LAYER).output})
            flatbuffer = convert(graph, "int8")
            path = Path(tmp) / f"{k}.tflite"
            path.write_bytes(flatbuffer)
            runner = LiteRTGraph(path, num_threads=1, batch_size=8)  # as the product runs a graph
            embed = lambda batch, g=runner: g(batch, ["embedding"])  # noqa: E731
            two = LiteRTGraph(path, num_threads=2, batch_size=6)
            rows.append({"model": name, "multiply_adds_m": multiply_adds(net) / 1e6,
                         "params_m": net.count_params() / 1e6, "int8_bytes": len(flatbuffer),
                         "faces_per_cpu_s_1_thread": cpu_speed(embed, x, n=len(x)),
                         "six_views_ms_2_threads": median_ms(lambda batch, g=two: g(batch, ["embedding"]), x[:6])})
            print(f"  {name}: {rows[-1]['faces_per_cpu_s_1_thread']:.0f} faces per CPU-s", flush=True)
    if peer_model_path() is not None:  # its graph only, on its ready (64, 64) input, one face per invoke()
        def peer_graph(threads):
            it = load_peer(num_threads=threads).interpreter
            slot = it.get_input_details()[0]["index"]

            def run(batch):
                for i in range(len(batch)):
                    it.set_tensor(slot, batch[i : i + 1])
                    it.invoke()

            return run

        ready = peer_input(faces)
        rows.append({"model": PEER_NAME, "multiply_adds_m": None, "params_m": None,
                     "int8_bytes": peer_model_path().stat().st_size,
                     "faces_per_cpu_s_1_thread": cpu_speed(peer_graph(1), ready, n=len(faces)),
                     "six_views_ms_2_threads": median_ms(peer_graph(2), ready[:6])})
    print("| model | multiply-adds (M) | parameters (M) | int8 graph | faces per CPU-second (1 thread) "
          "| six views of a face, 2 threads (ms) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        macs = "" if r["multiply_adds_m"] is None else f"{r['multiply_adds_m']:.0f}"
        params = "" if r["params_m"] is None else f"{r['params_m']:.2f}"
        print(f"| {r['model']} | {macs} | {params} | {r['int8_bytes'] / 1e6:.2f} MB "
              f"| {r['faces_per_cpu_s_1_thread']:,.0f} | {r['six_views_ms_2_threads']:.2f} |")
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_average_at_start": os.getloadavg(),
              "faces": len(faces), "batch": 8, "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
