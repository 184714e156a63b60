"""Plates: a fixed number of character slots, one softmax over the alphabet per slot.

Labels are plate strings (CSV manifest). Every copy of a plate string stays in one split
or fold, so no plate is both learned and tested. Character accuracy is what moves in
short runs; plate accuracy (every slot right) is the headline.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from transferlab.evaluation import metrics
from transferlab.errors import TransferlabError
from transferlab.tasks.base import Task


class PlateTask(Task):
    name = "plates"
    unit = "character"
    item = "plate"
    plate_strings = True
    scored_metric = "char_accuracy"
    main_metric = "plate_accuracy"
    compared_metrics = ("plate_accuracy", "char_accuracy")
    tuned_metrics = ("val_plate_accuracy", "val_char_accuracy", "val_loss")
    output_columns = ("plate_text", "confidence", "char_confidences")
    grouped_folds = True

    def slots(self, params) -> int:
        return params.plates.slots

    def pad_char(self, params) -> str | None:
        return params.plates.pad_char if params.plates.variable_length else None

    def output_shape(self, slots: int, num_classes: int) -> tuple[int, ...]:
        return (slots, num_classes)

    def branch_names(self, slots: int) -> list[str]:
        return [f"slot_{slot}" for slot in range(slots)]

    def stack_branches(self, branches: list, num_classes: int):
        from keras import layers

        return layers.Concatenate(axis=1, name="slots")([layers.Reshape((1, num_classes))(b) for b in branches])

    def keras_metrics(self, pad_index: int | None) -> list:
        from transferlab.training.models import CharAccuracy, PlateAccuracy

        return [PlateAccuracy(), CharAccuracy(pad_index=pad_index)]

    # ------------------------------------------------------------------ data

    def codec(self, params):
        from transferlab.data.plates import PlateCodec

        return PlateCodec.from_config(params.plates)

    def load_frame(self, params, location: str, key: str, known_classes: list[str] | None):
        from transferlab.data.datasets import plate_csv_path, read_plate_manifest

        codec = self.codec(params)
        frame = read_plate_manifest(location, codec, params.data.skip_invalid, key)
        return frame, plate_csv_path(location), list(codec.symbols)

    def shared_items(self, train, test) -> tuple[list[str], str]:
        seen = set(train.frame["label"])
        shared = list(dict.fromkeys(label for label in test.frame["label"] if label in seen))
        return shared, "plate string(s) are also in data.source"

    def encode_labels(self, params, classes: list[str], labels: list[str]) -> np.ndarray:
        return self.codec(params).encode_many(list(labels))

    def assign_splits(self, labels, val_fraction: float, test_fraction: float, rng) -> tuple[np.ndarray, int]:
        from transferlab.data.assignment import leakage_free_assignment

        assignment, moved = leakage_free_assignment(labels, val_fraction, test_fraction, rng)
        print(f"split: moved {moved} image(s) so that no plate string is in two splits")
        return assignment, moved

    def split_entry(self, labels) -> dict:
        return {"length": {str(k): int(v) for k, v in sorted(Counter(labels.str.len()).items())},
                "distinct_plates": int(labels.nunique())}

    def label_counter(self, labels) -> Counter:
        return Counter("".join(labels))

    def split_meta(self, params) -> dict:
        from transferlab.generate.formats import plates_record

        return {"plates": plates_record(params)}

    def listed_files(self, location) -> list:
        import pandas as pd

        from transferlab.data.datasets import plate_csv_path

        csv = plate_csv_path(location)
        if not csv.is_file():
            return []
        try:
            frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            return [csv]  # the CSV's own bytes still change with every edit
        names = frame["image_path"] if "image_path" in frame.columns else []
        return [csv] + [csv.parent / name for name in names if name.strip()]

    # ------------------------------------------------------------------ scoring and decoding

    def report(self, labels, probs, classes, pad_char, confusions):
        return metrics.plate_report(labels, probs, "".join(classes), pad_char, confusions)

    def report_scalars(self, report, prefix: str, classes: list[str]) -> dict[str, float]:
        return report.scalars(prefix)

    def texts(self, indices, classes, pad_char) -> list[str]:
        symbols = "".join(classes)
        return [metrics.decode(row, symbols, pad_char) for row in indices]

    def decode_rows(self, probs, classes, slots, pad_char) -> list[dict]:
        if probs.ndim != 3 or probs.shape[1:] != (slots, len(classes)):
            raise TransferlabError(f"model output {probs.shape} does not match the decoder "
                                   f"({slots} slots x {len(classes)} classes)")
        rows = []
        for idx, conf, plate_conf in zip(metrics.predicted_indices(probs), metrics.slot_confidences(probs),
                                         metrics.plate_confidence(probs)):
            kept = [(classes[i], c) for i, c in zip(idx, conf) if classes[i] != pad_char]
            rows.append({"plate_text": "".join(ch for ch, _ in kept), "confidence": float(plate_conf),
                         "char_confidences": " ".join(f"{c:.2f}" for _, c in kept)})
        return rows

    def check_classes(self, classes: list[str], pad_char: str | None) -> None:
        if any(len(c) != 1 for c in classes):
            raise TransferlabError("labels: plate classes must be single characters")
        if pad_char is not None and pad_char not in classes:
            raise TransferlabError(f"labels: pad_char {pad_char!r} is not one of the classes")

    # ------------------------------------------------------------------ reports and figures

    def mistake_title(self, true: str, predicted: str, confidence: float) -> str:
        marks = "".join("^" if i >= len(true) or i >= len(predicted) or true[i] != predicted[i] else " "
                        for i in range(max(len(true), len(predicted))))
        return f"true {true}\npred {predicted}\n     {marks}\nconf {confidence:.2f}"

    def breakdown(self, report, classes: list[str]) -> dict[str, list]:
        slots = len(report.per_slot_accuracy)
        return {"group": [f"slot {i + 1}" for i in range(slots)], "accuracy": report.per_slot_accuracy,
                "count": [report.images] * slots}

    def prediction_details(self, probs: np.ndarray) -> dict[str, list]:
        return {"char_confidences": [" ".join(f"{c:.2f}" for c in row) for row in metrics.slot_confidences(probs)]}

    def confusion_title(self, images: int) -> str:
        return f"Character confusion over all slots ({images} test plates)"

    def symbol_names(self, classes: list[str], pad_char: str | None, pad_name: str) -> list[str]:
        return [pad_name if pad_char and c == pad_char else c for c in classes]
