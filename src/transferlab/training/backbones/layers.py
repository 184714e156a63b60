"""Layer helpers shared by the ported backbones (plain Keras 3, any backend).

Layer names follow ``<block>_<part>`` (``stem_conv``, ``block2a_dw_bn``,
``top_act``) because :func:`group_blocks` derives the fine-tuning blocks from
the text before the first underscore, as in keras.applications' EfficientNet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import keras

from transferlab.training.backbones.constants import BN_MOMENTUM

#: Padding modes: ``"same"`` is TensorFlow's (extra row/column at the bottom/right
#: for strided convs), ``"symmetric"`` is PyTorch's ``padding=k // 2``.
Padding = Literal["same", "symmetric"]

#: Layer types that prepare the 0..255 input; they belong to no block.
_PREPROCESSING_TYPES = (keras.layers.InputLayer, keras.layers.Rescaling, keras.layers.Normalization)


@dataclass
class ConvBuilder:
    """Builds conv -> BatchNorm -> activation stacks and records weight sources.

    ``sources`` maps each Keras layer name that has weights to
    ``(kind, key prefix in the source state dict)``; the weight converter uses
    it, so an architecture and its weight mapping are written once, together.
    """

    padding: Padding
    bn_epsilon: float
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)

    def conv_bn(
        self,
        x,
        filters: int | None,
        kernel: int,
        stride: int,
        name: str,
        *,
        depthwise: bool = False,
        activation: str | None = "relu6",
        source: tuple[str, str] | None = None,
    ):
        """Conv (or depthwise conv when ``depthwise``) without bias, BatchNorm, activation.

        ``source`` is the (conv, batchnorm) key prefixes of pretrained weights.
        """
        padding = "same"
        if self.padding == "symmetric" and stride > 1 and kernel > 1:
            # PyTorch pads k//2 on every side; for stride 1 and odd kernels that
            # equals "same", so only strided convs need the explicit padding.
            x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
            padding = "valid"
        conv_name = f"{name}_dwconv" if depthwise else f"{name}_conv"
        if depthwise:
            conv = keras.layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False, name=conv_name)
        else:
            conv = keras.layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False, name=conv_name)
        x = conv(x)
        x = keras.layers.BatchNormalization(epsilon=self.bn_epsilon, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
        if activation is not None:
            x = keras.layers.Activation(activation, name=f"{name}_act")(x)
        if source is not None:
            conv_key, bn_key = source
            self.sources[conv_name] = ("dwconv" if depthwise else "conv", conv_key)
            self.sources[f"{name}_bn"] = ("bn", bn_key)
        return x


def group_blocks(model: keras.Model) -> list[list[str]]:
    """Group layer names into blocks by their prefix, in input-to-output order.

    Preprocessing layers (input, rescaling, normalization) belong to no block.
    """
    blocks: dict[str, list[str]] = {}
    for layer in model.layers:
        if isinstance(layer, _PREPROCESSING_TYPES):
            continue
        blocks.setdefault(layer.name.split("_", 1)[0], []).append(layer.name)
    return list(blocks.values())
