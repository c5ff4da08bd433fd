"""Compare runs: ``python -m pipelines.compare [tracking.experiment=emotify] [parent_run_id=latest]``.

Prints one row per run of the experiment (or of one sweep), best first by the
validation metric: experiment name, features, classifier, the params that
differ, val/test accuracy and macro-F1, train time, faces/s and ms/face. Writes
the table as ``<out_dir>/<experiment>.csv`` and ``.md``. The logic is
:func:`emotify_ml.mlflow_runs.comparison_table`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from pipelines._common import CONFIG_PATH, config_errors_exit_2, exit_on_error, to_dict


@config_errors_exit_2
@hydra.main(config_path=CONFIG_PATH, config_name="compare", version_base="1.3")
@exit_on_error
def main(cfg: DictConfig) -> None:
    """Hydra entry point: print the table and write it as CSV and markdown."""
    import pandas as pd

    from emotify_ml.mlflow_runs import comparison_table, end_ghost_runs, search_runs, write_table

    config = to_dict(cfg)
    end_ghost_runs(tracking_uri=config["tracking"]["uri"])  # a killed run is listed FAILED, never RUNNING
    runs = search_runs(tracking_uri=config["tracking"]["uri"], experiment=config["tracking"]["experiment"],
                       parent_run_id=config["parent_run_id"], max_results=config["max_runs"])
    if not runs:
        raise ValueError(f"no runs in experiment {config['tracking']['experiment']!r}"
                         + (f" under sweep {config['parent_run_id']}" if config["parent_run_id"] else ""))
    table = comparison_table(runs, metric=config["metric"], mode=config["mode"],
                             max_param_columns=config["max_param_columns"])
    stem = config["tracking"]["experiment"] if not config["parent_run_id"] else f"{config['tracking']['experiment']}_sweep"
    csv_path, md_path = write_table(table, config["out_dir"], stem)
    with pd.option_context("display.max_columns", None, "display.width", 250, "display.float_format", "{:.4f}".format):
        print(table.drop(columns=["run_id"]).to_string(index=False))
    print(f"{len(table)} runs; written {csv_path} and {md_path}")


if __name__ == "__main__":
    main()
