"""Batch scoring: ``python -m pipelines.score_batch input=<folder|glob> output=<parquet dir> [engine=local|spark]``.

Detects and scores every face of the images and videos of ``input`` with the chosen
MLflow model and appends one row per face to the parquet folder ``output`` (see
``experiments/score_batch.yaml`` and docs/batch.md). The logic is
:func:`emotify_ml.batch.score_batch`; this entry point maps the config to its arguments,
prints a one-line summary, and exits with code 2 on a user error.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from pipelines._common import CONFIG_PATH, exit_on_error, to_dict


@hydra.main(config_path=CONFIG_PATH, config_name="score_batch", version_base="1.3")
@exit_on_error
def main(cfg: DictConfig) -> dict:
    """Hydra entry point: score the inputs and print what was done."""
    from emotify_ml.batch import score_batch

    config = to_dict(cfg)
    detector, spark = config["detector"], config["spark"]
    summary = score_batch(
        config["input"], config["output"], engine=config["engine"], model=config["model"],
        tracking_uri=config["tracking"]["uri"], detect=config["detect"], detector=detector["kind"],
        det_size=detector["det_size"], score_threshold=detector["score_threshold"], margin=config["margin"],
        align=config["align"], frame_stride=config["frame_stride"], frames_per_item=config["frames_per_item"],
        batch_size=config["batch_size"], progress=config["progress"], spark_master=spark["master"],
        spark_partitions=spark["partitions"], spark_local_dir=spark["local_dir"], spark_conf=spark["conf"],
        say=print)
    print(f"{summary.engine}: {summary.files} files scored ({summary.skipped} already done) in {summary.seconds:.1f} s: "
          f"{summary.faces} faces ({summary.faces_per_s:.1f}/s), {summary.rows} rows, {summary.errors} errors; "
          f"written to {summary.output}")
    return summary.as_dict()


if __name__ == "__main__":
    main()
