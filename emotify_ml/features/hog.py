"""HOG features of face crops as an sklearn transformer (scikit-image ``hog``)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from emotify_ml.exceptions import InputError


def _as_pair(value, name):
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them; got {value!r}")
    return tuple(int(v) for v in pair)


class HOGTransformer(TransformerMixin, BaseEstimator):
    """Histogram-of-oriented-gradients features of (N, H, W) grey face images.

    Wraps :func:`skimage.feature.hog`; every image must have the size seen in ``fit``.

    Parameters
    ----------
    orientations : int, default=9
        Gradient orientation bins.
    pixels_per_cell : int or (int, int), default=(8, 8)
        Cell size in pixels.
    cells_per_block : int or (int, int), default=(2, 2)
        Cells per normalisation block.
    block_norm : str, default="L2-Hys"
        Block normalisation of scikit-image.
    transform_sqrt : bool, default=True
        Power-law compression before gradients (reduces the effect of lighting).

    Examples
    --------
    >>> X = np.random.default_rng(0).integers(0, 255, (4, 48, 48), dtype=np.uint8)
    >>> HOGTransformer().fit(X).transform(X).shape
    (4, 900)
    """

    def __init__(self, *, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2),
                 block_norm="L2-Hys", transform_sqrt=True):
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.transform_sqrt = transform_sqrt

    def _check_images(self, X):
        X = np.asarray(X)
        if X.ndim != 3:
            raise InputError(f"HOGTransformer expects (N, H, W) grey images; got shape {X.shape} "
                             "(put a FacePreprocessor before it for colour or mixed-size crops)")
        return X

    def _hog(self, image):
        from skimage.feature import hog

        return hog(image, orientations=self.orientations, pixels_per_cell=self.pixels_per_cell_, cells_per_block=self.cells_per_block_,
                   block_norm=self.block_norm, transform_sqrt=self.transform_sqrt, feature_vector=True)

    def fit(self, X, y=None):
        X = self._check_images(X)
        if not isinstance(self.orientations, (int, np.integer)) or self.orientations < 1:
            raise ValueError(f"orientations must be a positive int; got {self.orientations!r}")
        self.pixels_per_cell_ = _as_pair(self.pixels_per_cell, "pixels_per_cell")
        self.cells_per_block_ = _as_pair(self.cells_per_block, "cells_per_block")
        cells = (X.shape[1] // self.pixels_per_cell_[0], X.shape[2] // self.pixels_per_cell_[1])
        if cells[0] < self.cells_per_block_[0] or cells[1] < self.cells_per_block_[1]:
            raise ValueError(f"images of {X.shape[1]}x{X.shape[2]} hold {cells} cells of {self.pixels_per_cell_} pixels, "
                             f"fewer than one block of {self.cells_per_block_} cells")
        self.image_shape_ = X.shape[1:]
        self.n_features_out_ = len(self._hog(np.zeros(self.image_shape_, np.float64)))
        self.n_features_in_ = int(np.prod(self.image_shape_))
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_out_")
        X = self._check_images(X)
        if X.shape[1:] != self.image_shape_:
            raise InputError(f"HOGTransformer was fitted on {self.image_shape_} images; got {X.shape[1:]}")
        out = np.empty((len(X), self.n_features_out_), np.float32)
        for i, image in enumerate(X):
            out[i] = self._hog(image)
        return out

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "n_features_out_")
        return np.array([f"hog{i}" for i in range(self.n_features_out_)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
