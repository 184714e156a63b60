"""Folder-per-class classification: one softmax over the classes (a new head replacing
ImageNet's 1000-class layer). Splits and folds are stratified by class."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from transferlab.evaluation import metrics
from transferlab.errors import TransferlabError
from transferlab.tasks.base import Task

TOP_CLASSES = 3  # classes listed per decoded prediction


class ClassificationTask(Task):
    name = "classification"
    unit = "class"
    item = "image"
    plate_strings = False
    scored_metric = "accuracy"
    main_metric = "accuracy"
    compared_metrics = ("accuracy",)
    tuned_metrics = ("val_accuracy", "val_loss")
    output_columns = ("label", "confidence", "top_classes")
    grouped_folds = False

    def slots(self, params) -> int:
        return 1

    def pad_char(self, params) -> str | None:
        return None

    def output_shape(self, slots: int, num_classes: int) -> tuple[int, ...]:
        return (num_classes,)

    def branch_names(self, slots: int) -> list[str]:
        return ["class"]

    def stack_branches(self, branches: list, num_classes: int):
        return branches[0]

    def keras_metrics(self, pad_index: int | None) -> list:
        return ["accuracy"]

    # ------------------------------------------------------------------ data

    def load_frame(self, params, location: str, key: str, known_classes: list[str] | None):
        from transferlab.data.datasets import read_class_manifest

        source = Path(location)
        frame = read_class_manifest(location, key, min_classes=1 if known_classes else 2)
        classes = known_classes or sorted(frame["label"].unique())
        unknown = sorted(set(frame["label"]) - set(classes))
        if unknown:
            raise TransferlabError(
                f"{source}: class folder(s) {', '.join(unknown)} not among the classes of data.source "
                f"({', '.join(classes)}); {key} must use the source's class folders"
            )
        return frame, source, classes

    def shared_items(self, train, test) -> tuple[list[str], str]:
        from transferlab.io import file_sha256

        by_hash = {file_sha256(f): p for f, p in zip(train.frame["file"], train.frame["image_path"])}
        shared = [f"{p} = {by_hash[h]}" for f, p in zip(test.frame["file"], test.frame["image_path"])
                  if (h := file_sha256(f)) in by_hash]
        return shared, "image(s) are byte-identical to images in data.source"

    def encode_labels(self, params, classes: list[str], labels: list[str]) -> np.ndarray:
        index = {name: i for i, name in enumerate(classes)}
        return np.asarray([index[label] for label in labels], np.int64)

    def assign_splits(self, labels, val_fraction: float, test_fraction: float, rng) -> tuple[np.ndarray, int]:
        from transferlab.data.assignment import stratified_assignment

        return stratified_assignment(labels, val_fraction, test_fraction, rng), 0

    def split_entry(self, labels) -> dict:
        return {"classes": {str(k): int(v) for k, v in labels.value_counts().sort_index().items()}}

    def label_counter(self, labels) -> Counter:
        return Counter(labels)

    def listed_files(self, location) -> list:
        from transferlab.data.datasets import class_image_files

        path = Path(location)
        return [file for _, file in class_image_files(path)] if path.is_dir() else []

    # ------------------------------------------------------------------ scoring and decoding

    def report(self, labels, probs, classes, pad_char, confusions):
        return metrics.classification_report(labels, probs, classes, confusions)

    def report_scalars(self, report, prefix: str, classes: list[str]) -> dict[str, float]:
        return report.scalars(prefix, classes)

    def texts(self, indices, classes, pad_char) -> list[str]:
        return [classes[int(i)] for i in np.asarray(indices).reshape(-1)]

    def decode_rows(self, probs, classes, slots, pad_char) -> list[dict]:
        if probs.ndim != 2 or probs.shape[1] != len(classes):
            raise TransferlabError(f"model output {probs.shape} does not match the {len(classes)} classes")
        rows = []
        for row in probs:
            order = np.argsort(-row, kind="stable")[:TOP_CLASSES]
            rows.append({"label": classes[order[0]], "confidence": float(row[order[0]]),
                         "top_classes": " ".join(f"{classes[i]} {row[i]:.2f}" for i in order)})
        return rows

    def check_classes(self, classes: list[str], pad_char: str | None) -> None:
        return None  # any distinct names will do

    # ------------------------------------------------------------------ reports and figures

    def mistake_title(self, true: str, predicted: str, confidence: float) -> str:
        return f"true {true}\npred {predicted}\nconf {confidence:.2f}"

    def breakdown(self, report, classes: list[str]) -> dict[str, list]:
        return {"group": list(classes), "accuracy": report.per_class_recall, "count": report.support}

    def confusion_title(self, images: int) -> str:
        return f"Class confusion ({images} test images)"
