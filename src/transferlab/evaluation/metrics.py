"""Evaluation metrics as plain NumPy functions, counted per image over a whole split.

Nothing here knows about Keras: the evaluate stage, the tuning study and the tests all
compute the same numbers from the same arrays (true class indices and predicted
probabilities), so a batch-averaging artefact can never creep in.

Conventions, the same everywhere:
- Plates: ``true`` is int (N, slots), ``probs`` is float (N, slots, K) (softmax per slot),
  ``symbols`` maps class index -> character. When plates vary in length the pad symbol is
  one more class (the last one, see ``PlateCodec.symbols``). Character accuracy counts the
  plates' real characters only (pad slots left out), exactly like the ``CharAccuracy``
  metric used in training: most slots of short plates are pads, and predicting a pad
  where a pad belongs would otherwise make an unreadable model look good. The slot
  figure (every slot, pads included) is reported as ``slot_accuracy``, labelled as such.
- Plate confidence = the product of the per-slot maximum probabilities: the probability
  the model gives to the whole predicted string if the heads are independent. It is low
  as soon as one character is doubtful, which is what a reader of the plate cares about.
- Empty inputs give 0.0 for every rate and mean (never NaN, never a NumPy warning); the
  counts reported alongside (``images``, ``right``, ``wrong``) say when a figure is empty.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

TOP_K = 3


def _mean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else 0.0


def _check_plates(true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true = np.asarray(true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3:
        raise ValueError(f"plate probabilities must be (N, slots, classes), got shape {probs.shape}")
    if true.size == 0 and probs.shape[0] == 0:
        true = true.reshape(0, probs.shape[1])
    if true.shape != probs.shape[:2]:
        raise ValueError(f"true labels {true.shape} do not match probabilities {probs.shape}")
    return true, probs


# ---------------------------------------------------------------- plates, one number each

def predicted_indices(probs: np.ndarray) -> np.ndarray:
    """Arg-max class per slot (or per image): (N, slots, K) -> (N, slots)."""
    probs = np.asarray(probs)
    return probs.argmax(axis=-1) if probs.size else np.zeros(probs.shape[:-1], np.int64)


def plate_accuracy(true: np.ndarray, pred: np.ndarray) -> float:
    """Share of plates whose every slot is right (pred: indices (N, slots))."""
    true, pred = np.asarray(true), np.asarray(pred)
    return _mean(np.all(true == pred, axis=-1)) if true.size else 0.0


def char_accuracy(true: np.ndarray, pred: np.ndarray, pad_index: int | None = None) -> float:
    """Share of the plates' real characters that are right (slots whose true symbol is a pad
    are left out; with ``pad_index`` None every slot is a character)."""
    true, pred = np.asarray(true), np.asarray(pred)
    counted = np.ones(true.shape, bool) if pad_index is None else true != pad_index
    return _mean((true == pred)[counted])


def per_image_scores(true: np.ndarray, pred: np.ndarray, pad_index: int | None = None) -> dict[str, np.ndarray]:
    """Each image's part of the accuracies, whose mean over the images is the accuracy: for a
    paired per-image comparison of two models on the same test set. Plates: ``plate_accuracy``
    (0/1) and ``char_accuracy`` (right characters × images / characters, so the mean is the pooled
    character accuracy); one label per image: ``accuracy`` (0/1)."""
    true, pred = np.asarray(true), np.asarray(pred)
    right = true == pred
    if true.ndim == 1:
        return {"accuracy": right.astype(np.float64)}
    counted = np.ones(true.shape, bool) if pad_index is None else true != pad_index
    total = int(counted.sum())
    chars = (right & counted).sum(axis=1) * (len(true) / total) if total else np.zeros(len(true))
    return {"plate_accuracy": right.all(axis=1).astype(np.float64), "char_accuracy": chars.astype(np.float64)}


def slot_accuracy(true: np.ndarray, pred: np.ndarray) -> float:
    """Share of slots that are right, pad slots included (the per-slot figure, labelled as such)."""
    return _mean(np.asarray(true) == np.asarray(pred))


def per_slot_accuracy(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Accuracy of each slot (head) separately: (slots,); zeros for no plates."""
    true, pred = np.asarray(true), np.asarray(pred)
    if true.ndim != 2:
        raise ValueError(f"plate labels must be (N, slots), got shape {true.shape}")
    if not len(true):
        return np.zeros(true.shape[1], np.float64)
    return (true == pred).mean(axis=0).astype(np.float64)


def top_k_accuracy(true: np.ndarray, probs: np.ndarray, k: int = TOP_K) -> float:
    """Share of slots (or images) whose true class is among the k most probable ones."""
    true, probs = np.asarray(true, np.int64), np.asarray(probs)
    if not true.size:
        return 0.0
    k = min(k, probs.shape[-1])
    top = np.argsort(-probs, axis=-1, kind="stable")[..., :k]
    return _mean(np.any(top == true[..., None], axis=-1))


def plate_lengths(indices: np.ndarray, pad_index: int | None) -> np.ndarray:
    """Number of non-pad slots per plate (all slots when there is no pad class)."""
    indices = np.asarray(indices)
    if pad_index is None:
        return np.full(len(indices), indices.shape[-1] if indices.ndim == 2 else 0, np.int64)
    return (indices != pad_index).sum(axis=-1).astype(np.int64)


def length_accuracy(true: np.ndarray, pred: np.ndarray, pad_index: int | None) -> float:
    """Share of plates whose predicted length (non-pad slots) equals the true length."""
    if not np.asarray(true).size:
        return 0.0
    return _mean(plate_lengths(true, pad_index) == plate_lengths(pred, pad_index))


def plate_confidence(probs: np.ndarray) -> np.ndarray:
    """Confidence per plate: product of its per-slot maximum probabilities, (N,)."""
    probs = np.asarray(probs, np.float64)
    if not probs.size:
        return np.zeros(probs.shape[0] if probs.ndim else 0, np.float64)
    return probs.max(axis=-1).prod(axis=-1)


def slot_confidences(probs: np.ndarray) -> np.ndarray:
    """Per-slot maximum probability, (N, slots)."""
    probs = np.asarray(probs, np.float64)
    return probs.max(axis=-1) if probs.size else np.zeros(probs.shape[:-1], np.float64)


def cross_entropy(true: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-probability of the true class (over slots and images), like Keras' loss."""
    true, probs = np.asarray(true, np.int64), np.asarray(probs, np.float64)
    if not true.size:
        return 0.0
    picked = np.take_along_axis(probs, true[..., None], axis=-1)[..., 0]
    return float(-np.log(np.clip(picked, 1e-7, 1.0)).mean())


def decode(indices: np.ndarray, symbols: str, pad_char: str | None) -> str:
    """Class indices of one plate -> text, pad symbols removed."""
    text = "".join(symbols[int(i)] for i in indices)
    return text.replace(pad_char, "") if pad_char else text


def character_confusion_matrix(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (K, K) over all slots: row = true symbol, column = predicted symbol."""
    return confusion_matrix(np.asarray(true).ravel(), np.asarray(pred).ravel(), num_classes)


def confusion_matrix(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """scikit-learn's counts (K, K): row = true class, column = predicted class."""
    from sklearn.metrics import confusion_matrix as counts

    if len(true) == 0:
        return np.zeros((num_classes, num_classes), np.int64)
    return counts(true, pred, labels=list(range(num_classes))).astype(np.int64)


def top_confusions(true: np.ndarray, pred: np.ndarray, names, n: int | None = 10) -> list[tuple[str, str, int]]:
    """The most frequent mistakes as (true, predicted, count), most frequent first.

    Ties are broken by the class order so the list is stable. ``names`` maps class
    index -> display name (the symbols string for plates, class names otherwise).
    """
    true, pred = np.asarray(true).ravel(), np.asarray(pred).ravel()
    wrong = true != pred
    counts = Counter(zip(true[wrong].tolist(), pred[wrong].tolist()))
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if n is not None:
        ordered = ordered[:n]
    return [(str(names[t]), str(names[p]), int(c)) for (t, p), c in ordered]


@dataclass(kw_only=True)
class _Report:
    """What both reports hold: counts, confidence, loss, confusions and the per-image arrays."""

    images: int
    confidence_right_mean: float
    confidence_wrong_mean: float
    right: int
    wrong: int
    loss: float
    confusions: list[tuple[str, str, int]]
    confusion_matrix: np.ndarray = field(repr=False)
    predicted: np.ndarray = field(repr=False)  # indices: (N, slots) plates, (N,) classes
    confidence: np.ndarray = field(repr=False)  # (N,)
    correct: np.ndarray = field(repr=False)  # bool (N,)

    @staticmethod
    def common_fields(true: np.ndarray, probs: np.ndarray, pred: np.ndarray, confidence: np.ndarray,
                      correct: np.ndarray, names, confusions: int | None) -> dict:
        """The fields both reports compute the same way, from the per-image arrays."""
        return {"images": len(true), "confidence_right_mean": _mean(confidence[correct]),
                "confidence_wrong_mean": _mean(confidence[~correct]), "right": int(correct.sum()),
                "wrong": int((~correct).sum()), "loss": cross_entropy(true, probs),
                "confusions": top_confusions(true, pred, names, confusions), "predicted": pred,
                "confidence": confidence, "correct": correct}

    def _common_scalars(self) -> dict[str, float]:
        return {"confidence_right_mean": self.confidence_right_mean,
                "confidence_wrong_mean": self.confidence_wrong_mean, "loss": self.loss,
                "images": float(self.images), "right": float(self.right), "wrong": float(self.wrong)}


@dataclass(kw_only=True)
class PlateReport(_Report):
    """Every plate metric of one split; ``scalars()`` gives the flat numbers to log."""

    plate_accuracy: float
    char_accuracy: float
    top3_char_accuracy: float
    length_accuracy: float | None  # None when all plates have the full length (no pad class)
    slot_accuracy: float | None  # every slot, pads included; None without a pad class (= char_accuracy)
    per_slot_accuracy: list[float]

    def scalars(self, prefix: str = "") -> dict[str, float]:
        values: dict[str, float] = {
            "plate_accuracy": self.plate_accuracy,
            "char_accuracy": self.char_accuracy,
            "top3_char_accuracy": self.top3_char_accuracy,
            **self._common_scalars(),
        }
        if self.length_accuracy is not None:
            values["length_accuracy"] = self.length_accuracy
        if self.slot_accuracy is not None:
            values["slot_accuracy"] = self.slot_accuracy
        for slot, accuracy in enumerate(self.per_slot_accuracy, start=1):
            values[f"slot_{slot}_accuracy"] = accuracy
        return {prefix + k: float(v) for k, v in values.items()}


def plate_report(true: np.ndarray, probs: np.ndarray, symbols: str, pad_char: str | None = None,
                 confusions: int | None = 10) -> PlateReport:
    """All plate metrics at once. ``pad_char``: the pad symbol when plates vary in length."""
    true, probs = _check_plates(true, probs)
    if probs.shape[-1] != len(symbols):
        raise ValueError(f"{probs.shape[-1]} classes per slot but {len(symbols)} symbols {symbols!r}")
    pad_index = symbols.index(pad_char) if pad_char and pad_char in symbols else None
    pred = predicted_indices(probs)
    confidence = plate_confidence(probs)
    correct = np.all(true == pred, axis=-1) if len(true) else np.zeros(0, bool)
    return PlateReport(
        **PlateReport.common_fields(true, probs, pred, confidence, correct, symbols, confusions),
        plate_accuracy=plate_accuracy(true, pred),
        char_accuracy=char_accuracy(true, pred, pad_index),
        top3_char_accuracy=top_k_accuracy(true, probs, TOP_K),
        length_accuracy=length_accuracy(true, pred, pad_index) if pad_index is not None else None,
        slot_accuracy=slot_accuracy(true, pred) if pad_index is not None else None,
        per_slot_accuracy=per_slot_accuracy(true, pred).tolist(),
        confusion_matrix=character_confusion_matrix(true, pred, len(symbols)),
    )


# ---------------------------------------------------------------- classification

def classification_scores(true: np.ndarray, pred: np.ndarray, num_classes: int) -> dict:
    """scikit-learn's confusion matrix (row = true class), accuracy, per-class recall (0.0 for a
    class with no true image) and macro F1 (over the classes in the truth or the predictions; a
    class never predicted counts with F1 = 0). Imported here, not at the top: the
    TensorFlow-free reader imports this module and must start fast."""
    from sklearn import metrics as sk

    labels = list(range(num_classes))
    if len(true) == 0:
        return {"matrix": confusion_matrix(true, pred, num_classes), "accuracy": 0.0,
                "recall": np.zeros(num_classes), "macro_f1": 0.0}
    return {"matrix": confusion_matrix(true, pred, num_classes),
            "accuracy": float(sk.accuracy_score(true, pred)),
            "recall": sk.recall_score(true, pred, labels=labels, average=None, zero_division=0),
            "macro_f1": float(sk.f1_score(true, pred, average="macro", zero_division=0))}


@dataclass(kw_only=True)
class ClassificationReport(_Report):
    """Every classification metric of one split; ``scalars()`` gives the flat numbers to log."""

    accuracy: float
    macro_f1: float
    top3_accuracy: float
    per_class_recall: list[float]
    support: list[int]

    def scalars(self, prefix: str = "", classes: list[str] | None = None) -> dict[str, float]:
        values: dict[str, float] = {
            "accuracy": self.accuracy, "macro_f1": self.macro_f1, "top3_accuracy": self.top3_accuracy,
            **self._common_scalars(),
        }
        names = classes or [str(i) for i in range(len(self.per_class_recall))]
        for name, recall in zip(names, self.per_class_recall):
            values[f"recall_{safe_metric_name(name)}"] = recall
        return {prefix + k: float(v) for k, v in values.items()}


def safe_metric_name(name: str) -> str:
    """A class name usable in an MLflow metric key (letters, digits, _ - . / and spaces)."""
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in str(name))


def classification_report(true: np.ndarray, probs: np.ndarray, classes: list[str],
                          confusions: int | None = 10) -> ClassificationReport:
    """All classification metrics; ``probs`` is (N, K), ``true`` is (N,)."""
    probs = np.asarray(probs, np.float64)
    true = np.asarray(true, np.int64).reshape(-1)
    if probs.ndim != 2 or probs.shape[0] != true.shape[0]:
        raise ValueError(f"probabilities must be (N, classes) for {true.shape[0]} labels, got {probs.shape}")
    if probs.shape[1] != len(classes):
        raise ValueError(f"{probs.shape[1]} classes predicted but {len(classes)} class names")
    pred = predicted_indices(probs)
    scores = classification_scores(true, pred, len(classes))
    matrix = scores["matrix"]
    confidence = probs.max(axis=-1) if probs.size else np.zeros(len(true))
    correct = true == pred
    return ClassificationReport(
        **ClassificationReport.common_fields(true, probs, pred, confidence, correct, classes, confusions),
        accuracy=scores["accuracy"],
        macro_f1=scores["macro_f1"],
        top3_accuracy=top_k_accuracy(true, probs, TOP_K),
        per_class_recall=np.asarray(scores["recall"], np.float64).tolist(),
        support=matrix.sum(axis=1).astype(int).tolist(),
        confusion_matrix=matrix,
    )
