"""Promote the best run: ``python -m pipelines.promote [parent_run_id=latest] [metric=val_macro_f1]``.

Finds the FINISHED run with the best validation metric (in the experiment, or
in one sweep), registers its model under ``model_name`` and moves the alias
``champion`` to it only when it beats the current champion on that metric.
Prints both values and the decision. The logic is :func:`emotify_ml.registry.promote`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from pipelines._common import CONFIG_PATH, config_errors_exit_2, exit_on_error, to_dict


@config_errors_exit_2
@hydra.main(config_path=CONFIG_PATH, config_name="promote", version_base="1.3")
@exit_on_error
def main(cfg: DictConfig) -> bool:
    """Hydra entry point; returns whether the candidate was promoted."""
    from emotify_ml.registry import promote

    config = to_dict(cfg)
    result = promote(tracking_uri=config["tracking"]["uri"], experiment=config["tracking"]["experiment"],
                     parent_run_id=config["parent_run_id"], run_id=config["run_id"], metric=config["metric"],
                     mode=config["mode"], model_name=config["model_name"], alias=config["alias"],
                     artifact_name=config["artifact_name"], force=config["force"])
    print(result.summary())
    return result.promoted


if __name__ == "__main__":
    main()
