"""keras.applications' EfficientNetB0, with a clear error when its weights are unreachable."""

from __future__ import annotations

import os

import keras
import numpy as np

from transferlab.training.backbones.constants import KERAS_B0_WEIGHTS_FILE, KERAS_B0_WEIGHTS_URL, OFFLINE_PRETRAINED
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


# ImageNet statistics of EfficientNet's preprocessing (keras.applications.efficientnet).
IMAGENET_MEAN_RGB = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STDDEV_RGB = np.array([0.229, 0.224, 0.225], np.float32)


def _normalization_layer(model: keras.Model) -> keras.layers.Normalization:
    (layer,) = [x for x in model.layers if isinstance(x, keras.layers.Normalization)]
    return layer


def _imagenet_weights_file() -> str:
    """Keras' cached (or downloaded) no-top weight file, checked against the hash Keras pins."""
    from keras.src.applications import efficientnet as keras_efficientnet  # the hash table lives here only

    return keras.utils.get_file(KERAS_B0_WEIGHTS_FILE, KERAS_B0_WEIGHTS_URL, cache_subdir="models",
                                file_hash=keras_efficientnet.WEIGHTS_HASHES["b0"][1])


def _set_imagenet_preprocessing(model: keras.Model, source: str | None) -> None:
    """Both arms normalise their input with ImageNet's statistics, in the same layers.

    keras.applications builds a different graph for ``weights="imagenet"`` (an extra
    Rescaling by 1/sqrt(std) after the Normalization, a workaround for tensorflow#49930) than
    for ``weights=None``, whose Normalization is never adapted and so is the identity: the
    random-init arm would see 0..1 inputs and the ImageNet arm standardised ones. Here both
    arms use the ``weights=None`` graph and its Normalization does the whole ImageNet
    transform, ``(x - mean) / (std * sqrt(std))``, i.e. variance ``std**3``. With ``source``
    (the weight file) its stored statistics must be ImageNet's, or the arms would differ.
    """
    layer = _normalization_layer(model)
    if source is not None:
        mean, variance, _ = layer.get_weights()
        if not (np.allclose(mean, IMAGENET_MEAN_RGB, atol=1e-3) and
                np.allclose(variance, IMAGENET_STDDEV_RGB**2, atol=1e-3)):
            raise TransferlabError(
                f"{source}: its input normalisation (mean {np.round(mean, 3).tolist()}, variance "
                f"{np.round(variance, 4).tolist()}) is not ImageNet's, so the pretrained and random-init arms "
                "would see differently preprocessed inputs: delete the file so Keras downloads it again")
    layer.set_weights([IMAGENET_MEAN_RGB, IMAGENET_STDDEV_RGB**3, np.array(0, dtype=layer.get_weights()[2].dtype)])
    layer.finalize_state()  # the layer computes with tensors copied from its variables: refresh them


def build_efficientnet_b0(input_shape, pretrained: bool) -> keras.Model:
    """EfficientNetB0 without its top; its Rescaling/Normalization layers expect 0..255 RGB.

    The same graph and preprocessing for both arms (:func:`_set_imagenet_preprocessing`);
    ``pretrained`` only loads Keras' ImageNet weights into it, through Keras' own download
    cache ($KERAS_HOME/models/, hash-checked), so users who are online get them as usual.
    """
    model = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=tuple(input_shape))
    if not pretrained:
        _set_imagenet_preprocessing(model, None)
        return model
    try:
        path = _imagenet_weights_file()
    except Exception as exc:  # Keras raises a bare Exception for a failed download
        raise TransferlabError(
            f"ImageNet weights for efficientnet_b0 could not be downloaded or found in the Keras cache. "
            f"Keras looks for the file {KERAS_B0_WEIGHTS_FILE} at {keras_weights_path()} "
            f"($KERAS_HOME/models/, default ~/.keras/models/) and otherwise downloads it from "
            f"{KERAS_B0_WEIGHTS_URL} ({exc}). Without network access, choose a backbone whose "
            f"pretrained weights work offline ({', '.join(OFFLINE_PRETRAINED)}) or set pretrained: false."
        ) from exc
    # The Rescaling that weights="imagenet" adds has no weights, so the file's weights fit this graph.
    model.load_weights(path)
    _set_imagenet_preprocessing(model, path)
    return model
