"""The backbone ablation table, from tracked runs: each step's PublicTest and muxspace_dev, chosen by the rule.

Every row is a model whose runs are already in the tracking store:

- the model's own run (``python -m pipelines.run experiment=cnn_svm features.cnn.model_path=<backbone>``):
  PublicTest (``val_*``, validation) and PrivateTest (``test_*``, reported only), or, for a model folder
  (the shipped one), the metrics of the run it came from (``provenance.json``);
- its evaluation on muxspace_dev through the product path (``python -m pipelines.evaluate
  model=runs:/<id>/model data.root=../shared/data/muxspace_dev runtime=keras``), found by the
  ``model.uri`` tag (a folder: by the run it came from); the newest finished one is used;
- for a backbone trained by ``pipelines.train_backbone``, its training run (epochs, time), found
  through ``<out_dir>/mlflow_run.json`` next to the backbone file.

The rule of :mod:`head_balance` (mean of PublicTest accuracy and muxspace_dev macro-F1, a candidate
replaces the first row only when it beats it by more than 0.005) picks the row to ship.

    python benchmarks/backbone_ablation.py --row "shipped=emotify_ml/models/shipped/emotion" \\
        --row "+12 epochs=runs:/<id>/model" --row "+camera=runs:/<id>/model" ...

Prints a table and writes ``benchmarks/results/backbone_ablation.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS = REPO / "benchmarks" / "results"

MUX_EXPERIMENT = "emotify-eval-muxspace_dev"
COLUMNS = (("publictest", "accuracy"), ("publictest", "macro_f1"), ("muxspace_dev", "accuracy"),
           ("muxspace_dev", "macro_f1"), ("muxspace_dev", "recall_disgust"), ("muxspace_dev", "recall_fear"),
           ("muxspace_dev", "recall_surprise"), ("muxspace_dev", "neutral_as_angry"), ("privatetest", "accuracy"),
           ("privatetest", "macro_f1"))


def model_metrics(client, uri: str) -> tuple[dict, dict, str | None]:
    """PublicTest and PrivateTest metrics of the model ``uri``, its parameters, and the backbone it embeds with."""
    if uri.startswith("runs:/"):
        run = client.get_run(uri[len("runs:/"):].split("/")[0])
        metrics, params = run.data.metrics, run.data.params
    else:
        provenance = json.loads((Path(uri) / "provenance.json").read_text())
        metrics, params = provenance["metrics"], provenance.get("params", {})
    split = {name: {m: metrics.get(f"{prefix}_{m}") for m in ("accuracy", "macro_f1")}
             for name, prefix in (("publictest", "val"), ("privatetest", "test"))}
    backbone = params.get("features.cnn.model_path") or params.get("classifier.model_path")
    return split, params, None if backbone in (None, "None") else backbone


def muxspace_metrics(client, uri: str, views: tuple | None = None) -> dict | None:
    """The newest finished evaluation of the model ``uri`` on muxspace_dev (metrics without the ``val_`` prefix).

    A model folder (the shipped one) is known by the run it came from (``provenance.json``), not by its
    path, since a folder shipped anew holds another model: its evaluations are those of that run's model
    and those of a folder that came from that run (``model.source`` tag, :func:`pipelines.evaluate.model_identity`).
    Only evaluations that scored each face in ``views`` count (:func:`evaluation_views`; default: the
    product's, :class:`~emotify_ml.scoring.ScoringOptions`) under the model's own class prior
    (``scoring.prior`` ``training``, the default), so two models are compared as scored alike.
    """
    experiment = client.get_experiment_by_name(MUX_EXPERIMENT)
    if experiment is None:
        return None
    queries = [f"tags.`model.uri` = '{uri}'"]
    if not uri.startswith("runs:/"):
        run_id = json.loads((Path(uri) / "provenance.json").read_text()).get("run_id")
        queries = ([f"tags.`model.uri` = 'runs:/{run_id}/model'", f"tags.`model.source` LIKE '% (from run {run_id})'"]
                   if run_id else [])
    views = product_views() if views is None else views
    runs = [run for query in queries for run in client.search_runs(
        [experiment.experiment_id], f"{query} and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=100)
        if evaluation_views(run.data.params) == views and evaluation_prior(run.data.params) == "training"]
    if not runs:
        return None
    run = max(runs, key=lambda r: r.info.start_time)
    out = {k[len("val_"):]: v for k, v in run.data.metrics.items() if k.startswith("val_")}
    out["run_id"], out["runtime"] = run.info.run_id, run.data.tags.get("model.runtime")
    return out


def product_views() -> tuple[float, bool]:
    """``(crop_spread, mirror)`` of the product's default scoring."""
    from emotify_ml.scoring import ScoringOptions

    options = ScoringOptions()
    return float(options.crop_spread), bool(options.mirror)


def evaluation_prior(params: dict) -> str:
    """The class prior an evaluation run scored under: a name, ``"mapping"`` for its own shares (logged one param
    an emotion), ``"training"`` for runs from before the setting."""
    if any(key.startswith("scoring.prior.") for key in params):
        return "mapping"
    return params.get("scoring.prior", "training")


def evaluation_views(params: dict) -> tuple[float, bool]:
    """``(crop_spread, mirror)`` an evaluation run scored with; runs older than the views scored one crop."""
    return float(params.get("scoring.crop_spread", 0.0)), params.get("scoring.mirror", "False") == "True"


def backbone_training(client, backbone: str | None) -> dict | None:
    """Epochs and time of the training run that wrote ``backbone`` (``<out_dir>/backbone.keras``)."""
    if not backbone:
        return None
    record = Path(backbone).parent / "mlflow_run.json"
    if not record.is_file():
        return None
    run = client.get_run(json.loads(record.read_text())["run_id"])
    history = client.get_metric_history(run.info.run_id, "loss")  # one point per epoch
    seconds = [m.value for m in client.get_metric_history(run.info.run_id, "train_seconds_this_call")]
    return {"run_id": run.info.run_id, "run_name": run.info.run_name, "epochs": len(history),
            "best_epoch": run.data.metrics.get("best_epoch"), "train_seconds": sum(seconds),
            "camera": _camera(run.data.params), "class_balance": run.data.params.get("train.class_balance"),
            "balance_tau": run.data.params.get("train.balance_tau"),
            "init_from": run.data.params.get("train.init_from")}


def _camera(params: dict) -> str:
    """The camera augmentation of a backbone run: off, on with its defaults, or on with the overridden values."""
    overrides = {k[len("camera."):]: v for k, v in params.items() if k.startswith("camera.")}
    if overrides:
        return f"on ({overrides})"
    if params.get("camera") == "None":
        return "off"
    return "on (defaults)"  # "{}", or no param at all in runs from before empty mappings were logged


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", action="append", required=True, metavar="LABEL=URI",
                        help="a step of the ablation: label=runs:/<id>/model or a model folder; the first is the "
                             "current model")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--out", default=str(RESULTS / "backbone_ablation.json"))
    parser.add_argument("--one-crop", action="store_true",
                        help="compare evaluations that scored one crop a face (those made before the views, or with "
                             "scoring.crop_spread=0 scoring.mirror=false) instead of the product's six views")
    args = parser.parse_args(argv)
    views = (0.0, False) if args.one_crop else product_views()

    import mlflow

    from head_balance import choose, rule

    client = mlflow.MlflowClient(tracking_uri=args.tracking_uri)
    rows = []
    for spec in args.row:
        label, sep, uri = spec.partition("=")
        if not sep or not uri:
            parser.error(f"--row {spec!r}: expected LABEL=URI")
        splits, _, backbone = model_metrics(client, uri)
        mux = muxspace_metrics(client, uri, views)
        if mux is None:
            parser.error(f"--row {label}: no finished evaluation of {uri} in {MUX_EXPERIMENT} scored with crop_spread "
                         f"{views[0]}, mirror {views[1]}; run pipelines.evaluate model={uri} "
                         f"data.root=../shared/data/muxspace_dev first" + ("" if args.one_crop else
                                                                           " (or pass --one-crop)"))
        row = {"step": label, "model": uri, "backbone": backbone, **splits, "muxspace_dev": mux,
               "training": backbone_training(client, backbone)}
        row["rule"] = rule(row["publictest"]["accuracy"], mux["macro_f1"])
        rows.append(row)
    chosen = choose(rows)
    print("| step | rule | " + " | ".join(f"{s} {m}" for s, m in COLUMNS) + " |\n|---|---:|" + "---:|" * len(COLUMNS))
    for r in rows:
        cells = " | ".join("–" if r[s].get(m) is None else f"{r[s][m]:.3f}" for s, m in COLUMNS)
        print(f"| {r['step']}{' **chosen**' if r is chosen else ''} | {r['rule']:.4f} | {cells} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"tracking_uri": args.tracking_uri, "rule": "(PublicTest accuracy + "
                                          "muxspace_dev macro-F1) / 2, margin 0.005", "chosen": chosen["step"],
                                          "rows": rows}, indent=1, default=str))
    print(f"chosen: {chosen['step']} ({chosen['model']}); written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
