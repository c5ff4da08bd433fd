"""Glue shared by the entry points: config to plain objects, the job's overrides, and errors to one line."""

from __future__ import annotations

import functools
import logging
import sys

from omegaconf import DictConfig, OmegaConf

from emotify_ml.exceptions import EmotifyError

log = logging.getLogger("emotify")

CONFIG_PATH = "../experiments"

EXPECTED_ERRORS = (EmotifyError, FileNotFoundError, ValueError)
"""Errors of the user's making (bad data, bad config value, missing file): one line, not a traceback."""


def to_dict(cfg: DictConfig) -> dict:
    """The resolved config as a plain dict (for logging and for library calls)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def build(node):
    """``hydra.utils.instantiate(node, _convert_="all")``, letting an expected error of the target through as itself.

    Hydra wraps whatever a ``_target_`` raises in an ``InstantiationException``; a
    missing data root or a bad value is re-raised unwrapped, so the run's ``error``
    tag and the command's one line name the real error.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as exc:
        error = expected_error(exc)
        if error is None:
            raise
        raise error from None


def job_info() -> dict:
    """The running Hydra job: ``overrides`` (list of str), ``multirun`` (bool), ``num`` (job number), ``sweeper``.

    Outside a Hydra job (a test calling the code directly): no overrides, not a multirun.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {"overrides": [], "multirun": False, "num": 0, "sweeper": None}
    hydra_cfg = HydraConfig.get()
    return {"overrides": list(hydra_cfg.overrides.task), "multirun": hydra_cfg.mode == RunMode.MULTIRUN,
            "num": hydra_cfg.job.get("num", 0), "sweeper": hydra_cfg.runtime.choices.get("hydra/sweeper")}


def expected_error(exc: BaseException) -> BaseException | None:
    """``exc``, or the error a Hydra ``instantiate`` wrapped, when it is one of :data:`EXPECTED_ERRORS`."""
    from hydra.errors import HydraException

    while exc is not None:
        if isinstance(exc, EXPECTED_ERRORS):
            return exc
        exc = exc.__cause__ if isinstance(exc, HydraException) else None
    return None


def exit_on_error(fn):
    """Turn an expected error (bad data, bad config, missing file) into one line on stderr and exit code 2.

    In a multirun job the line names the job and the job returns NaN instead of
    exiting, so the other jobs still run (the sweep callback then ends the sweep
    FAILED and exits with code 2). Under the Optuna sweeper the error is raised
    instead: the plugin records it as a failed trial (``hydra.sweeper.max_failure_rate``
    decides whether the search goes on), where a NaN objective would crash it.
    Unexpected errors keep their traceback: they are bugs.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            error = expected_error(exc)
            if error is None:
                raise
            job = job_info()
            if job["multirun"]:
                print(f"error in job {job['num']} ({' '.join(job['overrides'])}): {error}", file=sys.stderr)
                if job["sweeper"] == "optuna":
                    raise
                return float("nan")
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper
