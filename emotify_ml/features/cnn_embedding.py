"""Backbone features as sklearn estimators: CNN embeddings, and the backbone's own softmax head.

Both hold the Keras model in memory and its ``.keras`` bytes in their state, so
a pickled Pipeline (and the MLflow model that wraps it) carries the weights:
nothing is read from the repo or downloaded when it is loaded elsewhere.
Inference is one compiled call per batch (``tf.function`` with a fixed input
signature, traced once), never per-image ``model.predict``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from emotify_ml.exceptions import InputError, ModelNotFoundError


def _keras_from_bytes(blob: bytes):
    from emotify_ml.extras import require_keras

    keras = require_keras("the Keras runtime of a CNN backbone (runtime=keras, fitting a cnn_* pipeline)")

    fd, path = tempfile.mkstemp(suffix=".keras")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        return keras.saving.load_model(path, compile=False, safe_mode=True)  # no deserialised code (lambda layers)
    finally:
        os.unlink(path)


class _BackboneMixin:
    """Loading, serialising and batched compiled calls shared by the backbone estimators."""

    def _load_backbone_bytes(self):
        from emotify_ml.backbones.cnn import DEFAULT_BACKBONE

        path = Path(self.model_path) if self.model_path else DEFAULT_BACKBONE
        if not path.is_file():
            raise ModelNotFoundError(f"backbone {str(path)!r} does not exist; train one with "
                                     "`python -m pipelines.train_backbone` or set model_path")
        return path.read_bytes()

    def _compiled(self):
        fn = self.__dict__.get("_fn")
        if fn is None:
            import tensorflow as tf

            model = self._build_callable(_keras_from_bytes(self.backbone_bytes_))
            size = self.input_shape_

            @tf.function(input_signature=[tf.TensorSpec([None, size[0], size[1], 1], tf.float32)], reduce_retracing=True)
            def fn(x):
                return model(x, training=False)

            self.__dict__["_fn"] = fn
        return fn

    def _run(self, X) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 3 or X.shape[1:] != tuple(self.input_shape_):
            raise InputError(f"{type(self).__name__} expects (N, {self.input_shape_[0]}, {self.input_shape_[1]}) grey "
                             f"images; got shape {X.shape} (put a FacePreprocessor before it)")
        fn = self._compiled()
        x = X.astype(np.float32)[..., None]
        out = []
        for i in range(0, len(x), self.batch_size):
            batch = x[i : i + self.batch_size]
            y = fn(batch).numpy()
            if self.flip_tta:
                y = (y + fn(batch[:, :, ::-1]).numpy()) / 2.0
            out.append(y.reshape(len(batch), -1))
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.n_outputs_), np.float32)

    def _fit_backbone(self, X):
        X = np.asarray(X)
        if X.ndim != 3:
            raise InputError(f"{type(self).__name__} expects (N, H, W) grey images; got shape {X.shape}")
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {self.batch_size!r}")
        self.backbone_bytes_ = self._load_backbone_bytes()
        self.__dict__.pop("_fn", None)
        model = _keras_from_bytes(self.backbone_bytes_)
        in_shape = tuple(model.input_shape[1:3])
        if X.shape[1:] != in_shape:
            raise InputError(f"the backbone takes {in_shape} images; got {X.shape[1:]} (set FacePreprocessor size)")
        self.input_shape_ = in_shape
        self.n_features_in_ = int(np.prod(in_shape))
        self.n_outputs_ = int(np.prod(self._build_callable(model).output_shape[1:]))
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_fn", None)  # the compiled function is rebuilt from backbone_bytes_ on first use
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.non_deterministic = False
        return tags


class CNNEmbedder(_BackboneMixin, TransformerMixin, BaseEstimator):
    """Face embeddings from a layer of the backbone (the penultimate dense layer by default).

    Parameters
    ----------
    model_path : str or None, default=None
        A ``.keras`` backbone; None is the backbone committed with the package.
    layer : str, default="embedding"
        Layer whose activations are the features (flattened).
    batch_size : int, default=256
        Images per compiled call.
    flip_tta : bool, default=False
        Average the features of each face and its mirror image.
    """

    def __init__(self, *, model_path=None, layer="embedding", batch_size=256, flip_tta=False):
        self.model_path = model_path
        self.layer = layer
        self.batch_size = batch_size
        self.flip_tta = flip_tta

    def _build_callable(self, model):
        import keras

        try:
            out = model.get_layer(self.layer).output
        except ValueError:
            names = [layer.name for layer in model.layers]
            raise ValueError(f"backbone has no layer {self.layer!r}; layers are {names}") from None
        return keras.Model(model.inputs, out)

    def fit(self, X, y=None):
        return self._fit_backbone(X)

    def transform(self, X):
        check_is_fitted(self, "backbone_bytes_")
        return self._run(X)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "n_outputs_")
        return np.array([f"cnn{i}" for i in range(self.n_outputs_)], dtype=object)


class BackboneClassifier(_BackboneMixin, ClassifierMixin, BaseEstimator):
    """The backbone's own softmax head as an sklearn classifier (the ``cnn_softmax`` reference).

    ``fit`` learns nothing from the data: it loads the backbone and records the classes.
    """

    def __init__(self, *, model_path=None, batch_size=256, flip_tta=False):
        self.model_path = model_path
        self.batch_size = batch_size
        self.flip_tta = flip_tta

    def _build_callable(self, model):
        return model

    def fit(self, X, y=None):
        self._fit_backbone(X)
        self.classes_ = np.arange(self.n_outputs_)
        return self

    def predict_proba(self, X):
        check_is_fitted(self, "backbone_bytes_")
        return self._run(X).astype(np.float64)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]
