"""Exact Keras ports of EfficientNet-Lite0 and torchvision's MobileNetV2.

Both are stacks of inverted-residual blocks (1x1 expand, depthwise conv, 1x1
project, identity skip when shape allows) between a strided 3x3 stem and a
1x1 head conv, with ReLU6 throughout. They differ only in the block table,
padding style, BatchNorm epsilon, input preprocessing and the key names of
their PyTorch weight files, which is what :class:`PortSpec` holds.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Callable

import keras

from transferlab.training.backbones import constants as C
from transferlab.training.backbones.layers import ConvBuilder, Padding

#: (conv key prefix, batchnorm key prefix) of one conv-bn pair in a state dict.
SourcePair = tuple[str, str]


@dataclass(frozen=True)
class PortSpec:
    """Everything that distinguishes one inverted-residual port from another."""

    name: str
    stages: tuple[tuple[int, int, int, int, int, int], ...]
    padding: Padding
    bn_epsilon: float
    preprocess: Callable[[], list[keras.layers.Layer]]
    stem_source: SourcePair
    head_source: SourcePair
    classifier_source: str
    #: (block index counted from 0, has expand conv) -> {"expand"?, "dw", "project"}
    block_sources: Callable[[int, bool], dict[str, SourcePair]]


def _lite_preprocess() -> list[keras.layers.Layer]:
    # (x - 127) / 128 as one affine layer.
    return [
        keras.layers.Rescaling(
            1.0 / C.LITE_INPUT_SCALE, offset=-C.LITE_INPUT_OFFSET / C.LITE_INPUT_SCALE, name="preprocess_scale"
        )
    ]


def _torchvision_preprocess() -> list[keras.layers.Layer]:
    # torchvision's transforms: ToTensor (x / 255) then Normalize(mean, std).
    return [
        keras.layers.Rescaling(1.0 / 255.0, name="preprocess_scale"),
        keras.layers.Normalization(
            mean=list(C.IMAGENET_MEAN), variance=[s * s for s in C.IMAGENET_STD], name="preprocess_normalize"
        ),
    ]


def _lite_block_sources(index: int, has_expand: bool) -> dict[str, SourcePair]:
    prefix = f"_blocks.{index}"
    sources = {
        "dw": (f"{prefix}._depthwise_conv", f"{prefix}._bn1"),
        "project": (f"{prefix}._project_conv", f"{prefix}._bn2"),
    }
    if has_expand:
        sources["expand"] = (f"{prefix}._expand_conv", f"{prefix}._bn0")
    return sources


def _torchvision_block_sources(index: int, has_expand: bool) -> dict[str, SourcePair]:
    # features.0 is the stem; torchvision numbers the conv.* children
    # sequentially, so the keys shift by one when there is no expand conv.
    prefix = f"features.{index + 1}.conv"
    if not has_expand:
        return {"dw": (f"{prefix}.0.0", f"{prefix}.0.1"), "project": (f"{prefix}.1", f"{prefix}.2")}
    return {
        "expand": (f"{prefix}.0.0", f"{prefix}.0.1"),
        "dw": (f"{prefix}.1.0", f"{prefix}.1.1"),
        "project": (f"{prefix}.2", f"{prefix}.3"),
    }


#: torchvision's index of the head conv in ``features``: after the stem and every block.
_MOBILENET_V2_HEAD = 1 + sum(stage[0] for stage in C.MOBILENET_V2_STAGES)

EFFICIENTNET_LITE0 = PortSpec(
    name="efficientnet_lite0",
    stages=C.EFFICIENTNET_B0_STAGES,
    padding="same",  # the reference pads like TensorFlow's "SAME"
    bn_epsilon=C.LITE_BN_EPSILON,
    preprocess=_lite_preprocess,
    stem_source=("_conv_stem", "_bn0"),
    head_source=("_conv_head", "_bn1"),
    classifier_source="_fc",
    block_sources=_lite_block_sources,
)

MOBILENET_V2 = PortSpec(
    name="mobilenet_v2",
    stages=C.MOBILENET_V2_STAGES,
    padding="symmetric",  # torchvision pads 1 on every side of 3x3 convs
    bn_epsilon=C.TORCHVISION_BN_EPSILON,
    preprocess=_torchvision_preprocess,
    stem_source=("features.0.0", "features.0.1"),
    head_source=(f"features.{_MOBILENET_V2_HEAD}.0", f"features.{_MOBILENET_V2_HEAD}.1"),
    classifier_source="classifier.1",
    block_sources=_torchvision_block_sources,
)

#: The name of the classifier layer added by ``with_top``.
CLASSIFIER_LAYER = "predictions"


def _inverted_residual(builder: ConvBuilder, x, in_ch, out_ch, kernel, stride, expand, name, sources):
    """One inverted-residual block; the skip is an identity add, as in both references."""
    inputs = x
    if expand != 1:
        x = builder.conv_bn(x, in_ch * expand, 1, 1, f"{name}_expand", source=sources["expand"])
    x = builder.conv_bn(x, None, kernel, stride, f"{name}_dw", depthwise=True, source=sources["dw"])
    x = builder.conv_bn(x, out_ch, 1, 1, f"{name}_project", activation=None, source=sources["project"])
    if stride == 1 and in_ch == out_ch:
        x = keras.layers.Add(name=f"{name}_add")([inputs, x])
    return x


def build_port(spec: PortSpec, input_shape, with_top: bool = False) -> tuple[keras.Model, dict[str, tuple[str, str]]]:
    """Build the port's Keras model and its weight-source map.

    Returns ``(model, sources)``: ``sources`` maps Keras layer names to
    ``(kind, state-dict key prefix)``. It always includes the ImageNet
    classifier, so weights converted once serve models with and without it.
    With ``with_top`` the model ends in global average pooling and a
    1000-way Dense layer giving logits; otherwise in the head's feature map.
    """
    builder = ConvBuilder(padding=spec.padding, bn_epsilon=spec.bn_epsilon)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for layer in spec.preprocess():
        x = layer(x)
    x = builder.conv_bn(x, C.STEM_FILTERS, 3, 2, "stem", source=spec.stem_source)
    index = 0
    for stage, (repeats, kernel, stride, expand, in_ch, out_ch) in enumerate(spec.stages, start=1):
        for repeat in range(repeats):
            # Keras' EfficientNet naming: block<stage><a, b, c...>.
            name = f"block{stage}{string.ascii_lowercase[repeat]}"
            first = repeat == 0
            x = _inverted_residual(
                builder, x, in_ch if first else out_ch, out_ch, kernel, stride if first else 1, expand, name,
                spec.block_sources(index, expand != 1),
            )
            index += 1
    x = builder.conv_bn(x, C.HEAD_FILTERS, 1, 1, "top", source=spec.head_source)
    builder.sources[CLASSIFIER_LAYER] = ("dense", spec.classifier_source)
    if with_top:
        x = keras.layers.GlobalAveragePooling2D(name="top_pool")(x)
        x = keras.layers.Dense(C.IMAGENET_CLASSES, name=CLASSIFIER_LAYER)(x)
    return keras.Model(inputs, x, name=spec.name), builder.sources
