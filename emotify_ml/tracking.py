"""MLflow helpers: one tracked run per job, with everything needed to reproduce it.

Library code takes plain values (a tracking URI, an experiment name, a flat
dict of params); no Hydra here. A run that raises is ended as FAILED with the
error as a tag, never left RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
"""Local sqlite store in the working directory: ``mlflow ui --backend-store-uri sqlite:///mlflow.db``."""

DEFAULT_EXPERIMENT = "emotify"
TRACKED_PACKAGES = ("emotify", "numpy", "scikit-learn", "scikit-image", "tensorflow", "tensorflow-cpu",
                    "keras", "opencv-python-headless", "mlflow", "hydra-core", "lightgbm", "pandas")


def git_info(path=None) -> dict[str, str]:
    """Commit, branch and dirty flag of the checkout holding ``path`` (empty values outside git)."""
    cwd = str(path or Path(__file__).resolve().parent)

    def git(*args):
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    status = git("status", "--porcelain", "--untracked-files=no")
    commit = git("rev-parse", "HEAD")
    return {"git_commit": commit, "git_branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "git_dirty": str(bool(status)).lower() if commit else ""}


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide results, plus Python and the platform."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def flatten(d, prefix: str = "", sep: str = ".") -> dict[str, object]:
    """Flatten nested dicts/lists into ``a.b.c`` keys (MLflow params are flat)."""
    items: dict[str, object] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            items.update(flatten(v, f"{prefix}{sep}{k}" if prefix else str(k), sep))
    elif isinstance(d, (list, tuple)) and d and all(isinstance(v, dict) for v in d):
        for i, v in enumerate(d):
            items.update(flatten(v, f"{prefix}{sep}{i}", sep))
    else:
        items[prefix] = d
    return items


def log_params_flat(params: dict) -> None:
    """Log a nested dict as flat MLflow params (values cut to MLflow's 6000-char limit)."""
    import mlflow

    flat = {k: (str(v)[:6000] if v is not None else "None") for k, v in flatten(params).items()}
    keys = sorted(flat)
    for i in range(0, len(keys), 100):
        mlflow.log_params({k: flat[k] for k in keys[i : i + 100]})


def set_tracking(tracking_uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT):
    """Point MLflow at ``tracking_uri`` (default: local sqlite) and select ``experiment``."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri or DEFAULT_TRACKING_URI)
    return mlflow.set_experiment(experiment)


@contextlib.contextmanager
def tracked_run(*, tracking_uri=None, experiment=DEFAULT_EXPERIMENT, run_name=None, nested=False,
                parent_run_id=None, run_id=None, config=None, tags=None):
    """Start an MLflow run that records provenance and ends FAILED on any exception.

    Logs the config (flat params plus ``config.json``), git commit and dirty
    flag, package versions and the command line. ``run_id`` resumes an existing
    run (an interrupted training). On an exception the run is
    tagged with ``error`` / ``error_type`` and ended ``FAILED`` before the
    exception propagates.
    """
    import mlflow

    set_tracking(tracking_uri, experiment)
    run_tags = {**git_info(), "command": " ".join(sys.argv)[:5000], **(tags or {})}
    if parent_run_id:
        run_tags["mlflow.parentRunId"] = parent_run_id
    with contextlib.ExitStack() as stack:
        run = stack.enter_context(
            mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name,
                             nested=nested or mlflow.active_run() is not None, tags=run_tags)
        )
        try:
            if config is not None and run_id is None:
                log_params_flat(config)
                mlflow.log_dict(config, "config.json")
            mlflow.log_dict(package_versions(), "environment/packages.json")
            yield run
        except BaseException as exc:
            mlflow.set_tags({"error": f"{type(exc).__name__}: {exc}"[:5000], "error_type": type(exc).__name__})
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            mlflow.end_run(status=status)
            raise


def log_json(obj, artifact_file: str) -> None:
    """Log a JSON-serialisable object as an artifact."""
    import mlflow

    mlflow.log_text(json.dumps(obj, indent=2, default=str), artifact_file)
