"""Scoring variants that need no training, on validation: views, the crops' light and detail, the class prior, models.

Every variant scores the product's crops of each face in the product's views (margins 0 -/+ the spread,
each mirrored), as :class:`emotify_ml.scoring.FrameStep` scores a camera face; the product averages the
views' probabilities:

- **the views combined** by their geometric mean instead (the mean of the log-probabilities,
  renormalised), which lets a view that rules a class out count for more;
- **normalisation** of each grey crop before the model (the first model given): ``standardise`` (each
  crop's mean and standard deviation set to those of FER-2013's training faces), ``equalise``
  (``cv2.equalizeHist``) and ``clahe`` (``cv2.createCLAHE(2.0, (4, 4))``). They ask whether the web
  photos' light, not their faces, is what the model gets wrong;
- **the crops' detail**: ``sharpen`` (an unsharp mask, amount 0.6 at sigma 1, which brings the web
  photos' median :func:`detail_of` to FER-2013's) and ``soften`` (a Gaussian blur, sigma 0.8, the other
  way). They ask the same of fine detail: the web photos' crops hold less of it than FER-2013's faces;
- **the class prior** the head assumes, FER-2013's, moved toward another (:mod:`emotify_ml.scoring.prior`:
  the probabilities re-weighted by the ratio of the priors to the power ``strength``, renormalised):
  ``web``, how often each emotion occurs among faces in photos on the web, an estimate made without
  muxspace_dev, at half and full strength (full: the product's ``prior="web"``); and ``uniform``. They ask
  how much of the gap is how often each emotion occurs, not how each looks;
- **the prior estimated from the set's own faces**, with no labels (:func:`estimate_prior`: the EM of
  Saerens et al., 2002, each set on its own), at full and half strength: whether the product could learn
  where a camera points from the faces it scores, as a batch over an archive could;
- **models averaged**: with two or more ``--model``, the mean of their probabilities, next to each
  model alone (an ensemble at serving time: it costs each model's time on every crop).

Sets: PublicTest (validation: the 48x48 files, in the views of a face crop as ``views_on_crops``
cuts them), muxspace_dev (validation: each photo's biggest face through the product path) and
PrivateTest (reported, never used to choose). The rule is the written one (docs/accuracy.md,
``head_balance.rule``): (PublicTest accuracy + muxspace_dev macro-F1) / 2; a variant replaces the
product (the first row) only when higher by more than 0.005.

    python benchmarks/scoring_variants.py [--model <uri or folder> ...] [--runtime auto]

Prints a table and writes ``benchmarks/results/scoring_variants.json``.
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
NORMALISATIONS = ("none", "standardise", "equalise", "clahe", "sharpen", "soften")


def normalise(crops: np.ndarray, how: str, *, mean: float, std: float) -> np.ndarray:
    """``crops`` (..., S, S) uint8 grey, each crop normalised by ``how`` (one of :data:`NORMALISATIONS`)."""
    import cv2

    if how == "none":
        return crops
    flat = crops.reshape(-1, *crops.shape[-2:])
    if how == "standardise":
        x = flat.astype(np.float32)
        mu, sd = x.mean(axis=(1, 2), keepdims=True), x.std(axis=(1, 2), keepdims=True)
        out = np.clip((x - mu) / np.maximum(sd, 1e-3) * std + mean, 0, 255).round().astype(np.uint8)
    elif how == "equalise":
        out = np.stack([cv2.equalizeHist(c) for c in flat])
    elif how == "clahe":
        clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
        out = np.stack([clahe.apply(c) for c in flat])
    elif how == "sharpen":
        x = flat.astype(np.float32)
        soft = np.stack([cv2.GaussianBlur(c, (0, 0), 1.0) for c in x])
        out = np.clip(x + 0.6 * (x - soft), 0, 255).round().astype(np.uint8)
    elif how == "soften":
        out = np.stack([cv2.GaussianBlur(c, (0, 0), 0.8) for c in flat])
    else:
        raise ValueError(f"unknown normalisation {how!r}; expected one of {', '.join(NORMALISATIONS)}")
    return out.reshape(crops.shape)


def detail_of(crops: np.ndarray) -> np.ndarray:
    """(N,): each crop's fine detail, its mean absolute Laplacian over its standard deviation (free of its light)."""
    import cv2

    flat = np.asarray(crops, np.float32).reshape(-1, *np.shape(crops)[-2:])
    laplacian = np.stack([np.abs(cv2.Laplacian(c, cv2.CV_32F)).mean() for c in flat])
    return laplacian / np.maximum(flat.std(axis=(1, 2)), 1.0)


def geometric_mean(proba: np.ndarray) -> np.ndarray:
    """(N, 7): the views' probabilities (N, V, 7) combined by their geometric mean, rows renormalised."""
    log = np.log(np.clip(np.asarray(proba, np.float64), 1e-12, 1.0)).mean(axis=1)
    out = np.exp(log - log.max(axis=1, keepdims=True))
    return out / out.sum(axis=1, keepdims=True)


def estimate_prior(proba, source, *, iterations: int = 200, tol: float = 1e-7) -> np.ndarray:
    """(K,) the class prior of the faces behind ``proba`` (N, K), estimated from the probabilities alone.

    The EM of Saerens, Latinne and Decaestecker (2002): ``proba`` were made under the prior ``source`` (K,);
    re-weight them by the current estimate over ``source``, take the mean of the re-weighted rows as the
    new estimate, repeat until it moves less than ``tol``. Exact when the faces differ from the training
    faces only in how often each class occurs and the model is calibrated; a model that confuses one class
    for another on the new faces teaches the estimate its confusion.
    """
    proba = np.asarray(proba, np.float64)
    source = np.asarray(source, np.float64) / np.sum(source)
    prior = source
    for _ in range(iterations):
        shifted = proba * (prior / source)
        new = (shifted / shifted.sum(axis=1, keepdims=True)).mean(axis=0)
        done = np.abs(new - prior).max() < tol
        prior = new
        if done:
            break
    return prior


def light_of(crops: np.ndarray) -> dict:
    """The mean over ``crops`` (N, S, S) of each crop's mean grey level and of its standard deviation."""
    x = np.asarray(crops, np.float64)
    return {"mean": float(x.mean(axis=(1, 2)).mean()), "std": float(x.std(axis=(1, 2)).mean())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=[None],
                        help="Emotify model URIs or folders; the first is the product (default: champion, else shipped)")
    parser.add_argument("--runtime", default="auto", help="as the product scores: auto (the compiled int8 graph)")
    parser.add_argument("--fer-root", default=str(SHARED / "data" / "fer2013"))
    parser.add_argument("--photos", default=str(SHARED / "data" / "muxspace_dev"))
    parser.add_argument("--out", default=str(RESULTS / "scoring_variants.json"))
    args = parser.parse_args(argv)

    from accuracy_benchmark import fer_test_crops, mean_of_views, metrics, per_view, photo_crops, write_json
    from head_balance import RULE_MARGIN, rule

    from emotify_ml.data import load_fer2013
    from emotify_ml.labels import EMOTIONS, TEST, TRAIN, VALIDATION
    from emotify_ml.models import load_emotion_model
    from emotify_ml.scoring.prior import PRIORS, prior_weights, reweight

    t0 = time.perf_counter()
    models = {str(uri or "default"): load_emotion_model(uri, runtime=args.runtime) for uri in args.model}
    first_name, first = next(iter(models.items()))
    train = load_fer2013(args.fer_root).split(TRAIN)
    fer_train, fer_prior = train.images, np.bincount(train.labels, minlength=len(EMOTIONS))
    fer_light = light_of(fer_train)
    fer_counts = dict(zip(EMOTIONS, fer_prior.tolist()))
    shifts = {(prior, strength): prior_weights(prior, fer_counts, strength)
              for prior, strength in (("web", 0.5), ("web", 1.0), ("uniform", 1.0))}
    sets = {"publictest": fer_test_crops(args.fer_root, first, VALIDATION),
            "muxspace_dev": photo_crops(args.photos, first),
            "privatetest": fer_test_crops(args.fer_root, first, TEST)}

    proba = {}  # (variant, set) -> (N, 7)
    estimated = {}  # set -> (7,) the prior EM finds in the set's faces
    for set_name, (_, crops, _, _) in sets.items():
        views = {name: per_view(model.predict_proba, crops) for name, model in models.items()}
        product = views[first_name].mean(axis=1)
        proba[f"{first_name}, views averaged (the product)", set_name] = product
        proba[f"{first_name}, views' geometric mean", set_name] = geometric_mean(views[first_name])
        for (prior, strength), weights in shifts.items():
            proba[f"{first_name}, prior moved to {prior}, strength {strength}", set_name] = reweight(product, weights)
        estimated[set_name] = estimate_prior(product, fer_prior)
        for strength in (1.0, 0.5):
            weights = prior_weights(dict(zip(EMOTIONS, estimated[set_name])), fer_counts, strength)
            proba[f"{first_name}, prior estimated from the set's faces (EM), strength {strength}", set_name] = reweight(
                product, weights)
        for how in NORMALISATIONS[1:]:
            proba[f"{first_name}, crops normalised: {how}", set_name] = mean_of_views(
                first.predict_proba, normalise(crops, how, **fer_light))
        for name in list(models)[1:]:
            proba[f"{name}, views averaged", set_name] = views[name].mean(axis=1)
        if len(models) > 1:
            proba["the models averaged", set_name] = np.mean([v.mean(axis=1) for v in views.values()], axis=0)

    rows = []
    for variant in dict.fromkeys(v for v, _ in proba):
        row = {"variant": variant}
        for set_name, (_, _, labels, _) in sets.items():
            row[set_name] = metrics(labels, proba[variant, set_name])
        row["rule"] = rule(row["publictest"]["accuracy"], row["muxspace_dev"]["macro_f1"])
        rows.append(row)
    best = max(rows, key=lambda r: r["rule"])
    chosen = best if best["rule"] > rows[0]["rule"] + RULE_MARGIN else rows[0]

    print("\n| variant | rule | PublicTest acc. / macro-F1 | muxspace acc. / macro-F1 | muxspace disgust / surprise "
          "| neutral -> angry | PrivateTest acc. / macro-F1 |\n|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        p, m, t = r["publictest"], r["muxspace_dev"], r["privatetest"]
        print(f"| {r['variant']} | {r['rule']:.4f} | {p['accuracy']:.3f} / {p['macro_f1']:.3f} | {m['accuracy']:.3f} / "
              f"{m['macro_f1']:.3f} | {m['recall_disgust']:.2f} / {m['recall_surprise']:.2f} | "
              f"{m['neutral_as_angry']:.3f} | {t['accuracy']:.3f} / {t['macro_f1']:.3f} |")
    print(f"\nthe rule picks: {chosen['variant']}")
    write_json({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(["python", *sys.argv]),
                "models": {k: {"source": str(m.source), "runtime": m.runtime} for k, m in models.items()},
                "fer_train_light": fer_light, "fer_train_prior": fer_prior.tolist(),
                "priors": {k: dict(v) for k, v in PRIORS.items() if v is not None},
                "crops_light": {name: light_of(block[1][:, 0]) for name, block in sets.items()},
                "detail_quartiles": {name: np.percentile(detail_of(crops), [25, 50, 75]).tolist() for name, crops in
                                     [("fer_train", fer_train), *((n, b[1][:, 0]) for n, b in sets.items())]},
                "counts": {name: block[3] for name, block in sets.items()},
                "estimated_priors": {name: {"estimated": dict(zip(EMOTIONS, estimated[name].round(4).tolist())),
                                            "true": dict(zip(EMOTIONS, (np.bincount(block[2], minlength=len(EMOTIONS))
                                                                        / len(block[2])).round(4).tolist()))}
                                     for name, block in sets.items()},
                "rule": "(PublicTest accuracy + muxspace_dev macro-F1) / 2; replaces the first row only when higher "
                        f"by > {RULE_MARGIN}", "chosen": chosen["variant"], "rows": rows,
                "seconds": time.perf_counter() - t0}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
