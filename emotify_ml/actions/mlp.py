"""A small multilayer perceptron classifier for pose features: trained with Keras, scored with NumPy.

Training uses Keras (AdamW with cosine decay, batch normalisation, dropout and
Gaussian input noise). Once fitted, each network is a handful of NumPy arrays
(batch normalisation folded into the dense layers), so scoring one pose costs
tens of microseconds per network, needs no TensorFlow import, and the pickled
estimator (and the MLflow model around it) is a few MB of plain arrays.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

_CLIP = 6.0  # standardised inputs are clipped to ±6 standard deviations (outlier poses, bad keypoints)


class MLPPoseClassifier(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron over (pose) features; NaN inputs are allowed and mean-imputed.

    Inputs are standardised with the training mean and standard deviation (NaN
    ignored), clipped to ±6 and NaN set to 0 (the mean), so missing-joint features
    need no separate imputer; keep missing-joint indicators among the features.
    A column with no finite training value is always 0.

    Parameters
    ----------
    hidden : int or tuple of int, default (512, 512)
        Widths of the hidden layers (dense → batch norm → ReLU → dropout); an int is one layer.
    dropout : float, default 0.3
    noise : float, default 0.1
        Standard deviation of the Gaussian noise added to the standardised inputs while training.
    epochs : int, default 60
    batch_size : int, default 256
    learning_rate : float, default 2e-3
        Peak learning rate of AdamW, decayed to 0 by a cosine schedule.
    weight_decay : float, default 1e-3
    label_smoothing : float, default 0.0
    n_networks : int, default 1
        Train this many networks (seeds ``random_state``, ``random_state + 1``, ...) and
        average their probabilities: a cheap ensemble that is steadier than any one of them.
    random_state : int or None, default 0
        Seeds Keras (weights, dropout, noise, shuffling): the same data gives the same model.
        ``fit`` seeds Python's, NumPy's and TensorFlow's global generators with it (Keras
        offers no other way); None draws a fresh seed.
    verbose : int, default 0
        Keras ``fit`` verbosity.

    Attributes
    ----------
    classes_ : ndarray
    n_features_in_ : int
    mean_, scale_ : (n_features_in_,) ndarray
        Input standardisation (``scale_`` is inf for columns never finite in training);
        standardised inputs are then clipped to ±6.
    networks_ : list of list of (W, b)
        The fitted networks, batch normalisation folded in; each one's last pair gives logits.
    loss_curves_ : list of list of float
        Training loss per epoch of each network.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 4)); y = (X[:, 0] > 0).astype(int)
    >>> clf = MLPPoseClassifier(hidden=(8,), epochs=5).fit(X, y)
    >>> clf.predict_proba(X).shape
    (60, 2)
    """

    def __init__(self, *, hidden=(512, 512), dropout: float = 0.3, noise: float = 0.1, epochs: int = 60,
                 batch_size: int = 256, learning_rate: float = 2e-3, weight_decay: float = 1e-3,
                 label_smoothing: float = 0.0, n_networks: int = 1, random_state: int = 0, verbose: int = 0):
        self.hidden = hidden
        self.dropout = dropout
        self.noise = noise
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.n_networks = n_networks
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self):
        hidden = (self.hidden,) if isinstance(self.hidden, (int, np.integer)) else self.hidden
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise ValueError(f"hidden must be a layer width or a sequence of them; got {self.hidden!r}") from None
        if not all(isinstance(h, (int, np.integer)) and h > 0 for h in hidden):
            raise ValueError(f"hidden must be positive layer widths; got {self.hidden!r}")
        for name in ("epochs", "batch_size", "n_networks"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1); got {self.label_smoothing!r}")
        for name in ("noise", "learning_rate", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)!r}")
        if self.random_state is not None and not isinstance(self.random_state, (int, np.integer)):
            raise ValueError(f"random_state must be an int or None; got {self.random_state!r}")
        return hidden

    def _standardise(self, X):
        Z = (X - self.mean_) / self.scale_
        return np.nan_to_num(np.clip(Z, -_CLIP, _CLIP), nan=0.0).astype(np.float32)

    def fit(self, X, y):
        """Train ``n_networks`` networks on ``X`` (N, F), NaN allowed, and labels ``y``."""
        from emotify_ml.extras import require_keras

        keras = require_keras("fitting the MLP action classifier")

        hidden = self._check_params()
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        codes = encoder.transform(y)
        n_classes = len(self.classes_)
        seen = np.isfinite(X).any(axis=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: handled below
            mean, std = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
        self.mean_ = np.where(seen, mean, 0.0)
        self.scale_ = np.where(~seen, np.inf, np.where(std > 1e-9, std, 1.0))
        self.networks_, self.loss_curves_ = [], []
        if n_classes == 1:  # nothing to learn: predict_proba is 1 for the only class
            return self
        Z = self._standardise(X)

        seed = (int(self.random_state) if self.random_state is not None
                else int(np.random.default_rng().integers(2**31 - n_classes)))
        targets = np.eye(n_classes, dtype=np.float32)[codes]
        for k in range(int(self.n_networks)):
            net = self._build(keras, Z.shape[1], n_classes, hidden, len(Z), seed + k)
            history = net.fit(Z, targets, batch_size=int(self.batch_size), epochs=int(self.epochs), shuffle=True,
                              verbose=self.verbose)
            self.loss_curves_.append([float(v) for v in history.history["loss"]])
            self.networks_.append(_fold_layers(net))
            keras.backend.clear_session()  # free the graph; the folded arrays are all we keep
        return self

    def _build(self, keras, n_inputs, n_outputs, hidden, n_rows, seed):
        """A compiled Keras network: [noise] → (dense → batch norm → ReLU → [dropout])* → dense logits."""
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((n_inputs,))
        h = keras.layers.GaussianNoise(float(self.noise))(inputs) if self.noise > 0 else inputs
        for width in hidden:
            h = keras.layers.Dense(width, use_bias=False)(h)
            h = keras.layers.BatchNormalization()(h)
            h = keras.layers.Activation("relu")(h)
            if self.dropout > 0:
                h = keras.layers.Dropout(float(self.dropout))(h)
        net = keras.Model(inputs, keras.layers.Dense(n_outputs)(h))
        steps = int(self.epochs) * int(np.ceil(n_rows / self.batch_size))
        schedule = keras.optimizers.schedules.CosineDecay(float(self.learning_rate), max(steps, 1))
        net.compile(keras.optimizers.AdamW(schedule, weight_decay=float(self.weight_decay)),
                    keras.losses.CategoricalCrossentropy(from_logits=True,
                                                         label_smoothing=float(self.label_smoothing)))
        return net

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (N, n_classes) in the order of ``classes_``: the mean softmax of the networks."""
        check_is_fitted(self)
        return self._proba_array(validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64))

    def _proba_array(self, X) -> np.ndarray:
        """``predict_proba`` of checked (N, F) float64 rows (the lean scorer's entry, :mod:`emotify_ml.actions.lean`)."""
        if len(self.classes_) == 1:
            return np.ones((len(X), 1))
        Z = self._standardise(X)
        proba = np.zeros((len(X), len(self.classes_)))
        for layers in self.networks_:
            logits = _forward(layers, Z)
            logits -= logits.max(1, keepdims=True)
            p = np.exp(logits)
            proba += p / p.sum(1, keepdims=True)
        return proba / len(self.networks_)

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def _forward(layers, Z) -> np.ndarray:
    """Logits of one folded network: ReLU after every (W, b) pair but the last."""
    h = Z
    for W, b in layers[:-1]:
        h = np.maximum(h @ W + b, 0.0)
    W, b = layers[-1]
    return (h @ W + b).astype(np.float64)


def _fold_layers(net) -> list:
    """The Keras network (Dense → BatchNorm → ReLU [→ Dropout])* → Dense as NumPy (W, b) pairs, BN folded in."""
    import keras

    pairs = []
    for layer in net.layers:
        if isinstance(layer, keras.layers.Dense):
            weights = [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
            pairs.append((weights[0], weights[1] if len(weights) > 1 else np.zeros(weights[0].shape[1], np.float32)))
        elif isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = (np.asarray(w, dtype=np.float32) for w in layer.get_weights())
            factor = gamma / np.sqrt(var + layer.epsilon)
            W, b = pairs[-1]
            pairs[-1] = (W * factor, (b - mean) * factor + beta)
    return pairs
