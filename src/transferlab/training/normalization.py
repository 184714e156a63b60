"""BatchNorm statistics that follow the weights on small data.

Keras' BatchNormalization keeps moving statistics with momentum 0.99: they average over
about 100 training steps. On a few hundred images that is several epochs, so while a
network trained from scratch changes quickly, validation (which uses the moving
statistics) sees stale ones and can predict one class for every image for many epochs,
although training accuracy climbs. The momentum is therefore chosen from the steps per
epoch, so the statistics average over a fraction of an epoch. It changes nothing for
frozen BatchNorm layers (inference mode: their pretrained statistics are never updated)
nor, at the default 0.99, for large training sets.
"""

from __future__ import annotations

import keras

DEFAULT_MOMENTUM = 0.99  # Keras' default
MIN_MOMENTUM = 0.9  # PyTorch's default (0.1 in its convention): a batch never dominates
WINDOW_FRACTION = 0.25  # the statistics average over at most a quarter of an epoch


def momentum_for(steps_per_epoch: int) -> float:
    """The momentum whose averaging window (1 / (1 - m) steps) is at most a quarter epoch."""
    window = max(1.0, steps_per_epoch * WINDOW_FRACTION)
    return float(min(DEFAULT_MOMENTUM, max(MIN_MOMENTUM, 1.0 - 1.0 / window)))


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def adapt_batchnorm_momentum(model: keras.Model, steps_per_epoch: int) -> float:
    """Set every BatchNorm layer's momentum from the steps per epoch; returns the momentum.

    Must run before the model is compiled and fitted (the momentum is read when the
    training step is traced).
    """
    momentum = momentum_for(steps_per_epoch)
    for layer in batchnorm_layers(model):
        layer.momentum = momentum
    return momentum
