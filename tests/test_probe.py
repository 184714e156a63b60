import numpy as np
import pytest

from transferlab.training import probe
from transferlab.errors import TransferlabError
from transferlab.examples import CLASSES, make_classification_example


def test_probe_fits_one_classifier_per_plate_slot():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (120, 3))
    centers = rng.normal(0, 1, (3, 5, 16))
    features = sum(centers[s][labels[:, s]] for s in range(3)) + rng.normal(0, 0.05, (120, 16))
    model = probe.LinearProbe(num_classes=7).fit(features[:100], labels[:100])
    probs = model.predict_proba(features[100:])
    assert probs.shape == (20, 3, 7)  # every class of the alphabet, also those never seen
    assert np.allclose(probs.sum(axis=-1), 1.0)
    assert (probs.argmax(-1) == labels[100:]).mean() > 0.9


def test_probe_handles_a_slot_with_one_class_and_the_svm():
    features = np.random.default_rng(1).normal(size=(30, 4))
    labels = np.stack([np.zeros(30, int), (features[:, 0] > 0).astype(int)], axis=1)
    for kind in probe.PROBE_KINDS:
        probs = probe.LinearProbe(num_classes=3, kind=kind).fit(features, labels).predict_proba(features)
        assert (probs[:, 0].argmax(-1) == 0).all()
        assert (probs[:, 1].argmax(-1) == labels[:, 1]).mean() > 0.9
    with pytest.raises(TransferlabError):
        probe.LinearProbe(num_classes=3, kind="forest")


def test_classification_example_is_deterministic(tmp_path):
    a = make_classification_example(tmp_path / "a", per_class=3, size=(32, 48), seed=4)
    b = make_classification_example(tmp_path / "b", per_class=3, size=(32, 48), seed=4)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert [p.parts[0] for p in files] == [c for c in CLASSES for _ in range(3)]
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in files)


def test_linear_probe_on_imagenet_features_separates_the_tiny_example(tmp_path):
    import cv2

    folder = make_classification_example(tmp_path / "example", per_class=16, size=(32, 48), seed=0)
    images, labels = [], []
    for c, name in enumerate(CLASSES):
        for path in sorted((folder / name).glob("*.png")):
            images.append(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
            labels.append(c)
    images, labels = np.stack(images), np.array(labels)
    train = np.arange(len(labels)) % 4 != 0
    cached = probe.cache_features(tmp_path / "features", "efficientnet_lite0", True,
                                  {"train": images[train], "test": images[~train]})
    assert (tmp_path / "features/efficientnet_lite0-imagenet/train.npy").is_file()
    assert cached["train"].shape == (train.sum(), 1280)
    assert np.array_equal(probe.load_features(tmp_path / "features", "efficientnet_lite0", True, "test"), cached["test"])
    model = probe.LinearProbe(num_classes=2).fit(cached["train"], labels[train])
    probs = model.predict_proba(cached["test"])
    assert probs.shape == ((~train).sum(), 2)
    assert (probs.argmax(-1) == labels[~train]).mean() >= 0.875
    with pytest.raises(TransferlabError, match="features not found"):
        probe.load_features(tmp_path / "features", "efficientnet_lite0", False, "test")
