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

Checks for a model that has not learned yet (the regime where comparisons mislead), pure
functions of curves and counts so that the study and the evaluation report share them:

- flat metric: the monitored validation metric never moved from its epoch-1 value, so it
  could neither pick the best epoch nor stop early;
- one class: (nearly) every validation image gets the same prediction;
- memorisation: training accuracy near 1 while validation stays near chance;
- still improving: the validation metric was at its best at the last epoch and still rising;
- samples per class: too few training images per class (per character for plates).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from transferlab.evaluation.stats import Interval, difference_interval, learned_level

# Thresholds; the report states them with every finding.
SMALL_BATCH = 16  # BatchNorm batch statistics are noisy below this
AUGMENT_MAX_RELATIVE_DROP = 0.5  # reference accuracy on augmented test images below half of clean
AUGMENT_MIN_ABSOLUTE_DROP = 0.05  # and at least 5 points lower
PLATEAU_WINDOW = 3  # epochs
PLATEAU_TOLERANCE = 0.01  # validation gains below this count as a plateau
TRAIN_CLIMB = 0.05  # training accuracy gain over the window that counts as climbing
EXPECTED_RANGE = (0.0, 255.0)
FLAT_EPOCHS = 3  # a metric unchanged for at least this many epochs (all of them) is flat
FLAT_TOLERANCE = 1e-6  # "unchanged": equal up to float noise
ONE_CLASS_FRACTION = 0.95  # share of images given the single most common prediction
MEMORISED_TRAIN = 0.95  # training accuracy that counts as memorised
IMPROVING_WINDOW = 3  # epochs over which "still rising" is measured
IMPROVING_TOLERANCE = 0.01  # a rise above this over the window, ending at the best epoch, is still learning
MIN_PER_CLASS = 20  # training images per class (per character class for plates) below which results are fragile


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


def check_flat_metric(curve, name: str = "monitored metric", min_epochs: int = FLAT_EPOCHS,
                      tolerance: float = FLAT_TOLERANCE, kept_epoch: int | None = None) -> Diagnostic:
    """Fires when ``curve`` (one value per epoch) never left its epoch-1 value over at least
    ``min_epochs`` epochs: such a metric cannot choose the best epoch or stop training early."""
    values = np.asarray(curve, np.float64)
    evidence = {"epochs": len(values), "value": float(values[0]) if len(values) else float("nan"),
                "kept_epoch": kept_epoch, "min_epochs": min_epochs}
    if len(values) < min_epochs:
        return Diagnostic("flat metric", False, f"too few epochs ({len(values)}) to judge {name}", evidence)
    spread = float(np.abs(values - values[0]).max())
    evidence["spread"] = spread
    if spread <= tolerance:
        kept = f" (weights kept from epoch {kept_epoch})" if kept_epoch is not None else ""
        return Diagnostic("flat metric", True,
                          f"{name} stayed at {values[0]:.3f} for all {len(values)} epochs{kept}: it cannot pick the "
                          "best epoch or stop early. Train longer, or monitor a metric that moves (character "
                          "accuracy, loss).", evidence)
    return Diagnostic("flat metric", False, f"{name} moved by up to {spread:.3f} from epoch 1", evidence)


def majority_fraction(predicted) -> float:
    """Share of items given the single most common prediction: class ids (one per image) or
    rows of per-slot ids (a plate counts as one prediction, its whole string)."""
    x = np.asarray(predicted)
    if len(x) == 0:
        return float("nan")
    rows = x.reshape(len(x), -1)
    _, counts = np.unique(rows, axis=0, return_counts=True)
    return float(counts.max() / len(rows))


def check_one_class(fraction: float, images: int | None = None, threshold: float = ONE_CLASS_FRACTION) -> Diagnostic:
    """Fires when at least ``threshold`` of the images get the same prediction
    (``fraction`` from :func:`majority_fraction`): the model answers one class for everything."""
    evidence = {"majority_fraction": float(fraction), "images": images, "threshold": threshold}
    of = f" of {images}" if images else ""
    if np.isfinite(fraction) and fraction >= threshold:
        return Diagnostic("one class", True,
                          f"the same prediction for {fraction:.0%}{of} validation images: the model has collapsed "
                          "to one class and not learned to tell them apart yet. Train longer or lower the "
                          "learning rate before comparing it.", evidence)
    shown = f"{fraction:.0%}" if np.isfinite(fraction) else "unknown"
    return Diagnostic("one class", False, f"most common prediction on {shown}{of} validation images", evidence)


def check_memorisation(train_accuracy: float, val_accuracy: float, chance: float,
                       train_min: float = MEMORISED_TRAIN) -> Diagnostic:
    """Fires when the training accuracy is at least ``train_min`` while the validation accuracy
    stays below the learned level (:func:`transferlab.evaluation.stats.learned_level`): memorised, not learned."""
    level = learned_level(chance)
    evidence = {"train": float(train_accuracy), "val": float(val_accuracy), "chance": chance, "level": level}
    if train_accuracy >= train_min and val_accuracy < level:
        return Diagnostic("memorisation", True,
                          f"training accuracy {train_accuracy:.3f} but validation {val_accuracy:.3f} (chance "
                          f"{chance:.3g}, learned level {level:.3f}): the model memorised the training images and "
                          "learned nothing that transfers. More data, augmentation or regularisation; "
                          "pretrained features help most here.", evidence)
    return Diagnostic("memorisation", False, f"training {train_accuracy:.3f} vs validation {val_accuracy:.3f}",
                      evidence)


def check_still_improving(curve, name: str = "validation metric", window: int = IMPROVING_WINDOW,
                          tolerance: float = IMPROVING_TOLERANCE, higher_is_better: bool = True) -> Diagnostic:
    """Fires when the last epoch is the best one and the metric rose by more than ``tolerance``
    over the last ``window`` epochs (fewer when the run is shorter): training stopped mid-climb."""
    values = np.asarray(curve, np.float64)
    values = values[np.isfinite(values)]
    evidence = {"name": name, "epochs": len(values), "window": window, "tolerance": tolerance}
    if len(values) < 2:
        return Diagnostic("still improving", False, f"too few epochs ({len(values)}) to judge {name}", evidence)
    signed = values if higher_is_better else -values
    span = min(window, len(values) - 1)
    gain = float(signed[-1] - signed[-1 - span])
    last_is_best = bool(signed[-1] >= signed[:-1].max())
    moving = "rising" if higher_is_better else "falling"
    evidence.update({"gain": gain, "change": float(values[-1] - values[-1 - span]), "span": span,
                     "last": float(values[-1]), "last_is_best": last_is_best, "moving": moving})
    if last_is_best and gain > tolerance:
        return Diagnostic("still improving", True,
                          f"{name} was best at the last epoch ({len(values)}) and still {moving} "
                          f"({gain:+.3f} over the last {span} epochs): training stopped before it converged. "
                          "Train longer before comparing.", evidence)
    return Diagnostic("still improving", False,
                      f"{name} {'best at the last epoch' if last_is_best else 'past its best'}, {gain:+.3f} over the "
                      f"last {span} epochs", evidence)


def check_samples_per_class(counts, unit: str = "class", minimum: int = MIN_PER_CLASS) -> Diagnostic:
    """Fires when the rarest class has fewer than ``minimum`` training images (``unit``
    "character" for plates: occurrences of each character over all slots)."""
    x = np.asarray(counts, np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return Diagnostic("samples per class", False, f"no training counts per {unit}", {})
    evidence = {"min": float(x.min()), "median": float(np.median(x)), "classes": len(x), "minimum": minimum}
    plural = unit + ("es" if unit.endswith("s") else "s")
    described = (f"{x.min():.0f} training examples of the rarest {unit} (median {np.median(x):.0f} "
                 f"over {len(x)} {plural})")
    if x.min() < minimum:
        return Diagnostic("samples per class", True,
                          f"{described}, below {minimum} per {unit}: too few to learn the {unit} reliably, "
                          "and a comparison at this size says little about larger ones. Use more training images.",
                          evidence)
    return Diagnostic("samples per class", False, described, evidence)
