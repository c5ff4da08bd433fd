"""The model kinds: what each takes and returns, its registered name, where its shipped model lies.

A kind is plain data plus two small functions (input preparation, MLflow signature), so
the one wrapper (:class:`~emotify_ml.models.wrapper.FittedModel`), the one pyfunc writer
and the one loader serve every kind alike. Nothing heavy is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from emotify_ml.labels import EMOTIONS, MPII_CATEGORIES, MPII_JOINTS

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
"""``shipped/<kind>``: the models shipped with the package, complete MLflow model folders."""

DEFAULT_REGISTERED_MODEL = "emotify-emotion"
"""The registered model whose ``@champion`` live and batch scoring load by default."""

ACTION_INPUT_COLUMNS: tuple[str, ...] = tuple(f"{j.replace(' ', '_')}_{ax}" for j in MPII_JOINTS for ax in "xy")
"""The 32 input columns of an action model (x, y of the MPII-16 joints in pixels; -1 or NaN = missing)."""


@dataclass(frozen=True)
class Kind:
    """One kind of model.

    Attributes
    ----------
    name : str
        ``"emotion"`` or ``"action"``.
    class_names : tuple of str
        The probability columns, in order.
    registered_name : str or None
        The registered model whose ``@champion`` is the default; None: the shipped model is.
    prepare : callable
        ``prepare(X, size) -> ndarray``: the caller's input as the estimator's input.
    assume_finite : bool
        Whether sklearn may skip its finiteness checks (the input was validated by ``prepare``).
    """

    name: str
    class_names: tuple[str, ...]
    registered_name: str | None
    prepare: Callable
    assume_finite: bool

    @property
    def shipped_dir(self) -> Path:
        """The model shipped with the package for this kind."""
        return SHIPPED_DIR / self.name

    def signature(self):
        """The MLflow signature of this kind's pyfunc model."""
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

        outputs = Schema([*(ColSpec("double", name) for name in self.class_names), ColSpec("string", "label")])
        if self.name == "emotion":
            # no input schema: MLflow would refuse a list of crops (and enforce one rank), where the model takes
            # (N, H, W) grey or (N, H, W, 3) BGR batches and lists of crops of any size, and checks them itself
            return ModelSignature(inputs=None, outputs=outputs)
        return ModelSignature(inputs=Schema([ColSpec("double", c) for c in ACTION_INPUT_COLUMNS]), outputs=outputs)

    def example(self, X):
        """An input example for MLflow (action poses as the 32 named columns, -1 = missing)."""
        if X is None or self.name == "emotion":
            return X
        import pandas as pd

        X = _poses(X)
        return pd.DataFrame(np.where(np.isnan(X), -1.0, X), columns=list(ACTION_INPUT_COLUMNS))


def _faces(X, size):
    from emotify_ml.features.preprocessing import to_model_input

    return to_model_input(X, size)


def _poses(X, size=None):
    from emotify_ml.actions.estimators import flat_poses

    if hasattr(X, "to_numpy"):  # a DataFrame of the 32 columns (the pyfunc input)
        if hasattr(X, "columns") and set(ACTION_INPUT_COLUMNS) <= set(X.columns):
            X = X[list(ACTION_INPUT_COLUMNS)]  # by name, whatever their order (a DataFrame is not positional)
        X = X.to_numpy(dtype=np.float64)
    return flat_poses(X)


KINDS: dict[str, Kind] = {
    "emotion": Kind("emotion", tuple(EMOTIONS), DEFAULT_REGISTERED_MODEL, _faces, True),
    "action": Kind("action", tuple(MPII_CATEGORIES), None, _poses, False),
}


def get_kind(kind: str) -> Kind:
    """The :class:`Kind` named ``kind``; ValueError naming the known ones otherwise."""
    try:
        return KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"kind must be one of {sorted(KINDS)}; got {kind!r}") from None
