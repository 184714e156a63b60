import warnings

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from transferlab.evaluation import metrics

SYMBOLS = "08AB"  # class indices 0..3


def one_hot_probs(indices, num_classes=len(SYMBOLS), confidence=0.7):
    """Probabilities whose arg-max is ``indices``; the rest is spread evenly."""
    indices = np.asarray(indices)
    rest = (1 - confidence) / (num_classes - 1)
    probs = np.full(indices.shape + (num_classes,), rest)
    np.put_along_axis(probs, indices[..., None], confidence, axis=-1)
    return probs


@pytest.fixture(autouse=True)
def no_numpy_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_plate_metrics_on_hand_made_predictions():
    true = np.array([[0, 1, 2], [1, 1, 3], [2, 3, 0], [3, 0, 1]])
    pred = np.array([[0, 1, 2],   # right
                     [1, 3, 3],   # 8 -> B
                     [2, 3, 0],   # right
                     [3, 0, 3]])  # 8 -> B
    report = metrics.plate_report(true, one_hot_probs(pred), SYMBOLS)
    assert report.plate_accuracy == 0.5
    assert report.char_accuracy == pytest.approx(10 / 12)
    assert report.per_slot_accuracy == [1.0, 0.75, 0.75]
    assert report.right == 2 and report.wrong == 2
    assert report.confusions == [("8", "B", 2)]
    assert report.confusion_matrix[1, 3] == 2 and report.confusion_matrix.sum() == 12
    assert report.length_accuracy is None  # fixed-length plates: no pad class
    assert report.confidence_right_mean == pytest.approx(0.7 ** 3)
    assert report.loss == pytest.approx(-(10 * np.log(0.7) + 2 * np.log(0.1)) / 12)
    scalars = report.scalars("test_")
    assert scalars["test_plate_accuracy"] == 0.5 and scalars["test_slot_2_accuracy"] == 0.75
    assert "test_length_accuracy" not in scalars


def test_confidence_is_the_product_of_slot_maxima_and_separates_right_from_wrong():
    true = np.array([[0, 1], [0, 1]])
    probs = np.array([[[0.9, 0.1, 0, 0], [0.2, 0.8, 0, 0]],     # right, 0.72
                      [[0.6, 0.4, 0, 0], [0.5, 0.0, 0, 0.5]]])  # second slot wrong (ties -> index 0)
    report = metrics.plate_report(true, probs, SYMBOLS)
    assert metrics.plate_confidence(probs) == pytest.approx([0.72, 0.3])
    assert report.confidence_right_mean == pytest.approx(0.72)
    assert report.confidence_wrong_mean == pytest.approx(0.3)


def test_all_right_all_wrong_and_empty_are_well_defined():
    true = np.array([[0, 1, 2], [3, 2, 1]])
    right = metrics.plate_report(true, one_hot_probs(true), SYMBOLS)
    assert (right.plate_accuracy, right.char_accuracy, right.top3_char_accuracy) == (1.0, 1.0, 1.0)
    assert right.confusions == [] and right.confidence_wrong_mean == 0.0 and right.wrong == 0

    wrong = metrics.plate_report(true, one_hot_probs((true + 1) % 4), SYMBOLS)
    assert (wrong.plate_accuracy, wrong.char_accuracy) == (0.0, 0.0)
    assert wrong.confidence_right_mean == 0.0 and wrong.right == 0
    assert sum(c for _, _, c in wrong.confusions) == 6

    empty = metrics.plate_report(np.zeros((0, 3), int), np.zeros((0, 3, 4)), SYMBOLS, pad_char="B")
    values = empty.scalars()
    assert all(np.isfinite(v) for v in values.values())
    assert values["plate_accuracy"] == 0.0 and values["length_accuracy"] == 0.0 and values["images"] == 0
    assert empty.per_slot_accuracy == [0.0, 0.0, 0.0] and empty.confusions == []


def test_top3_counts_the_true_symbol_among_the_three_most_probable():
    true = np.array([[0, 0]])
    probs = np.array([[[0.1, 0.2, 0.3, 0.4],     # true class ranked 4th
                       [0.25, 0.35, 0.0, 0.4]]])  # ranked 2nd
    assert metrics.top_k_accuracy(true, probs, 3) == 0.5
    assert metrics.top_k_accuracy(true, probs, 1) == 0.0
    assert metrics.top_k_accuracy(true, probs, 10) == 1.0  # k above the number of classes


def test_length_accuracy_with_a_pad_class():
    symbols = "AB12_"  # pad is the last class
    true = np.array([[0, 2, 4, 4], [1, 1, 3, 4], [0, 0, 0, 0]])  # A1, BB2, AAAA
    pred = np.array([[1, 2, 4, 4],   # B1: wrong plate, right length
                     [1, 1, 4, 4],   # BB: one character missing
                     [0, 0, 0, 0]])  # right
    report = metrics.plate_report(true, one_hot_probs(pred, 5), symbols, pad_char="_")
    assert report.length_accuracy == pytest.approx(2 / 3)
    assert metrics.plate_lengths(true, 4).tolist() == [2, 3, 4]
    assert ("2", "_", 1) in report.confusions
    assert metrics.decode(pred[1], symbols, "_") == "BB"


def test_confusions_are_sorted_by_count_and_truncated():
    true = np.array([[1, 1, 1, 2, 2, 0]])
    pred = np.array([[3, 3, 3, 0, 0, 1]])
    found = metrics.top_confusions(true, pred, SYMBOLS, n=2)
    assert found == [("8", "B", 3), ("A", "0", 2)]
    assert len(metrics.top_confusions(true, pred, SYMBOLS, n=None)) == 3


def test_classification_matches_sklearn_including_a_class_never_predicted():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 60)
    pred = np.where(rng.random(60) < 0.6, true, rng.integers(0, 3, 60))
    pred[pred == 3] = 0  # class 3 is never predicted
    classes = ["cat", "dog", "fox", "owl"]
    report = metrics.classification_report(true, one_hot_probs(pred, 4), classes)
    assert report.accuracy == pytest.approx(np.mean(true == pred))
    assert report.macro_f1 == pytest.approx(f1_score(true, pred, average="macro", zero_division=0))
    assert report.per_class_recall == pytest.approx(recall_score(true, pred, average=None, labels=[0, 1, 2, 3],
                                                                 zero_division=0))
    assert report.per_class_recall[3] == 0.0
    assert np.array_equal(report.confusion_matrix, sk_confusion_matrix(true, pred, labels=[0, 1, 2, 3]))
    assert report.scalars("test_", classes)["test_recall_owl"] == 0.0


def test_classification_edge_cases():
    classes = ["a", "b", "c"]
    true = np.array([0, 1, 2, 2])
    right = metrics.classification_report(true, one_hot_probs(true, 3), classes)
    assert (right.accuracy, right.macro_f1, right.confidence_wrong_mean) == (1.0, 1.0, 0.0)
    wrong = metrics.classification_report(true, one_hot_probs((true + 1) % 3, 3), classes)
    assert (wrong.accuracy, wrong.macro_f1) == (0.0, 0.0)
    assert wrong.confusions[0] == ("c", "a", 2)
    empty = metrics.classification_report(np.zeros(0, int), np.zeros((0, 3)), classes)
    assert all(np.isfinite(v) for v in empty.scalars().values())
    assert empty.confusion_matrix.sum() == 0 and empty.macro_f1 == 0.0


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="symbols"):
        metrics.plate_report(np.zeros((2, 3), int), np.zeros((2, 3, 5)), SYMBOLS)
    with pytest.raises(ValueError, match="do not match"):
        metrics.plate_report(np.zeros((2, 4), int), np.zeros((2, 3, 4)), SYMBOLS)
