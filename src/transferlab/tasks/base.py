"""The interface both tasks implement; the behaviour they share lives here."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from typing import Any

import numpy as np


class Task(ABC):
    """One kind of label: how it is read, split, learned, scored, decoded and reported.

    Metric names have no ``val_``/``test_`` prefix; :attr:`monitored_metric` adds ``val_``.
    """

    name: str
    unit: str  # what one class index is: "character" or "class"
    item: str  # what one label names: "plate" or "image"
    plate_strings: bool  # labels are plate strings: plates.* applies, synthetic plates can stand in
    scored_metric: str  # moves in short, small-data runs: picks the kept epoch, ranks trials and cells
    main_metric: str  # the headline test metric
    compared_metrics: tuple[str, ...]  # what the study and the evaluate report compare
    tuned_metrics: tuple[str, ...]  # what tune.metric may name (with val_)
    output_columns: tuple[str, str, str]  # text, confidence, details of a decoded prediction
    grouped_folds: bool  # identical labels share a fold (plate strings), else stratified

    @property
    def monitored_metric(self) -> str:
        """The validation metric that picks the kept epoch and stops training early."""
        return "val_" + self.scored_metric

    # ------------------------------------------------------------------ shapes

    @abstractmethod
    def slots(self, params) -> int:
        """Softmax outputs per image."""

    @abstractmethod
    def pad_char(self, params) -> str | None:
        """The pad symbol when labels vary in length, else None."""

    @abstractmethod
    def output_shape(self, slots: int, num_classes: int) -> tuple[int, ...]:
        """The model's output shape for one image."""

    def empty_output(self, slots: int, num_classes: int) -> np.ndarray:
        return np.zeros((0, *self.output_shape(slots, num_classes)), np.float32)

    @abstractmethod
    def branch_names(self, slots: int) -> list[str]:
        """The name prefix of each softmax branch of the head."""

    @abstractmethod
    def stack_branches(self, branches: list, num_classes: int):
        """The head's output from its branches' softmax tensors."""

    @abstractmethod
    def keras_metrics(self, pad_index: int | None) -> list:
        """Per-image metrics Keras reports each epoch."""

    # ------------------------------------------------------------------ data

    @abstractmethod
    def load_frame(self, params, location: str, key: str, known_classes: list[str] | None):
        """(manifest frame, source path, classes) of one dataset location, validated."""

    @abstractmethod
    def shared_items(self, train, test) -> tuple[list[str], str]:
        """Test items also in the training source and how to describe them."""

    @abstractmethod
    def encode_labels(self, params, classes: list[str], labels: list[str]) -> np.ndarray:
        """Label strings -> class indices ((N, slots) or (N,))."""

    @abstractmethod
    def assign_splits(self, labels, val_fraction: float, test_fraction: float, rng) -> tuple[np.ndarray, int]:
        """Split index per row and how many rows were moved to keep the splits apart."""

    @abstractmethod
    def split_entry(self, labels) -> dict:
        """The label distribution of one split for ``metrics/data.json``."""

    @abstractmethod
    def label_counter(self, labels) -> Counter:
        """Examples per character or class."""

    def split_meta(self, params) -> dict[str, Any]:
        """Task settings recorded beside the split (and in ``metrics/data.json``)."""
        return {}

    @abstractmethod
    def listed_files(self, location) -> list:
        """The files that make up a dataset location."""

    # ------------------------------------------------------------------ scoring and decoding

    @abstractmethod
    def report(self, labels: np.ndarray, probs: np.ndarray, classes: list[str], pad_char: str | None,
               confusions: int | None):
        """Every metric of one model on one labelled set."""

    @abstractmethod
    def report_scalars(self, report, prefix: str, classes: list[str]) -> dict[str, float]:
        """The report's numbers as flat metric keys."""

    @abstractmethod
    def texts(self, indices: np.ndarray, classes: list[str], pad_char: str | None) -> list[str]:
        """Label indices (true or predicted) -> plate strings or class names."""

    @abstractmethod
    def decode_rows(self, probs: np.ndarray, classes: list[str], slots: int, pad_char: str | None) -> list[dict]:
        """Model outputs -> one dict per image, keys :attr:`output_columns`."""

    @abstractmethod
    def check_classes(self, classes: list[str], pad_char: str | None) -> None:
        """Refuse a decoder description this task cannot read."""

    # ------------------------------------------------------------------ reports and figures

    @abstractmethod
    def mistake_title(self, true: str, predicted: str, confidence: float) -> str:
        """The caption of one wrong prediction."""

    @abstractmethod
    def breakdown(self, report, classes: list[str]) -> dict[str, list]:
        """Accuracy per slot or per class: columns group, accuracy, count."""

    def prediction_details(self, probs: np.ndarray) -> dict[str, list]:
        """Extra columns of ``predictions.csv``."""
        return {}

    @abstractmethod
    def confusion_title(self, images: int) -> str:
        """The confusion matrix figure's title."""

    def symbol_names(self, classes: list[str], pad_char: str | None, pad_name: str) -> list[str]:
        """The name of each class index in figures and plot files."""
        return list(classes)
