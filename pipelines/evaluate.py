"""Evaluate a model on labelled photos: ``python -m pipelines.evaluate model=<uri or folder> data.root=<photos>``.

Runs the product's frame scoring (detect -> align -> crop -> classify, as live and batch
scoring run it) over every photo (:mod:`emotify_ml.photo_evaluation`), prints accuracy,
macro-F1, per-class recall and precision and the photos with no face found, writes them
with a confusion-matrix PNG and one row per photo to ``out_dir``, and tracks the whole as an
MLflow run: an evaluation of that model version, tagged with the model's name, version and
source and the data set's identity, in the experiment ``emotify-eval-<data set name>``, so
evaluations of several models compare side by side::

    python -m pipelines.compare tracking.experiment=emotify-eval-muxspace_dev metric=val_macro_f1

Nothing is fitted. Exit code 2 with one line on a user error (missing photos, unknown label,
bad model URI).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pipelines._common import CONFIG_PATH, build, config_errors_exit_2, exit_on_error, to_dict

log = logging.getLogger("emotify.evaluate")


def model_identity(model) -> dict[str, str]:
    """Name, version, source and runtime of a loaded model (:func:`emotify_ml.models.load_model`).

    A registry model carries its name and version; a model folder (the shipped model) gives them
    from its ``provenance.json`` (``registered_version``: ``<name>/<version>``, and the run it came from).
    """
    name, version, source = model.name or "", model.version or "", str(model.source)
    provenance = Path(source) / "provenance.json"
    if provenance.is_file():
        record = json.loads(provenance.read_text())
        registered = str(record.get("registered_version") or "")
        if registered and not name:
            name, _, version = registered.partition("/")
        if record.get("run_id"):
            source += f" (from run {record['run_id']})"
    if not name and source.startswith("runs:/"):  # an unregistered run's model: named by its run
        name = "run-" + source[len("runs:/"):].split("/")[0][:12]
    return {"model.uri": str(model.source), "model.name": name or Path(str(model.source)).name,
            "model.version": version, "model.source": source, "model.runtime": str(model.runtime)}


def evaluate_photos(cfg: DictConfig) -> dict:
    """Execute one composed config; returns the report (metrics, no-face photos, output folder)."""
    import mlflow

    from emotify_ml.evaluation import confusion_matrix_figure
    from emotify_ml.scoring.options import ScoringOptions
    from emotify_ml.labels import EMOTIONS
    from emotify_ml.mlflow_runs import tracked_run
    from emotify_ml.models import load_model
    from emotify_ml.photo_evaluation import photo_report, predictions_frame, score_photos, scoring_options

    config = to_dict(cfg)
    if not config["data"].get("root"):
        raise ValueError("data.root is required: a folder with labels.csv (image,label) and the photos, or one "
                         "folder per class, e.g. data.root=../shared/data/muxspace_dev")
    photos = build(cfg.data)
    model = load_model(config["model"], kind="emotion", tracking_uri=config["tracking"]["uri"],
                       runtime=config["runtime"])
    identity = model_identity(model)
    scoring = config["scoring"]
    defaults = ScoringOptions()
    for key in ("margin", "crop_spread", "mirror", "views_on_crops"):  # logged as used
        scoring[key] = getattr(defaults, key) if scoring.get(key) is None else scoring[key]
    options = scoring_options(**scoring)  # a bad setting is one line before any run is opened, not a FAILED run
    scoring.update(margin=float(options.margin), crop_spread=float(options.crop_spread))
    experiment = config["tracking"]["experiment"] or f"emotify-eval-{photos.name}"
    dataset = photos.identity()
    run_name = f"{photos.name}:{identity['model.name']}" + (f"/{identity['model.version']}" if identity["model.version"] else "")
    tags = {"emotify.kind": "evaluation", **identity, "dataset.name": photos.name, "dataset.hash": dataset["hash"],
            "experiment_name": "evaluate"}
    prefix = f"{config['metric_prefix']}_" if config.get("metric_prefix") else ""
    with tracked_run(tracking_uri=config["tracking"]["uri"], experiment=experiment, run_name=run_name,
                     config=config, tags=tags) as run:
        mlflow.log_params({f"dataset.{k}": v for k, v in dataset.items()})
        mlflow.log_params({"model.uri": identity["model.uri"]})
        log.info("scoring %d photos of %s with %s", len(photos), photos.name, identity["model.uri"])
        scores = score_photos(photos, model, progress=config["progress"], **scoring)
        report = photo_report(scores)
        mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in report.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
        out = Path(config["out_dir"]) / run.info.run_id
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps({"model": identity, "dataset": dataset, "scoring": scoring,
                                                     "metrics": report}, indent=1, default=str))
        predictions_frame(scores).to_csv(out / "predictions.csv", index=False)
        (out / "no_face.txt").write_text("".join(f"{p}\n" for p in report["no_face"]))
        if "confusion_matrix" in report:
            fig = confusion_matrix_figure(report["confusion_matrix"], EMOTIONS,
                                          f"{photos.name}: {identity['model.name']} {identity['model.version']}")
            fig.savefig(out / "confusion_matrix.png", dpi=110)
            import matplotlib.pyplot as plt

            plt.close(fig)
        mlflow.log_artifacts(str(out), "evaluation")
        report["out_dir"] = str(out)
        report["run_id"] = run.info.run_id
        print(summary_table(report, photos.name, identity))
        return report


def summary_table(report: dict, name: str, identity: dict) -> str:
    """The report as a few printed lines: headline metrics, per-class recall and precision, faceless photos."""
    from emotify_ml.labels import EMOTIONS

    lines = [f"{name} ({report['n_photos']} photos) with {identity['model.name']} {identity['model.version']} "
             f"[{identity['model.source']}, runtime {identity['model.runtime']}]",
             f"accuracy {report.get('accuracy', float('nan')):.4f} (faces found) / {report.get('accuracy_all', 0):.4f} "
             f"(all photos), macro-F1 {report.get('macro_f1', float('nan')):.4f}, neutral called angry "
             f"{report.get('neutral_as_angry', float('nan')):.3f}, no face in {report['n_no_face']} photos",
             "| class | recall | precision |", "|---|---:|---:|"]
    lines += [f"| {c} | {report.get(f'recall_{c}', float('nan')):.3f} | {report.get(f'precision_{c}', float('nan')):.3f} |"
              for c in EMOTIONS]
    if report["no_face"]:
        shown = ", ".join(report["no_face"][:10])
        lines.append(f"no face found: {shown}{' ...' if len(report['no_face']) > 10 else ''}")
    lines.append(f"written to {report.get('out_dir', '')}" if report.get("out_dir") else "")
    return "\n".join(lines)


@config_errors_exit_2
@hydra.main(config_path=CONFIG_PATH, config_name="evaluate", version_base="1.3")
@exit_on_error
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    evaluate_photos(cfg)


if __name__ == "__main__":
    main()
