"""Glue shared by the entry points: config to plain objects, the job's overrides, and errors to one line."""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import sys

from omegaconf import DictConfig, OmegaConf

from emotify_ml.exceptions import ConfigError, EmotifyError

log = logging.getLogger("emotify")

CONFIG_PATH = "../experiments"

EXPECTED_ERRORS = (EmotifyError, FileNotFoundError, ValueError)
"""Errors of the user's making (bad data, bad config value, missing file): one line, not a traceback."""

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
"""Exit codes of the Hydra entry points: 2 an error of the user's making, 130 interrupted (Ctrl-C, SIGTERM)."""


def to_dict(cfg: DictConfig) -> dict:
    """The resolved config as a plain dict (for logging and for library calls)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def build(node):
    """``hydra.utils.instantiate(node, _convert_="all")``, letting an expected error of the target through as itself.

    Hydra wraps whatever a ``_target_`` raises in an ``InstantiationException``; a
    missing data root or a bad value is re-raised unwrapped, so the run's ``error``
    tag and the command's one line name the real error. A ``TypeError`` of the target
    (an unknown parameter such as ``+classifier.bogus=1``, a value of the wrong type)
    becomes a :class:`ConfigError` naming the config key.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as exc:
        error = expected_error(exc)
        if error is None:
            error = _config_type_error(node, exc)
        if error is None:
            raise
        raise error from None


def _config_type_error(node, exc) -> ConfigError | None:
    """A ConfigError for a ``TypeError`` raised by instantiating ``node`` (None for any other error)."""
    import inspect
    import re

    from hydra.utils import get_object

    cause = exc.__cause__
    while cause is not None and not isinstance(cause, TypeError):
        cause = cause.__cause__
    if cause is None:
        return None
    key = node._get_full_key(None) if hasattr(node, "_get_full_key") else ""
    target = node.get("_target_", "?") if hasattr(node, "get") else "?"
    unknown = re.search(r"unexpected keyword argument '(\w+)'", str(cause))
    if unknown:
        try:
            accepted = ", ".join(inspect.signature(get_object(target)).parameters)
        except Exception:  # noqa: BLE001 - the list is a hint only
            accepted = "?"
        return ConfigError(f"{key}.{unknown.group(1)} is not a parameter of {target}; remove it "
                           f"(its parameters: {accepted})")
    return ConfigError(f"{key}: a value does not fit {target}: {cause}")


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
    """``exc`` (or the error a Hydra ``instantiate`` wrapped) as an error of the user's making, else None.

    :data:`EXPECTED_ERRORS` pass as themselves; a missing mandatory config value and an
    MLflow error (bad store, unknown run) become a :class:`ConfigError` with one line.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import MissingMandatoryValue

    while exc is not None:
        if isinstance(exc, MissingMandatoryValue):
            key = getattr(exc, "full_key", None) or str(exc).split(":")[-1].strip()
            return ConfigError(f"{key} is required: add {key}=<value> to the command line")
        if isinstance(exc, EXPECTED_ERRORS):
            return exc
        mlflow_errors = sys.modules.get("mlflow.exceptions")
        if mlflow_errors is not None and isinstance(exc, mlflow_errors.MlflowException):
            return ConfigError(f"MLflow: {getattr(exc, 'message', exc)}")
        exc = exc.__cause__ if isinstance(exc, HydraException) else None
    return None


def exit_on_error(fn):
    """What every Hydra entry point does around its work: no telemetry, signals, and errors as one line.

    - MLflow's (and other libraries') telemetry is switched off when the command starts
      (``EMOTIFY_ALLOW_TELEMETRY=1`` opts in): :func:`emotify_ml.mlflow_runs.disable_telemetry`.
    - SIGTERM is handled as Ctrl-C: a tracked run ends ``KILLED`` with what it logged, and the
      command prints one line and exits with code 130.
    - An expected error (bad data, bad config, missing file, unknown run) prints one line on
      stderr and exits with code 2. In a multirun job the line names the job and the job
      returns NaN instead of exiting, so the other jobs still run (the sweep callback then
      ends the sweep FAILED and exits with code 2). Under the Optuna sweeper the error is
      raised instead: the plugin records it as a failed trial (``hydra.sweeper.max_failure_rate``
      decides whether the search goes on), where a NaN objective would crash it.

    Unexpected errors keep their traceback: they are bugs.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from emotify_ml.mlflow_runs import disable_telemetry

        disable_telemetry()
        with interrupt_on_sigterm():
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt as exc:
                print(f"interrupted ({exc or 'Ctrl-C'}): a tracked run ended KILLED with what it had logged",
                      file=sys.stderr)
                sys.exit(EXIT_INTERRUPTED)
            except Exception as exc:
                error = expected_error(exc)
                if error is None:
                    raise
                line = " ".join(str(error).split())
                job = job_info()
                if job["multirun"]:
                    print(f"error in job {job['num']} ({' '.join(job['overrides'])}): {line}", file=sys.stderr)
                    if job["sweeper"] == "optuna":
                        raise
                    return float("nan")
                print(f"error: {line}", file=sys.stderr)
                sys.exit(EXIT_USAGE)

    return wrapper


def config_errors_exit_2(main):
    """Put above ``@hydra.main``: Hydra's own config errors as one line and exit code 2, as every config error.

    An override Hydra cannot parse (``frame_stride=[``), a key that does not exist
    (``bogus=1``), a value of the wrong type (``frame_stride=abc``), an unknown config
    group option: Hydra raises them before the task starts (so :func:`exit_on_error` never
    sees them) and prints them over several lines with exit code 1. Here they print
    ``error: <override>: <what is wrong>`` and exit 2. ``HYDRA_FULL_ERROR=1`` keeps Hydra's
    own report.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        import os

        if os.environ.get("HYDRA_FULL_ERROR"):
            return main(*args, **kwargs)
        os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing and exiting 1; restored below
        try:
            return main(*args, **kwargs)
        except Exception as exc:
            line = config_error_line(exc)
            if line is None:
                raise
            print(f"error: {line}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        finally:
            os.environ.pop("HYDRA_FULL_ERROR", None)

    return wrapper


def config_error_line(exc: BaseException) -> str | None:
    """One line for an error Hydra raises while composing the config (None for any other error)."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    def first_line(error) -> str:
        return (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")

    if isinstance(exc, OverrideParseException):
        return (f"{exc.override}: not a valid override ({first_line(exc.message)}); "
                "see https://hydra.cc/docs/advanced/override_grammar/basic/")
    if not isinstance(exc, (ConfigCompositionException, MissingConfigException)):
        return None  # an OmegaConf error of the task itself (cfg.no_such_key) is a bug: its traceback stays
    parts = [first_line(exc)]
    if isinstance(exc.__cause__, OmegaConfBaseException):
        parts.append(first_line(exc.__cause__))
    lines = str(exc).splitlines()
    hint = next((i for i, line in enumerate(lines) if line.startswith(("To append", "Available options"))), None)
    if hint is not None:  # "Available options in 'classifier':" then one option per indented line
        options = list(itertools.takewhile(str.strip, (line.strip() if line[:1] in " \t" else ""
                                                       for line in lines[hint + 1:])))
        parts[-1] += "; " + lines[hint].strip() + (" " + ", ".join(options) if options else "")
    return " ".join(": ".join(parts).split())


@contextlib.contextmanager
def interrupt_on_sigterm():
    """Within the block, SIGTERM raises ``KeyboardInterrupt("SIGTERM")`` as Ctrl-C does (main thread only)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def raise_interrupt(signum, frame):
    """Signal handler: raise ``KeyboardInterrupt`` named after the signal (``SIGTERM``)."""
    import signal

    raise KeyboardInterrupt(signal.Signals(signum).name)
