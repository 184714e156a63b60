import json

import numpy as np
import pytest

from helpers import plate_image, random_plates, tiny_params, write_plate_csv
from transferlab import augment, split
from transferlab.config import AugmentConfig
from transferlab.data import prepared
from transferlab.data.arrays import POINTER_FILE, load_prepared
from transferlab.errors import TransferlabError


@pytest.fixture
def batch():
    return np.stack([plate_image(t) for t in random_plates(8)])


def test_strength_zero_is_a_true_no_op(batch):
    assert augment.augment_images(batch, 0.0, seed=3) is batch


def test_same_seed_same_images_other_seed_other_images(batch):
    a = augment.augment_images(batch, 0.5, seed=1)
    assert np.array_equal(a, augment.augment_images(batch, 0.5, seed=1))
    assert not np.array_equal(a, augment.augment_images(batch, 0.5, seed=2))
    assert a.dtype == np.uint8 and a.shape == batch.shape


def test_change_grows_with_strength(batch):
    def change(strength):
        return np.abs(augment.augment_images(batch, strength, seed=0).astype(float) - batch).mean()

    assert 0 < change(0.1) < change(0.5) < change(1.0)


def test_strength_out_of_range_is_rejected(batch):
    with pytest.raises(ValueError, match="strength"):
        augment.augment_images(batch, 1.2, seed=0)


def test_stage_writes_originals_copies_and_preview(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_plate_csv(tmp_path / "plates", random_plates(20))
    params = tiny_params(tmp_path, data={"source": str(tmp_path / "plates")}, augment={"copies": 2})
    split.run(params)
    summary = augment.run(params)
    train = prepared.load_split(params.split.output, "train")
    images = np.load(tmp_path / "data/augmented/train_images.npy")
    labels = np.load(tmp_path / "data/augmented/train_labels.npy")
    n = len(train.frame)
    assert summary["train_images"] == 3 * n and images.shape[0] == labels.shape[0] == 3 * n
    assert np.array_equal(images[:n], train.images) and np.array_equal(labels[n:2 * n], train.labels)
    assert not np.array_equal(images[n:2 * n], train.images)
    assert (tmp_path / "data/augmented/preview.png").stat().st_size > 1000


@pytest.mark.parametrize("settings", [{"strength": 0, "copies": 3}, {"strength": 0.5, "copies": 0}])
def test_nothing_to_augment_writes_a_pointer_to_the_split_not_a_copy(tmp_path, monkeypatch, settings, capsys):
    monkeypatch.chdir(tmp_path)
    write_plate_csv(tmp_path / "plates", random_plates(20))
    params = tiny_params(tmp_path, data={"source": str(tmp_path / "plates")}, augment=settings)
    split.run(params)
    capsys.readouterr()
    summary = augment.run(params)
    said = capsys.readouterr().out
    assert "wrote" not in said and "no copy written" in said and POINTER_FILE in said  # says what it did
    out = tmp_path / "data/augmented"
    assert not list(out.glob("*.npy"))  # no duplicate of the prepared arrays
    assert (out / "preview.png").is_file() and (out / POINTER_FILE).is_file()
    train = prepared.load_split(params.split.output, "train")
    data = load_prepared(params, augmented=True)
    assert summary["train_images"] == len(train.frame) == len(data.x_train)
    assert np.array_equal(data.x_train, train.images) and np.array_equal(data.y_train, train.labels)

    # A pointer written for other data is refused, naming the file, instead of being followed.
    pointer = json.loads((out / POINTER_FILE).read_text())
    (out / POINTER_FILE).write_text(json.dumps({**pointer, "fingerprint": "0123456789abcdef"}))
    with pytest.raises(TransferlabError, match=f"{POINTER_FILE}: points to training data 0123456789abcdef"):
        load_prepared(params, augmented=True)


def test_per_epoch_draws_other_variants_each_epoch_the_same_ones_for_the_same_seed(batch):
    cfg = AugmentConfig(strength=0.5, copies=2, mode="per_epoch", seed=3)
    n = len(batch)
    first, again, later = (augment.epoch_images(batch, cfg, epoch) for epoch in (0, 0, 1))
    assert first.shape == (3 * n, *batch.shape[1:]) and first.dtype == np.uint8
    assert np.array_equal(first[:n], batch) and np.array_equal(later[:n], batch)  # the originals lead
    assert np.array_equal(first, again)  # seeded by (seed, epoch, copy) alone
    assert not np.array_equal(first[n:2 * n], first[2 * n:])  # two copies, two draws
    assert not np.array_equal(first[n:], later[n:])  # another epoch, other variants
    assert not np.array_equal(first[n:], augment.epoch_images(batch, cfg.model_copy(update={"seed": 4}), 0)[n:])
    assert augment.epoch_images(batch, cfg.model_copy(update={"strength": 0.0}), 0) is batch  # nothing to draw


def test_per_epoch_stage_writes_no_copy_and_training_data_carries_the_originals(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_plate_csv(tmp_path / "plates", random_plates(20))
    offline = tiny_params(tmp_path, data={"source": str(tmp_path / "plates")}, augment={"copies": 2})
    per_epoch = tiny_params(tmp_path, data={"source": str(tmp_path / "plates")},
                            augment={"copies": 2, "mode": "per_epoch"})
    split.run(per_epoch)
    augment.run(offline)
    with pytest.raises(TransferlabError, match="offline augmented copies but augment.mode is per_epoch"):
        load_prepared(per_epoch, augmented=True)  # stale copies are refused, not trained on
    capsys.readouterr()
    summary = augment.run(per_epoch)
    assert "no copy written" in capsys.readouterr().out
    out = tmp_path / "data/augmented"
    assert not list(out.glob("*.npy")) and (out / POINTER_FILE).is_file() and (out / "preview.png").is_file()
    train = prepared.load_split(per_epoch.split.output, "train")
    n = len(train.frame)
    assert summary["images_per_epoch"] == 3 * n and summary["mode"] == "per_epoch"
    data = load_prepared(per_epoch, augmented=True)
    assert np.array_equal(data.x_train, train.images) and data.epoch_augment == per_epoch.augment
    assert data.train_images_per_epoch == 3 * n == len(load_prepared(offline).augmented(offline.augment).x_train)
    marked = load_prepared(per_epoch).augmented(per_epoch.augment)  # the in-memory paths (tune, study, benchmarks)
    assert np.array_equal(marked.x_train, train.images) and marked.epoch_augment == per_epoch.augment
