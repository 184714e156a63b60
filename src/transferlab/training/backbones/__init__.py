"""Backbone registry: feature extractors that take RGB in 0..255.

    from transferlab.training.backbones import BACKBONES, build_backbone, Backbone, UnknownBackboneError
    backbone = build_backbone("mobilenet_v2", (64, 192, 3), pretrained=True)

Each model does its own preprocessing in its first layers. Converted offline
weights are cached under ``$TRANSFERLAB_CACHE`` (default ``~/.cache/transferlab``).
"""

from transferlab.training.backbones.registry import (
    BACKBONES,
    Backbone,
    UnknownBackboneError,
    build_backbone,
    build_imagenet_classifier,
)
from transferlab.training.backbones.weight_cache import cache_dir

__all__ = [
    "BACKBONES",
    "Backbone",
    "UnknownBackboneError",
    "build_backbone",
    "build_imagenet_classifier",
    "cache_dir",
]
