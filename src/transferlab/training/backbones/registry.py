"""The backbone registry: names, descriptions and :func:`build_backbone`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import keras

from transferlab.training.backbones import constants as C
from transferlab.training.backbones.inverted_residual import EFFICIENTNET_LITE0, MOBILENET_V2, PortSpec, build_port
from transferlab.training.backbones.keras_efficientnet import build_efficientnet_b0
from transferlab.training.backbones.layers import group_blocks
from transferlab.training.backbones.plain_cnn import build_plain_cnn
from transferlab.training.backbones.weight_cache import converted_weights, set_model_weights
from transferlab.errors import TransferlabError

#: name -> short description (for error messages and docs).
BACKBONES = {
    "efficientnet_b0": "keras.applications EfficientNetB0; ImageNet weights download via Keras (network once)",
    "efficientnet_lite0": "EfficientNet-Lite0 (no SE, ReLU6); ImageNet weights from a pip package, work offline",
    "mobilenet_v2": "torchvision MobileNetV2; ImageNet weights from a pip package, work offline",
    "plain_cnn": "small plain CNN baseline (~0.9 M parameters); no pretrained weights",
}

_PORTS: dict[str, PortSpec] = {spec.name: spec for spec in (EFFICIENTNET_LITE0, MOBILENET_V2)}


class UnknownBackboneError(TransferlabError):
    """A backbone name that is not in :data:`BACKBONES`."""


@dataclass(frozen=True)
class Backbone:
    """A feature extractor: 0..255 RGB in, last feature map (B, h, w, C) out.

    ``blocks`` lists layer names grouped into blocks from input to output (stem
    first, head conv last), for unfreezing the top N blocks when fine-tuning.
    """

    name: str
    model: keras.Model
    blocks: list[list[str]]
    pretrained: bool
    feature_channels: int


def _check_name(name: str) -> None:
    if name not in BACKBONES:
        close = difflib.get_close_matches(str(name), list(BACKBONES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownBackboneError(f"unknown backbone {name!r}.{hint} Valid backbones: {', '.join(BACKBONES)}.")


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[2] != 3 or min(shape[:2]) < C.MIN_INPUT_SIDE:
        raise TransferlabError(
            f"input_shape must be (height, width, 3) with height and width at least {C.MIN_INPUT_SIDE} "
            f"(the backbones downsample by 32); got {tuple(input_shape)}"
        )
    return shape


def _build_port(spec: PortSpec, input_shape, pretrained: bool, with_top: bool) -> keras.Model:
    model, sources = build_port(spec, input_shape, with_top=with_top)
    if pretrained:
        set_model_weights(model, converted_weights(spec.name, sources))
    return model


def build_backbone(name: str, input_shape: tuple[int, int, int], pretrained: bool) -> Backbone:
    """Build a registered backbone; ``pretrained`` changes only its initial weights."""
    _check_name(name)
    shape = _check_input_shape(input_shape)
    if name == "efficientnet_b0":
        model = build_efficientnet_b0(shape, pretrained)
    elif name == "plain_cnn":
        if pretrained:
            raise TransferlabError(
                "plain_cnn has no pretrained weights; set pretrained: false, or pick a pretrained "
                f"backbone ({', '.join(n for n in BACKBONES if n != 'plain_cnn')})"
            )
        model = build_plain_cnn(shape)
    else:
        model = _build_port(_PORTS[name], shape, pretrained, with_top=False)
    return Backbone(
        name=name,
        model=model,
        blocks=group_blocks(model),
        pretrained=bool(pretrained),
        feature_channels=int(model.output.shape[-1]),
    )


def build_imagenet_classifier(name: str) -> keras.Model:
    """A port with its pretrained 1000-class ImageNet head (logits), for checking the weights.

    Takes 224x224 RGB in 0..255, like the backbones. Only the ported backbones
    (efficientnet_lite0, mobilenet_v2) have one.
    """
    _check_name(name)
    if name not in _PORTS:
        raise TransferlabError(f"no ImageNet classifier port for {name}; available: {', '.join(_PORTS)}")
    return _build_port(_PORTS[name], C.IMAGENET_INPUT_SHAPE, pretrained=True, with_top=True)
