"""The kept epoch in the low-data regime: a flat metric never picks the weights."""

import numpy as np
import pytest

from helpers import random_plates, tiny_params
from transferlab.training import engine
from transferlab.data.arrays import ArrayData
from transferlab.data.plates import PlateCodec
from transferlab.tasks import task_for
from transferlab.training.selection import EpochSelector


def feed(selector, chars, losses=None, plates=None):
    for i, value in enumerate(chars):
        logs = {"val_char_accuracy": value, "val_loss": (losses or [1.0] * len(chars))[i],
                "val_plate_accuracy": (plates or [0.0] * len(chars))[i]}
        selector.update(logs)
        if selector.should_stop():
            break
    return selector.selection()


def test_plates_are_selected_on_character_accuracy_not_on_flat_plate_accuracy():
    assert task_for("plates").monitored_metric == "val_char_accuracy"
    assert task_for("classification").monitored_metric == "val_accuracy"
    chosen = feed(EpochSelector("val_char_accuracy"), [0.23, 0.28, 0.31, 0.35, 0.33])
    assert (chosen.kept_epoch, chosen.restored, chosen.flat) == (4, True, False)
    assert "epoch 4" in chosen.reason and chosen.value == 0.35


def test_a_metric_flat_since_epoch_one_keeps_the_last_weights_and_never_stops_early():
    selector = EpochSelector("val_accuracy", patience=3)
    for _ in range(15):
        selector.update({"val_accuracy": 0.1004, "val_loss": 2.3})
        assert not selector.should_stop()
    chosen = selector.selection()
    assert (chosen.kept_epoch, chosen.epochs, chosen.restored, chosen.flat) == (15, 15, False, True)
    assert "stayed at 0.1004 since epoch 1" in chosen.reason


def test_patience_counts_once_the_metric_has_moved():
    chosen = feed(EpochSelector("val_char_accuracy", patience=2), [0.1, 0.1, 0.1, 0.4, 0.3, 0.3, 0.5])
    assert (chosen.epochs, chosen.kept_epoch) == (6, 4)  # stopped after two epochs without a better value


def test_ties_go_to_lower_loss_then_to_the_later_epoch():
    assert feed(EpochSelector("val_char_accuracy"), [0.2, 0.5, 0.5], losses=[1.0, 0.8, 0.9]).kept_epoch == 2
    same = feed(EpochSelector("val_char_accuracy"), [0.2, 0.5, 0.5], losses=[1.0, 0.8, 0.8])
    assert (same.kept_epoch, same.restored) == (3, False)  # never restore weights no better than the last


def test_a_new_phase_gets_its_own_patience():
    selector = EpochSelector("val_char_accuracy", patience=1)
    for value in (0.2, 0.4, 0.3):
        selector.update({"val_char_accuracy": value, "val_loss": 1.0})
    assert selector.should_stop()
    selector.new_phase()
    assert not selector.should_stop()
    selector.update({"val_char_accuracy": 0.6, "val_loss": 1.0})
    assert selector.selection().kept_epoch == 4


def tiny_data(tmp_path):
    params = tiny_params(tmp_path, train={"backbone": "plain_cnn", "pretrained": False, "strategy": "scratch",
                                          "epochs": 5, "batch_size": 8, "head_units": 8,
                                          "early_stopping_patience": 0})
    codec = PlateCodec.from_config(params.plates)
    rng = np.random.default_rng(0)
    texts = random_plates(24)
    images = rng.integers(0, 255, (24, params.data.image_height, params.data.image_width, 3), dtype=np.uint8)
    labels = codec.encode_many(texts)
    data = ArrayData(images[:16], labels[:16], images[16:], labels[16:], "plates", list(codec.symbols), "test")
    return params, data


def test_the_engine_keeps_the_best_character_accuracy_epoch_while_plate_accuracy_is_flat(tmp_path, monkeypatch):
    """Through engine.fit, the one path of the train stage, tuning trials and study variants."""
    params, data = tiny_data(tmp_path)
    chars = [0.10, 0.20, 0.45, 0.40, 0.30]
    snapshots = []
    original = engine.EpochReporter.on_epoch_end

    def scripted(self, epoch, logs=None):
        step = self.trainer.epochs_done + epoch
        original(self, epoch, {**logs, "val_char_accuracy": chars[step], "val_plate_accuracy": 0.0})
        snapshots.append([w.copy() for w in self.trainer.model.get_weights()])

    monkeypatch.setattr(engine.EpochReporter, "on_epoch_end", scripted)
    result = engine.fit(params, data, verbose=False)
    assert (result.selection.kept_epoch, result.selection.epochs) == (3, 5)
    assert result.selection.monitor == "val_char_accuracy"
    kept = result.model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(kept, snapshots[2]))
    assert not all(np.array_equal(a, b) for a, b in zip(kept, snapshots[-1]))
    assert [row["val_plate_accuracy"] for row in result.history] == [0.0] * 5


def test_scores_report_the_share_of_the_most_frequent_prediction(tmp_path):
    _, data = tiny_data(tmp_path)
    probs = np.zeros((*data.y_val.shape, data.num_classes), np.float32)
    probs[..., 0] = 1.0  # the same plate for every image
    scores = engine.score(data, data.y_val, probs)
    assert scores["majority_fraction"] == pytest.approx(1.0)
    assert set(scores) >= {"plate_accuracy", "char_accuracy", "loss"}
