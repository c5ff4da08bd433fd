"""A head fitted on the views the product scores (the backbone frozen): does it gain over the model's own head?

The product scores each face in six views (margins 0 -/+ the spread, each mirrored) and averages the
probabilities, but the model's head was fitted on FER-2013's training files as they are, one crop a
face. Here a calibrated linear SVM (:func:`emotify_ml.pipeline.make_svm`, as the model's) is fitted on
the model's feature steps (backbone embedding -> scaler) of **one view of each training face, drawn at
random** (seeded; one view a face keeps the calibration's folds free of a face's twins), plain and
with class-balanced weights. Every head is scored as the product scores: on the six views of each
face, probabilities averaged; on PublicTest (validation, the views of each 48x48 file), muxspace_dev
(validation, the product path's crops, as :mod:`accuracy_benchmark` takes them) and PrivateTest
(reported only), chosen by the rule of :mod:`head_balance`.

    python benchmarks/views_head.py [--model <uri or folder>]

Prints a table and writes ``benchmarks/results/views_head.json``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def one_view_each(views: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, S, S): one of each face's V views (N, V, S, S), drawn uniformly at random."""
    return views[np.arange(len(views)), rng.integers(0, views.shape[1], size=len(views))]


def main(argv=None) -> int:
    from camera_head import embedder, head_parser, print_heads

    args = head_parser(__doc__.splitlines()[0], "views_head.json").parse_args(argv)

    from accuracy_benchmark import fer_test_crops, mean_of_views, metrics, photo_crops, write_json
    from head_balance import choose, rule

    from emotify_ml.labels import TEST, TRAIN, VALIDATION
    from emotify_ml.models import load_emotion_model
    from emotify_ml.pipeline import make_svm

    t0 = time.perf_counter()
    model = load_emotion_model(args.model, runtime="keras")
    features, head = model.estimator[:-1], model.estimator[-1]

    embed = embedder(features)
    sets = {"publictest": fer_test_crops(args.fer_root, model, VALIDATION),
            "muxspace_dev": photo_crops(args.photos, model),
            "privatetest": fer_test_crops(args.fer_root, model, TEST)}
    sets = {name: (embed(crops.reshape(-1, *crops.shape[2:])).reshape(*crops.shape[:2], -1), labels)
            for name, (_, crops, labels, _) in sets.items()}  # (N, V, d) embeddings of every view
    _, train_views, train_labels, _ = fer_test_crops(args.fer_root, model, TRAIN)
    x_plain = embed(train_views[:, 0])  # the files as they are: what the model's head was fitted on
    x_view = embed(one_view_each(train_views, np.random.default_rng(args.seed)))
    print(f"embedded in {time.perf_counter() - t0:.0f} s", flush=True)

    def row(name, estimator):
        r = {"head": name}
        for s, (x, y) in sets.items():
            r[s] = metrics(y, mean_of_views(estimator.predict_proba, x))
        r["rule"] = rule(r["publictest"]["accuracy"], r["muxspace_dev"]["macro_f1"])
        return r

    rows = [row("the model's head", head),
            row("refitted here on the files (the control)", make_svm(random_state=args.seed).fit(x_plain, train_labels))]
    for name, kwargs in (("one random view a face", {}), ("one random view a face, balanced", {"class_weight": "balanced"})):
        rows.append(row(name, make_svm(random_state=args.seed, **kwargs).fit(x_view, train_labels)))
    chosen = choose(rows)
    print_heads(rows, chosen)
    write_json({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "model": str(model.source), "runtime": model.runtime,
                "seed": args.seed, "chosen": chosen["head"], "rows": rows,
                "seconds": time.perf_counter() - t0}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
