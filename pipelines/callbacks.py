"""Hydra callback that makes a multirun one MLflow parent run with a child run per job.

Registered in ``experiments/run.yaml`` under ``hydra.callbacks``. On
``on_multirun_start`` it creates the parent run (in the sweep's tracking store
and experiment) and writes its id to ``<sweep dir>/mlflow_sweep.json``; every
job reads that file (:func:`sweep_parent_of_job`) and starts its run as a child,
which also works when a launcher runs the jobs in other processes (joblib).
``on_multirun_end`` logs the best child by the validation metric
(``selection.metric``) on the parent and ends it FINISHED, or FAILED when a job
failed (the command then exits with code 2). A sweep that dies half-way is
ended FAILED when the process exits.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("emotify.sweep")

OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"

SWEEP_FILE = "mlflow_sweep.json"
"""Written in the sweep folder: the parent run id, tracking URI and experiment the jobs join."""


class MlflowSweepCallback(Callback):
    """One MLflow parent run per Hydra multirun, ended with a summary of its best child."""

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.tracking_uri: str | None = None
        self.selection: dict = {}

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        """Create the parent run and leave its id in the sweep folder for the jobs."""
        import signal

        from emotify_ml.mlflow_runs import disable_telemetry, start_sweep

        from pipelines._common import raise_interrupt

        disable_telemetry()
        signal.signal(signal.SIGTERM, raise_interrupt)  # a killed sweep ends its runs KILLED / FAILED, not RUNNING
        hydra_cfg = config.hydra
        tracking = OmegaConf.to_container(config.tracking, resolve=True)
        self.tracking_uri = tracking["uri"]
        self.selection = _plain(config.get("selection")) or {}
        align_optuna(config, self.selection.get("mode", "max"))
        overrides = list(hydra_cfg.overrides.task)
        choices = hydra_cfg.runtime.choices
        sweep_dir = Path(hydra_cfg.sweep.dir).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self.parent_run_id = start_sweep(
            tracking_uri=self.tracking_uri, experiment=tracking["experiment"],
            run_name=("sweep " + " ".join(overrides))[:250].rstrip(),
            config={"overrides": overrides, "sweeper": _plain(hydra_cfg.sweeper),
                    "launcher": _plain(hydra_cfg.launcher), "selection": self.selection},
            tags={"sweep_dir": str(sweep_dir), "sweep_overrides": " ".join(overrides)[:5000],
                  "sweeper": str(choices.get("hydra/sweeper")), "launcher": str(choices.get("hydra/launcher")),
                  "experiment_name": "sweep"},
        )
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(
            {"parent_run_id": self.parent_run_id, "tracking_uri": self.tracking_uri,
             "experiment": tracking["experiment"]}, indent=2))
        atexit.register(self._end_if_aborted)
        log.info("sweep parent run %s in experiment %r (%s)", self.parent_run_id, tracking["experiment"],
                 self.tracking_uri)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """Log the best child on the parent and end it; exit with code 2 when a job failed."""
        if self.parent_run_id is None:
            return
        atexit.unregister(self._end_if_aborted)
        summary = self._end()
        metric = summary.get("metric")
        best = (f"best {metric} {summary['best_value']:.4f}: {summary['best_run_name']} ({summary['best_run_id']})"
                if summary.get("best_run_id") else f"no job finished with {metric}")
        log.info("sweep %s %s: %d jobs, %d failed; %s", self.parent_run_id, summary["status"],
                 summary.get("n_jobs", 0), summary.get("n_failed", 0), best)
        if summary["status"] != "FINISHED":
            print(f"error: sweep {self.parent_run_id}: {summary.get('n_failed', 0)} of {summary.get('n_jobs', 0)} "
                  f"jobs failed (see their error tags in MLflow); {best}", file=sys.stderr)
            sys.exit(2)

    def _end(self, error: str | None = None) -> dict:
        from emotify_ml.mlflow_runs import end_sweep

        return end_sweep(self.parent_run_id, tracking_uri=self.tracking_uri, error=error,
                         metric=self.selection.get("metric", "val_accuracy"), mode=self.selection.get("mode", "max"))

    def _end_if_aborted(self) -> None:
        try:
            self._end(error="the sweep stopped before its end (an error in a job or in the sweeper; "
                            "see the console and the jobs' error tags)")
        except Exception as exc:  # noqa: BLE001 - at interpreter exit, report and carry on
            print(f"warning: could not end sweep run {self.parent_run_id}: {exc}", file=sys.stderr)


def align_optuna(config: DictConfig, mode: str = "max") -> None:
    """Make an Optuna sweeper optimise the runner's objective the right way, and reproducibly.

    With ``hydra/sweeper=optuna`` the objective is the validation metric the runner
    returns (``selection.metric``). The plugin's default direction is ``minimize``;
    unless ``hydra.sweeper.direction`` is given on the command line it becomes
    ``maximize`` (``minimize`` when ``selection.mode`` is ``min``). A sampler without a
    seed gets the config's ``seed``. Other sweepers are left alone. Changes ``config``
    in place: Hydra builds the sweeper from it after ``on_multirun_start``.
    """
    from omegaconf import open_dict, read_write

    sweeper = config.hydra.sweeper
    if sweeper.get("_target_") != OPTUNA_SWEEPER:
        return
    given = {o.split("=", 1)[0].lstrip("+~") for o in config.hydra.overrides.hydra}
    with read_write(sweeper), open_dict(sweeper):
        if "hydra.sweeper.direction" not in given:
            sweeper.direction = "maximize" if mode == "max" else "minimize"
        if sweeper.get("sampler") is not None and "seed" in sweeper.sampler and sweeper.sampler.seed is None:
            sweeper.sampler.seed = config.get("seed")
    log.info("optuna: %s the validation objective, sampler seed %s", sweeper.direction,
             sweeper.sampler.get("seed") if sweeper.get("sampler") is not None else None)


def sweep_parent_of_job() -> str | None:
    """The parent run id this Hydra job must nest under: None outside a multirun or without the callback."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    path = Path(hydra_cfg.sweep.dir) / SWEEP_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())["parent_run_id"]


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
