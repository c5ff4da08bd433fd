"""Optional dependencies: TensorFlow and Keras come with the ``train`` extra.

``pip install emotify`` scores with the compiled (LiteRT) models: live, batch, the API, the
server and ``--actions`` need no TensorFlow. Training a backbone or a CNN pipeline, the Keras
runtime (``runtime=keras``) and compiling a model (``pipelines.export``) need
``pip install "emotify[train]"`` (the test extra includes it).
"""

from __future__ import annotations

TRAIN_EXTRA = 'pip install "emotify[train]"'


def require_keras(purpose: str):
    """``keras``, or a :class:`~emotify_ml.exceptions.MissingDependencyError` saying that ``purpose`` needs it."""
    try:
        import keras
    except ImportError:
        from emotify_ml.exceptions import MissingDependencyError

        raise MissingDependencyError(
            f"{purpose} needs TensorFlow and Keras, which are not installed: {TRAIN_EXTRA} (from a checkout: "
            'pip install -e ".[train]")') from None
    return keras


def set_random_seed(seed: int) -> None:
    """Seed Python's and NumPy's generators, and Keras' and TensorFlow's when they are installed."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    try:
        import keras
    except ImportError:
        return
    keras.utils.set_random_seed(seed)
