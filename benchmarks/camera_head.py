"""Heads on camera-augmented embeddings (the backbone frozen): does the head alone learn camera faces?

The model's feature steps (faces -> backbone embedding -> scaler) embed FER-2013's training faces
and one camera-augmented copy of each (:func:`emotify_ml.backbones.camera.camera_augment`, seeded);
calibrated linear SVMs (:func:`emotify_ml.pipeline.make_svm`) are fitted on both, plain and with
class-balanced weights, and compared with the model's own head on PublicTest, muxspace_dev (the
product path's crops, as :mod:`accuracy_benchmark` takes them) and PrivateTest (reported only), by
the rule of :mod:`head_balance`.

    python benchmarks/camera_head.py [--model <uri or folder>]

About 66,000 faces are embedded (20 minutes on 2 busy cores). Prints a table and writes
``benchmarks/results/camera_head.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared"


HEAD_COLUMNS = [("publictest", "accuracy"), ("publictest", "macro_f1"), ("muxspace_dev", "accuracy"),
                ("muxspace_dev", "macro_f1"), ("muxspace_dev", "recall_disgust"), ("muxspace_dev", "recall_surprise"),
                ("muxspace_dev", "neutral_as_angry"), ("privatetest", "accuracy"), ("privatetest", "macro_f1")]
"""The columns of a heads table: (set, metric)."""


def embedder(features, batch: int = 2048):
    """``embed(faces)``: the model's feature steps (backbone embedding -> scaler) on ``faces``, ``batch`` at a time."""
    def embed(faces):
        return np.concatenate([features.transform(faces[i:i + batch]) for i in range(0, len(faces), batch)])
    return embed


def print_heads(rows: list[dict], chosen: dict) -> None:
    """Print the heads' rows (``head``, ``rule`` and the :data:`HEAD_COLUMNS`) as a table, the chosen one marked."""
    print("| head | rule | " + " | ".join(f"{s} {m}" for s, m in HEAD_COLUMNS) + " |\n|---|---:|"
          + "---:|" * len(HEAD_COLUMNS))
    for r in rows:
        print(f"| {r['head']}{' **chosen**' if r is chosen else ''} | {r['rule']:.4f} | "
              + " | ".join(f"{r[s][m]:.3f}" for s, m in HEAD_COLUMNS) + " |")


def head_parser(description: str, out_name: str) -> argparse.ArgumentParser:
    """The arguments of a heads benchmark: the model, the data, the seed and where the JSON goes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=None)
    parser.add_argument("--fer-root", default=str(SHARED / "data" / "fer2013"))
    parser.add_argument("--photos", default=str(SHARED / "data" / "muxspace_dev"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / out_name))
    return parser


def main(argv=None) -> int:
    args = head_parser(__doc__.splitlines()[0], "camera_head.json").parse_args(argv)

    from accuracy_benchmark import metrics, photo_crops, write_json
    from head_balance import choose, rule

    from emotify_ml.backbones.camera import camera_augment
    from emotify_ml.data import load_fer2013
    from emotify_ml.labels import TEST, TRAIN, VALIDATION
    from emotify_ml.models import load_emotion_model
    from emotify_ml.pipeline import make_svm

    t0 = time.perf_counter()
    model = load_emotion_model(args.model, runtime="keras")
    features, head = model.estimator[:-1], model.estimator[-1]

    embed = embedder(features)
    data = load_fer2013(args.fer_root)
    train, val, test = data.split(TRAIN), data.split(VALIDATION), data.split(TEST)
    _, mux_crops, mux_labels, counts = photo_crops(args.photos, model)
    sets = {"publictest": (embed(val.images), val.labels), "muxspace_dev": (embed(mux_crops[:, 0]), mux_labels),
            "privatetest": (embed(test.images), test.labels)}
    x_train = embed(train.images)
    x_camera = embed(camera_augment(train.images, np.random.default_rng(args.seed)))
    print(f"embedded in {time.perf_counter() - t0:.0f} s", flush=True)

    def row(name, estimator):
        r = {"head": name, **{s: metrics(y, estimator.predict_proba(x)) for s, (x, y) in sets.items()}}
        r["rule"] = rule(r["publictest"]["accuracy"], r["muxspace_dev"]["macro_f1"])
        return r

    rows = [row("the model's head", head)]
    y2 = np.r_[train.labels, train.labels]
    for name, kwargs in (("train + camera copies", {}),
                         ("train + camera copies, balanced", {"class_weight": "balanced"})):
        rows.append(row(name, make_svm(random_state=args.seed, **kwargs).fit(np.r_[x_train, x_camera], y2)))
    chosen = choose(rows)
    print_heads(rows, chosen)
    write_json({"model": str(model.source), "muxspace_dev": counts, "chosen": chosen["head"], "rows": rows}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
