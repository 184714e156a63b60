"""A small plain CNN baseline (no pretrained weights exist for it)."""

from __future__ import annotations

import keras

from transferlab.training.backbones import constants as C
from transferlab.training.backbones.layers import ConvBuilder


def build_plain_cnn(input_shape) -> keras.Model:
    """Strided 3x3 stem, then stages of 3x3 conv-BN-ReLU whose first conv has stride 2.

    The strided first conv halves the work at full resolution (about twice the
    training speed of full-resolution first convs at 64x192 on a CPU).
    """
    builder = ConvBuilder(padding="same", bn_epsilon=C.PLAIN_CNN_BN_EPSILON)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="preprocess_scale")(inputs)
    x = builder.conv_bn(x, C.PLAIN_CNN_STEM_FILTERS, 3, 2, "stem", activation="relu")
    for stage, (filters, convs) in enumerate(C.PLAIN_CNN_STAGES, start=1):
        for i in range(convs):
            x = builder.conv_bn(x, filters, 3, 2 if i == 0 else 1, f"stage{stage}_{i + 1}", activation="relu")
    return keras.Model(inputs, x, name="plain_cnn")
