import numpy as np
import pytest

from transferlab.evaluation import diagnostics as d


@pytest.fixture(scope="module")
def lite0():
    from transferlab.training.backbones import build_backbone

    return build_backbone("efficientnet_lite0", (32, 96, 3), pretrained=False)


def test_preprocessing_fires_on_zero_one_images_and_is_silent_on_0_255():
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 96, 3)).astype(np.uint8)
    assert not d.check_preprocessing(images, "efficientnet_lite0").fired
    broken = d.check_preprocessing(images.astype(np.float32) / 255.0, "efficientnet_lite0")
    assert broken.fired and "0..255" in broken.message
    normalised = d.check_preprocessing(images.astype(np.float32) / 127.5 - 1.0, "mobilenet_v2")
    assert normalised.fired


def test_batchnorm_fires_on_trainable_bn_with_small_batches(lite0):
    from transferlab.training.models import set_backbone_trainable

    total = sum(1 for layer in lite0.model._flatten_layers(include_self=False)
                if layer.__class__.__name__ == "BatchNormalization")
    set_backbone_trainable(lite0, 3, bn_trainable=True)
    trainable = len(d.trainable_batchnorm_layers(lite0.model))
    assert trainable > 0
    assert d.check_batchnorm(trainable, total, batch_size=4, pretrained=True).fired
    assert not d.check_batchnorm(trainable, total, batch_size=64, pretrained=True).fired
    set_backbone_trainable(lite0, 3, bn_trainable=False)  # the project default
    frozen = len(d.trainable_batchnorm_layers(lite0.model))
    assert frozen == 0
    assert not d.check_batchnorm(frozen, total, batch_size=4, pretrained=True).fired


def test_augmentation_fires_when_a_reference_model_collapses_on_augmented_images():
    assert d.check_augmentation(0.80, 0.20, strength=1.0).fired
    assert not d.check_augmentation(0.80, 0.72, strength=0.3).fired
    assert not d.check_augmentation(0.04, 0.0, strength=1.0).fired  # too little accuracy to lose


def test_overfitting_fires_on_a_plateau_while_training_climbs():
    train = [0.3, 0.5, 0.65, 0.75, 0.85, 0.93, 0.98]
    val = [0.25, 0.40, 0.50, 0.50, 0.49, 0.50, 0.50]
    fired = d.check_overfitting(train, val)
    assert fired.fired and "over-fitting" in fired.message
    healthy_val = [0.25, 0.40, 0.50, 0.56, 0.62, 0.67, 0.71]
    assert not d.check_overfitting(train, healthy_val).fired
    assert not d.check_overfitting([0.1, 0.2], [0.1, 0.2]).fired  # too short to judge


def test_domain_gap_fires_when_imagenet_features_are_no_better_than_random():
    assert d.check_domain_gap([0.31, 0.29, 0.30], [0.30, 0.31, 0.29]).fired
    silent = d.check_domain_gap([0.60, 0.62, 0.58], [0.30, 0.31, 0.29])
    assert not silent.fired and "ImageNet" in silent.message


def test_flat_metric_fires_when_the_monitor_never_moved():
    fired = d.check_flat_metric([0.0] * 8, "val plate accuracy", kept_epoch=1)
    assert fired.fired and "stayed at 0.000 for all 8 epochs" in fired.message and "epoch 1" in fired.message
    assert not d.check_flat_metric([0.0, 0.0, 0.005, 0.01]).fired  # it moved
    assert not d.check_flat_metric([0.0, 0.0]).fired  # too short to call flat


def test_one_class_fires_when_every_image_gets_the_same_prediction():
    collapsed = np.array([3] * 97 + [1, 2, 4])
    assert d.majority_fraction(collapsed) == pytest.approx(0.97)
    assert d.check_one_class(d.majority_fraction(collapsed), images=100).fired
    assert not d.check_one_class(d.majority_fraction(np.arange(100) % 10), images=100).fired
    plates = np.array([[1, 2, 3]] * 19 + [[1, 2, 4]])  # a plate counts as one prediction (its whole string)
    assert d.majority_fraction(plates) == pytest.approx(0.95) and d.check_one_class(d.majority_fraction(plates)).fired
    assert not d.check_one_class(float("nan")).fired  # not measured: no claim


def test_memorisation_fires_on_perfect_training_and_chance_validation():
    fired = d.check_memorisation(1.0, 0.097, chance=0.1)
    assert fired.fired and "memorised" in fired.message
    assert not d.check_memorisation(1.0, 0.85, chance=0.1).fired  # learned
    assert not d.check_memorisation(0.6, 0.1, chance=0.1).fired  # not memorised (yet)


def test_still_improving_fires_when_training_stopped_mid_climb():
    fired = d.check_still_improving([0.1, 0.2, 0.3, 0.4, 0.5], "val accuracy")
    assert fired.fired and fired.evidence["gain"] == pytest.approx(0.3) and fired.evidence["span"] == 3
    assert not d.check_still_improving([0.1, 0.5, 0.6, 0.602, 0.6, 0.605]).fired  # converged: +0.005 over 3
    assert not d.check_still_improving([0.1, 0.5, 0.7, 0.6, 0.65]).fired  # past its best
    assert d.check_still_improving([2.0, 1.5, 1.0], "val loss", higher_is_better=False).fired  # a loss falling
    assert not d.check_still_improving([0.3]).fired  # one epoch: cannot tell


def test_samples_per_class_warns_below_twenty():
    fired = d.check_samples_per_class([8, 12, 40], unit="class")
    assert fired.fired and "8 training examples of the rarest class" in fired.message
    assert not d.check_samples_per_class([80] * 35, unit="character").fired
