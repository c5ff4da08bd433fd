"""Batch scoring: ``python -m pipelines.score_batch input=<folder|glob> output=<parquet dir> [engine=local|spark]``.

Detects and scores every face of the images and videos of ``input`` with the chosen
MLflow model and appends one row per face to the parquet folder ``output`` (see
``experiments/score_batch.yaml`` and docs/batch.md). The config's schema is
:class:`emotify_ml.batch.BatchOptions`, registered in Hydra's ConfigStore, so the composed
config is type-checked and becomes that dataclass directly; :func:`emotify_ml.batch.score_batch`
runs it. Prints a one-line summary; a user error (a missing ``input``, a bad value, no
input files) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from pipelines._common import CONFIG_PATH, config_errors_exit_2, exit_on_error

SCHEMA = "score_batch_schema"
"""Name of the :class:`~emotify_ml.batch.BatchOptions` schema in the ConfigStore (first in the yaml's defaults)."""


def register_schema() -> None:
    """Put :class:`~emotify_ml.batch.BatchOptions` in Hydra's ConfigStore as :data:`SCHEMA`."""
    from hydra.core.config_store import ConfigStore

    from emotify_ml.batch import BatchOptions

    ConfigStore.instance().store(name=SCHEMA, node=BatchOptions)


def to_options(cfg: DictConfig):
    """The composed config as a :class:`~emotify_ml.batch.BatchOptions`; a missing required value is a ConfigError."""
    from omegaconf.errors import MissingMandatoryValue

    from emotify_ml.exceptions import ConfigError

    try:
        return OmegaConf.to_object(cfg)
    except MissingMandatoryValue as exc:
        key = getattr(exc, "full_key", None) or "a required value"
        raise ConfigError(f"{key} is required: python -m pipelines.score_batch input=<folder|glob|file> "
                          "output=<parquet folder>") from None


register_schema()  # before @hydra.main composes (Hydra's structured-config pattern; pipelines only)


@config_errors_exit_2
@hydra.main(config_path=CONFIG_PATH, config_name="score_batch", version_base="1.3")
@exit_on_error
def main(cfg: DictConfig) -> dict:
    """Hydra entry point: score the inputs and print what was done."""
    from emotify_ml.batch import score_batch

    summary = score_batch(options=to_options(cfg), say=print)
    print(f"{summary.engine}: {summary.files} files scored ({summary.skipped} already done) in {summary.seconds:.1f} s: "
          f"{summary.faces} faces ({summary.faces_per_s:.1f}/s), {summary.rows} rows, {summary.errors} errors; "
          f"written to {summary.output}")
    return summary.as_dict()


if __name__ == "__main__":
    main()
