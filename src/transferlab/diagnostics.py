"""Checks for the usual causes of "transfer learning made it worse".

Each check returns a :class:`Diagnostic` that either *fires* (with a message saying what
is wrong and what to do) or stays silent; the study report lists the ones that fired and
names the ones that were checked and passed.

- preprocessing: images not in the range the backbone expects (0-255 RGB here; every
  backbone of the registry rescales internally), e.g. 0-1 floats fed to ImageNet weights;
- batchnorm: BatchNorm layers of a pretrained backbone left trainable with small batches,
  whose noisy batch statistics overwrite the ImageNet ones;
- augmentation: a reference model trained without augmentation loses much of its
  accuracy on augmented test images, so the augmentation is stronger than the data's
  real variation;
- overfitting: validation accuracy plateaus while training accuracy keeps climbing;
- domain gap: a linear probe on ImageNet features is no better than on the features
  of a randomly initialised backbone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from transferlab.stats import Interval, difference_interval

# Thresholds; the report states them with every finding.
SMALL_BATCH = 16  # BatchNorm batch statistics are noisy below this
AUGMENT_MAX_RELATIVE_DROP = 0.5  # reference accuracy on augmented test images below half of clean
AUGMENT_MIN_ABSOLUTE_DROP = 0.05  # and at least 5 points lower
PLATEAU_WINDOW = 3  # epochs
PLATEAU_TOLERANCE = 0.01  # validation gains below this count as a plateau
TRAIN_CLIMB = 0.05  # training accuracy gain over the window that counts as climbing
EXPECTED_RANGE = (0.0, 255.0)


@dataclass(frozen=True)
class Diagnostic:
    name: str
    fired: bool
    message: str
    evidence: dict = field(default_factory=dict)

    def line(self) -> str:
        return f"{'FIRED' if self.fired else 'ok'} [{self.name}] {self.message}"


def check_preprocessing(images: np.ndarray, backbone: str, pretrained: bool = True,
                        expected: tuple[float, float] = EXPECTED_RANGE) -> Diagnostic:
    """Fires when the images fed to the model are not 0-255 RGB (e.g. 0-1 or -1..1 floats).

    Every backbone in the registry takes 0-255 and does its own normalisation; images
    already scaled to 0-1 reach the ImageNet filters as almost black pictures.
    """
    x = np.asarray(images)
    sample = x[: min(len(x), 256)].astype(np.float64) if len(x) else np.zeros(1)
    low, high = float(sample.min()), float(sample.max())
    evidence = {"min": low, "max": high, "dtype": str(x.dtype), "expected": list(expected), "backbone": backbone}
    what = "ImageNet weights" if pretrained else "weights"
    if high <= 1.0 + 1e-6 and expected[1] > 2:
        return Diagnostic("preprocessing", True,
                          f"images are in {low:.2g}..{high:.2g} but {backbone} expects {expected[0]:g}..{expected[1]:g} RGB "
                          f"and rescales internally: its {what} see near-black images. Feed uint8/0-255 images "
                          "(remove the extra /255 or normalisation).", evidence)
    if low < expected[0] - 1e-6 or high > expected[1] + 1e-6:
        return Diagnostic("preprocessing", True,
                          f"images span {low:.3g}..{high:.3g}, outside the {expected[0]:g}..{expected[1]:g} that {backbone} "
                          "expects: remove the extra normalisation before the model.", evidence)
    return Diagnostic("preprocessing", False, f"inputs in {low:.0f}..{high:.0f}, as {backbone} expects", evidence)


def trainable_batchnorm_layers(model) -> list[str]:
    """Names of BatchNormalization layers (nested ones included) that would update their statistics."""
    import keras

    names = []
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            names.append(layer.name)
    return names


def check_batchnorm(trainable_bn: int, total_bn: int, batch_size: int, pretrained: bool,
                    small_batch: int = SMALL_BATCH) -> Diagnostic:
    """Fires when a pretrained backbone trains with BatchNorm layers trainable and batches < ``small_batch``.

    ``trainable_bn``: BatchNorm layers of the *backbone* left trainable while fine-tuning
    (:func:`trainable_batchnorm_layers` on the backbone model after unfreezing).
    """
    evidence = {"trainable_bn": int(trainable_bn), "total_bn": int(total_bn), "batch_size": int(batch_size),
                "threshold": small_batch}
    if pretrained and trainable_bn > 0 and batch_size < small_batch:
        return Diagnostic("batchnorm", True,
                          f"{trainable_bn} of {total_bn} BatchNorm layers of the pretrained backbone were trainable "
                          f"with batches of {batch_size} (< {small_batch}): their noisy batch statistics replace the "
                          "ImageNet ones. Keep BatchNorm frozen (train.bn_trainable: false) or use larger batches.",
                          evidence)
    state = "frozen" if trainable_bn == 0 else f"trainable with batches of {batch_size}"
    return Diagnostic("batchnorm", False, f"backbone BatchNorm layers {state}", evidence)


def check_augmentation(clean_accuracy: float, augmented_accuracy: float, strength: float,
                       max_relative_drop: float = AUGMENT_MAX_RELATIVE_DROP,
                       min_absolute_drop: float = AUGMENT_MIN_ABSOLUTE_DROP) -> Diagnostic:
    """Fires when a reference model (trained without augmentation) loses more than
    ``max_relative_drop`` of its clean-test accuracy on test images augmented at ``strength``."""
    drop = clean_accuracy - augmented_accuracy
    relative = drop / clean_accuracy if clean_accuracy > 0 else 0.0
    evidence = {"clean": clean_accuracy, "augmented": augmented_accuracy, "strength": strength,
                "relative_drop": relative}
    if relative > max_relative_drop and drop >= min_absolute_drop:
        return Diagnostic("augmentation", True,
                          f"a reference model trained without augmentation drops from {clean_accuracy:.3f} on clean test "
                          f"images to {augmented_accuracy:.3f} on the same images augmented at strength {strength:g} "
                          f"(−{relative:.0%}): the augmentation is far stronger than the data's real variation. "
                          "Lower augment.strength (see data/augmented/preview.png).", evidence)
    return Diagnostic("augmentation", False,
                      f"reference accuracy {clean_accuracy:.3f} clean vs {augmented_accuracy:.3f} at strength {strength:g}",
                      evidence)


def check_overfitting(train_curve, val_curve, window: int = PLATEAU_WINDOW, tolerance: float = PLATEAU_TOLERANCE,
                      climb: float = TRAIN_CLIMB) -> Diagnostic:
    """Fires when over the last ``window`` epochs validation accuracy gained less than
    ``tolerance`` over its earlier best while training accuracy climbed by more than ``climb``."""
    train = np.asarray(train_curve, np.float64)
    val = np.asarray(val_curve, np.float64)
    if len(train) != len(val) or len(val) <= window:
        return Diagnostic("overfitting", False, f"too few epochs ({len(val)}) to judge a plateau", {"epochs": len(val)})
    val_gain = float(val[-window:].max() - val[:-window].max())
    train_gain = float(train[-1] - train[-window - 1])
    gap = float(train[-1] - val[-1])
    evidence = {"val_gain": val_gain, "train_gain": train_gain, "gap": gap, "window": window}
    if val_gain < tolerance and train_gain > climb:
        return Diagnostic("overfitting", True,
                          f"validation accuracy gained {val_gain:+.3f} over the last {window} epochs while training "
                          f"accuracy climbed {train_gain:+.3f} (train − val gap {gap:.3f}): over-fitting. Use fewer "
                          "trainable layers, more data or augmentation, or stop earlier.", evidence)
    return Diagnostic("overfitting", False,
                      f"validation {val_gain:+.3f} vs training {train_gain:+.3f} over the last {window} epochs", evidence)


def check_domain_gap(imagenet_scores, random_scores, paired: bool = True) -> Diagnostic:
    """Fires when a linear probe on ImageNet features is not clearly better than on random-init features.

    The interval of (ImageNet − random) probe accuracy over seeds must lie above zero;
    otherwise the pretrained features carry nothing this data can use (a large domain gap).
    """
    interval: Interval = difference_interval(imagenet_scores, random_scores, paired=paired)
    evidence = {"imagenet_mean": float(np.mean(imagenet_scores)), "random_mean": float(np.mean(random_scores)),
                "difference": interval.estimate, "low": interval.low, "high": interval.high}
    described = f"linear probe on ImageNet − on random-init features = {interval.format()}"
    if interval.low <= 0:
        return Diagnostic("domain_gap", True,
                          f"{described}: ImageNet features are not clearly better than random ones here, a large "
                          "domain gap. Expect little from frozen features; fine-tune deeper or train from scratch.",
                          evidence)
    return Diagnostic("domain_gap", False, described, evidence)
