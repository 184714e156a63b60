"""keras.applications' EfficientNetB0, with a clear error when its weights are unreachable."""

from __future__ import annotations

import os

import keras

from transferlab.backbones.constants import KERAS_B0_WEIGHTS_FILE, KERAS_B0_WEIGHTS_URL, OFFLINE_PRETRAINED
from transferlab.errors import TransferlabError


def keras_weights_path() -> str:
    """Where keras.applications looks for (and caches) EfficientNetB0's no-top weights."""
    # Keras reads $KERAS_HOME once, at import time, and exposes the result only
    # through this private accessor; fall back to its documented default.
    try:
        from keras.src.backend.config import keras_home

        home = keras_home()
    except ImportError:
        home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(os.path.expanduser(home), "models", KERAS_B0_WEIGHTS_FILE)


def build_efficientnet_b0(input_shape, pretrained: bool) -> keras.Model:
    """EfficientNetB0 without its top; its Rescaling/Normalization layers expect 0..255 RGB.

    Pretrained weights go through Keras' own download cache ($KERAS_HOME/models/,
    md5-checked), so users who are online get them as usual.
    """
    if not pretrained:
        return keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=tuple(input_shape))
    try:
        return keras.applications.EfficientNetB0(include_top=False, weights="imagenet", input_shape=tuple(input_shape))
    except Exception as exc:  # Keras raises a bare Exception for a failed download
        raise TransferlabError(
            f"ImageNet weights for efficientnet_b0 could not be downloaded or found in the Keras cache. "
            f"Keras looks for the file {KERAS_B0_WEIGHTS_FILE} at {keras_weights_path()} "
            f"($KERAS_HOME/models/, default ~/.keras/models/) and otherwise downloads it from "
            f"{KERAS_B0_WEIGHTS_URL} ({exc}). Without network access, choose a backbone whose "
            f"pretrained weights work offline ({', '.join(OFFLINE_PRETRAINED)}) or set pretrained: false."
        ) from exc
