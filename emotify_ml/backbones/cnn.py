"""A VGG-style (or residual) CNN for 48x48 grey faces, with its preprocessing and augmentation.

The model carries its own normalisation (a ``Rescaling`` layer), so it takes
uint8-valued (N, 48, 48, 1) input exactly as stored; training and serving
cannot drift apart. Augmentation lives in a separate model applied in the
input pipeline during training only.
"""

from __future__ import annotations

from pathlib import Path

EMBEDDING_LAYER = "embedding"
"""Name of the penultimate dense layer whose activations are the face embedding."""

DEFAULT_BACKBONE = Path(__file__).resolve().parent / "weights" / "emotify_vgg.keras"
"""The backbone committed to the repo (see ``weights/README.md`` for how it was made)."""


def build_backbone(
    *,
    input_size: int = 48,
    n_classes: int = 7,
    widths=(32, 64, 128, 256),
    convs_per_block=(2, 2, 3, 3),
    embedding_dim: int = 256,
    dropout: float = 0.4,
    weight_decay: float = 0.0,
    residual: bool = False,
    squeeze_excite: int = 0,
):
    """Build the backbone: conv blocks (conv-BN-ReLU, max-pool) → global pool → embedding → softmax.

    Parameters
    ----------
    input_size : int
        Side of the square grey input.
    n_classes : int
        Output classes.
    widths, convs_per_block : sequences of int
        Filters and number of 3x3 convolutions of each block; a 2x2 max-pool follows every block but the last.
    embedding_dim : int
        Units of the penultimate dense layer (named :data:`EMBEDDING_LAYER`).
    dropout : float
        Dropout before the embedding and before the classifier.
    weight_decay : float
        L2 on conv kernels (0 with AdamW, which decays weights itself).
    residual : bool
        Pair each block's convolutions into residual units (He et al. 2016): conv-BN-ReLU-conv-BN,
        added to the unit's input (through a 1x1 conv-BN where the width changes), then ReLU. Every
        entry of ``convs_per_block`` must then be even. The same 3x3 convolutions (and multiply-adds)
        as the plain net, plus the 1x1 projections.
    squeeze_excite : int
        With ``residual``: reduction ratio of a squeeze-and-excitation gate on each unit's output
        (Hu et al. 2018); 0: none.
    """
    from emotify_ml.extras import require_keras

    keras = require_keras("building a backbone")
    from keras import layers

    check_architecture(widths=widths, convs_per_block=convs_per_block, residual=residual,
                       squeeze_excite=squeeze_excite)
    reg = keras.regularizers.L2(weight_decay) if weight_decay else None

    def conv_bn(x, width, conv_name, bn_name, kernel=3):
        x = layers.Conv2D(width, kernel, padding="same", use_bias=False, kernel_regularizer=reg, name=conv_name)(x)
        return layers.BatchNormalization(name=bn_name)(x)

    def residual_unit(x, width, name):
        skip = x if x.shape[-1] == width else conv_bn(x, width, f"{name}_proj_conv", f"{name}_proj_bn", kernel=1)
        y = layers.Activation("relu", name=f"{name}_relu0")(conv_bn(x, width, f"{name}_0_conv", f"{name}_0_bn"))
        y = conv_bn(y, width, f"{name}_1_conv", f"{name}_1_bn")
        if squeeze_excite:
            gate = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(y)
            gate = layers.Dense(max(width // squeeze_excite, 4), activation="relu", name=f"{name}_se_reduce")(gate)
            gate = layers.Dense(width, activation="sigmoid", name=f"{name}_se_expand")(gate)
            y = layers.Multiply(name=f"{name}_se")([y, gate])
        return layers.Activation("relu", name=f"{name}_relu1")(layers.Add(name=f"{name}_add")([y, skip]))

    inputs = keras.Input((input_size, input_size, 1), name="face")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(inputs)
    for b, (width, n_conv) in enumerate(zip(widths, convs_per_block)):
        if residual:
            for u in range(n_conv // 2):
                x = residual_unit(x, width, f"b{b}_u{u}")
        else:
            for c in range(n_conv):
                x = layers.Activation("relu", name=f"b{b}_relu{c}")(conv_bn(x, width, f"b{b}_conv{c}", f"b{b}_bn{c}"))
        if b < len(widths) - 1:
            x = layers.MaxPooling2D(name=f"b{b}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="drop_gap")(x)
    x = layers.Dense(embedding_dim, activation="relu", name=EMBEDDING_LAYER)(x)
    x = layers.Dropout(dropout, name="drop_embedding")(x)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="emotion")(x)
    return keras.Model(inputs, outputs, name="emotify_resnet" if residual else "emotify_vgg")


def check_architecture(*, widths, convs_per_block, residual: bool = False, squeeze_excite: int = 0) -> None:
    """Check the net's shape settings of :func:`build_backbone` (callers check them before a tracked run opens).

    Raises
    ------
    ValueError
        ``widths`` and ``convs_per_block`` of different lengths, an odd ``convs_per_block`` entry
        with ``residual``, or ``squeeze_excite`` without ``residual``.
    """
    if len(widths) != len(convs_per_block):
        raise ValueError(f"widths and convs_per_block must have the same length; got {len(widths)} and {len(convs_per_block)}")
    if residual and any(n % 2 for n in convs_per_block):
        raise ValueError(f"residual units pair convolutions: convs_per_block must be even; got {list(convs_per_block)}")
    if squeeze_excite and not residual:
        raise ValueError("squeeze_excite gates residual units: set residual=True too")


def build_augmenter(
    *,
    flip: bool = True,
    translation: float = 0.1,
    rotation_degrees: float = 12.0,
    zoom: float = 0.12,
    contrast: float = 0.25,
    brightness: float = 0.2,
    erasing: float = 0.0,
    seed: int | None = None,
):
    """Training-time augmentation as a Keras model on uint8-valued (N, H, W, 1) float batches.

    Shifts, rotations and zoom model detector crops that are off-centre, tilted
    and of other margins; contrast and brightness model other cameras. With
    ``erasing > 0`` a random rectangle (up to a quarter of the face) is blanked
    with that probability per image.
    """
    import keras
    from keras import layers

    aug = []
    if flip:
        aug.append(layers.RandomFlip("horizontal", seed=seed))
    if rotation_degrees:
        aug.append(layers.RandomRotation(rotation_degrees / 360.0, fill_mode="reflect", seed=seed))
    if zoom:
        aug.append(layers.RandomZoom((-zoom, zoom), fill_mode="reflect", seed=seed))
    if translation:
        aug.append(layers.RandomTranslation(translation, translation, fill_mode="reflect", seed=seed))
    if contrast:
        aug.append(layers.RandomContrast(contrast, value_range=(0, 255), seed=seed))
    if brightness:
        aug.append(layers.RandomBrightness(brightness, value_range=(0, 255), seed=seed))
    if erasing:
        aug.append(RandomErasing(erasing, seed=seed))
    return keras.Sequential(aug, name="augment")


def _random_erasing_layer():
    import keras

    @keras.saving.register_keras_serializable(package="emotify")
    class RandomErasing(keras.layers.Layer):
        """Blank one random rectangle (side 10-50 % of the image) with probability ``rate``."""

        def __init__(self, rate=0.25, seed=None, **kwargs):
            super().__init__(**kwargs)
            self.rate = rate
            self.seed = seed
            self._gen = keras.random.SeedGenerator(seed)

        def call(self, x, training=True):
            from keras import ops

            if not training:
                return x
            shape = ops.shape(x)
            n, h, w = shape[0], shape[1], shape[2]
            u = keras.random.uniform((n, 5), seed=self._gen)
            eh = ops.cast((0.1 + 0.4 * u[:, 0]) * ops.cast(h, "float32"), "int32")
            ew = ops.cast((0.1 + 0.4 * u[:, 1]) * ops.cast(w, "float32"), "int32")
            y0 = ops.cast(u[:, 2] * ops.cast(h - eh, "float32"), "int32")
            x0 = ops.cast(u[:, 3] * ops.cast(w - ew, "float32"), "int32")
            rows = ops.arange(h)[None, :, None]
            cols = ops.arange(w)[None, None, :]
            inside = ((rows >= y0[:, None, None]) & (rows < (y0 + eh)[:, None, None])
                      & (cols >= x0[:, None, None]) & (cols < (x0 + ew)[:, None, None]))
            apply = (u[:, 4] < self.rate)[:, None, None]
            mask = ops.cast(inside & apply, x.dtype)[..., None]
            return x * (1 - mask) + ops.mean(x, axis=(1, 2, 3), keepdims=True) * mask

        def get_config(self):
            return {**super().get_config(), "rate": self.rate, "seed": self.seed}

    return RandomErasing


def RandomErasing(rate=0.25, seed=None):  # noqa: N802 - a layer factory, named like the layer
    """Random-erasing augmentation layer (defined lazily so importing this module stays light)."""
    return _random_erasing_layer()(rate=rate, seed=seed)

