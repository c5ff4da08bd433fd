"""Train the CNN backbone: ``python -m pipelines.train_backbone data.root=../shared/data/fer2013``.

Trains on the Training split, chooses the epoch on PublicTest, reports PrivateTest
(with and without flip averaging), and tracks everything in one MLflow run
(resumed, with its checkpoints, when the same ``out_dir`` is run again).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pipelines._common import CONFIG_PATH, build, config_errors_exit_2, exit_on_error, to_dict

log = logging.getLogger("emotify.train_backbone")


def log_resumed_history(init_from, out_dir: Path) -> None:
    """A run that resumes a committed checkpoint on a new machine logs the epochs done before it.

    The metrics of those epochs (from the checkpoint's ``state.json``) go in at their steps, so the run
    shows the whole training curve, and tags name the checkpoint and the run that trained them.
    """
    import mlflow

    from emotify_ml.backbones.checkpoint import read_state

    if not init_from or not Path(init_from).is_dir() or (out_dir / "state.json").exists():
        return
    source = Path(init_from)
    state = read_state(source)
    for row in state["history"]:
        mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
    tags = {"resumed_from": str(source), "resumed_after_epoch": str(state["epochs_done"])}
    if (source / "mlflow_run.json").exists():
        tags["continues_run"] = json.loads((source / "mlflow_run.json").read_text())["run_id"]
    mlflow.set_tags(tags)


def train(cfg: DictConfig) -> dict:
    import mlflow
    from sklearn.metrics import accuracy_score, f1_score

    from emotify_ml.backbones.checkpoint import hold
    from emotify_ml.backbones.cnn import check_architecture
    from emotify_ml.backbones.train import check_options, train_backbone
    from emotify_ml.features.cnn_embedding import BackboneClassifier
    from emotify_ml.labels import TEST, TRAIN, VALIDATION
    from emotify_ml.mlflow_runs import log_json, tracked_run

    config = to_dict(cfg)
    options = ("class_balance", "balance_tau", "init_from", "teacher", "distill_alpha", "distill_temperature",
               "pack_to")
    check_options(**{k: config["train"][k] for k in options if k in config["train"]},
                  out_dir=config["out_dir"])  # before a run is opened
    shape = ("widths", "convs_per_block", "residual", "squeeze_excite")
    check_architecture(**{k: config["model"][k] for k in shape if k in config["model"]})
    data = build(cfg.data)
    train_set, val_set, test_set = data.split(TRAIN), data.split(VALIDATION), data.split(TEST)
    if not len(train_set) or not len(val_set):
        raise ValueError(f"data at {data.root!r} needs Training and PublicTest images; got counts {data.counts()}")
    out_dir = Path(config["out_dir"])
    run_file = out_dir / "mlflow_run.json"
    run_id = json.loads(run_file.read_text())["run_id"] if run_file.exists() else None

    # one training a folder: out_dir and pack_to are held (and created) before the run opens
    with hold(out_dir, config["train"].get("pack_to")), tracked_run(
            tracking_uri=config["tracking"]["uri"], experiment=config["tracking"]["experiment"],
            run_name=config["run_name"], run_id=run_id, config=config, tags={"kind": "backbone"}) as run:
        run_file.write_text(json.dumps({"run_id": run.info.run_id}))
        if run_id is None:
            mlflow.log_params({"data.hash": data.content_hash(), "data.n_train": len(train_set),
                               "data.n_val": len(val_set), "data.n_test": len(test_set)})
        if "resumed_from" not in run.data.tags:
            log_resumed_history(config["train"].get("init_from"), out_dir)
        t0 = time.perf_counter()
        summary = train_backbone(
            train_set.images, train_set.labels, val_set.images, val_set.labels,
            out_dir=out_dir, seed=config["seed"], model=config["model"], augment=config["augment"],
            camera=config.get("camera"),
            on_epoch_end=lambda epoch, logs: mlflow.log_metrics(logs, step=epoch),
            **config["train"],
        )
        mlflow.log_metric("train_seconds_this_call", time.perf_counter() - t0)
        if summary["model_path"] is None:
            log.info("stopped after epoch %d of %d; run again to resume", summary["epochs_done"], config["train"]["epochs"])
            return summary
        metrics = {"best_epoch": summary["best_epoch"]}
        for name, split in (("val", val_set), ("test", test_set)):
            if not len(split):
                continue
            for flip in (False, True):  # scored exactly as the cnn_softmax pipeline serves it
                head = BackboneClassifier(model_path=summary["model_path"], flip_tta=flip).fit(split.images[:1])
                pred = head.predict(split.images)
                tag = f"{name}{'_flip' if flip else ''}"
                metrics[f"{tag}_accuracy"] = accuracy_score(split.labels, pred)
                metrics[f"{tag}_macro_f1"] = f1_score(split.labels, pred, average="macro")
        mlflow.log_metrics(metrics)
        log_json(summary["history"], "history.json")
        mlflow.log_artifact(summary["model_path"], "backbone")
        log.info("backbone metrics: %s", {k: round(v, 4) for k, v in metrics.items()})
        if config.get("ship_to"):
            ship = Path(config["ship_to"])
            ship.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(summary["model_path"], ship)
            (ship.parent / f"{ship.stem}.json").write_text(json.dumps(
                {"mlflow_run_id": run.info.run_id, "config": config, "metrics": metrics,
                 "data_hash": data.content_hash(), "git": mlflow.get_run(run.info.run_id).data.tags.get("git_commit")},
                indent=2, default=str))
            log.info("shipped backbone to %s", ship)
        return {**summary, **metrics}


@config_errors_exit_2
@hydra.main(config_path=CONFIG_PATH, config_name="train_backbone", version_base="1.3")
@exit_on_error
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
