"""Reading plates (or classifying images) with a trained model: files, arrays, MLflow.

A model is only usable together with its decoder: which symbol each class index means,
the slots and pad symbol of a plate, and the image size it was trained at. That travels
beside the model as ``labels.json`` (``models/labels.json`` next to ``models/model.keras``,
and as an MLflow artifact)::

    {"task": "plates", "classes": ["0", ..., "Z"], "image_height": 64, "image_width": 192,
     "slots": 7, "pad_char": null}

``classes`` is the per-slot symbol list for plates (the pad symbol is its last entry when
plates vary in length, and ``pad_char`` names it) and the class names for classification.

Confidence of a plate = the product of its per-slot maximum probabilities (see
:mod:`transferlab.metrics`); ``char_confidences`` lists the maximum probability of each
character of the text read (pad slots are left out of the list but not of the product).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from transferlab import metrics
from transferlab.errors import TransferlabError
from transferlab.images import IMAGE_EXTENSIONS, UnreadableImageError, read_rgb

LABELS_FILE = "labels.json"
MODEL_FILE = "model.keras"
PYFUNC_ARTIFACT_PATH = "reader"
# Key of the decoder in an MLflow model's MLmodel ``metadata`` (``log_model(metadata=...)``).
METADATA_KEY = "transferlab_labels"
DEFAULT_BATCH_SIZE = 32
TOP_CLASSES = 3


# --------------------------------------------------------------------------- the decoder


@dataclass(frozen=True)
class Labels:
    """What a model's outputs mean and the image size it reads (``labels.json``)."""

    task: str
    classes: list[str]
    image_height: int
    image_width: int
    slots: int = 1
    pad_char: str | None = None

    def __post_init__(self) -> None:
        if self.task not in ("plates", "classification"):
            raise TransferlabError(f"labels: unknown task {self.task!r} (plates or classification)")
        if len(self.classes) < 2:
            raise TransferlabError(f"labels: at least two classes are needed, got {self.classes!r}")
        if self.task == "plates":
            if any(len(c) != 1 for c in self.classes):
                raise TransferlabError("labels: plate classes must be single characters")
            if self.pad_char is not None and self.pad_char not in self.classes:
                raise TransferlabError(f"labels: pad_char {self.pad_char!r} is not one of the classes")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Labels:
        try:
            return cls(task=data["task"], classes=[str(c) for c in data["classes"]],
                       image_height=int(data["image_height"]), image_width=int(data["image_width"]),
                       slots=int(data.get("slots") or 1), pad_char=data.get("pad_char") or None)
        except (KeyError, TypeError, ValueError) as exc:
            raise TransferlabError(f"labels: incomplete or invalid decoder description ({exc!r})") from None

    @classmethod
    def load(cls, path: str | Path) -> Labels:
        path = Path(path)
        if not path.is_file():
            raise TransferlabError(f"{path}: not found (the model's decoder: task, classes, image size)")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise TransferlabError(f"{path}: not valid JSON: {exc}") from None

    @classmethod
    def from_params(cls, params, classes: Sequence[str]) -> Labels:
        """The decoder of a model trained with ``params`` on a split whose meta lists ``classes``."""
        plates = params.task == "plates"
        return cls(task=params.task, classes=list(classes), image_height=params.data.image_height,
                   image_width=params.data.image_width, slots=params.plates.slots if plates else 1,
                   pad_char=params.plates.pad_char if plates and params.plates.variable_length else None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @property
    def symbols(self) -> str:
        return "".join(self.classes)


def decode_probabilities(probs: np.ndarray, labels: Labels) -> pd.DataFrame:
    """Model outputs -> one row per image.

    Plates: ``plate_text``, ``confidence``, ``char_confidences`` ("0.99 0.97 ...").
    Classification: ``label``, ``confidence``, ``top_classes`` ("cat 0.91 dog 0.05 ...").
    """
    probs = np.asarray(probs, np.float64)
    if labels.task == "plates":
        if probs.ndim != 3 or probs.shape[1:] != (labels.slots, len(labels.classes)):
            raise TransferlabError(f"model output {probs.shape} does not match the decoder "
                                   f"({labels.slots} slots x {len(labels.classes)} classes)")
        indices = metrics.predicted_indices(probs)
        slot_conf = metrics.slot_confidences(probs)
        rows = []
        for idx, conf, plate_conf in zip(indices, slot_conf, metrics.plate_confidence(probs)):
            kept = [(labels.classes[i], c) for i, c in zip(idx, conf) if labels.classes[i] != labels.pad_char]
            rows.append({"plate_text": "".join(ch for ch, _ in kept), "confidence": float(plate_conf),
                         "char_confidences": " ".join(f"{c:.2f}" for _, c in kept)})
        return pd.DataFrame(rows, columns=["plate_text", "confidence", "char_confidences"])
    if probs.ndim != 2 or probs.shape[1] != len(labels.classes):
        raise TransferlabError(f"model output {probs.shape} does not match the {len(labels.classes)} classes")
    rows = []
    for row in probs:
        order = np.argsort(-row, kind="stable")[:TOP_CLASSES]
        rows.append({"label": labels.classes[order[0]], "confidence": float(row[order[0]]),
                     "top_classes": " ".join(f"{labels.classes[i]} {row[i]:.2f}" for i in order)})
    return pd.DataFrame(rows, columns=["label", "confidence", "top_classes"])


# --------------------------------------------------------------------------- loading


def load_keras_model(path: str | Path):
    """A saved ``.keras`` model, uncompiled (the project's custom layers and metrics registered)."""
    import keras

    import transferlab.backbones  # noqa: F401 - registers the custom layers of the backbones
    import transferlab.models  # noqa: F401 - registers PlateAccuracy / CharAccuracy

    path = Path(path)
    if not path.is_file():
        raise TransferlabError(f"{path}: model file not found")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        # Keras reports any unreadable .keras file as "File not found", which sends users looking
        # for a path problem; a .keras file is a zip archive, and this one is not (truncated, damaged).
        raise TransferlabError(f"{path}: corrupt model file: a .keras file is a zip archive and this one is not "
                               f"({path.stat().st_size} bytes; truncated or damaged?): train again or restore it")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - zip/HDF5/deserialisation errors of every kind
        raise TransferlabError(f"{path}: cannot load the Keras model: {exc}") from None


def is_mlflow_uri(source: str) -> bool:
    return "://" in source or source.startswith(("runs:/", "models:/"))


class Reader:
    """A Keras model plus its decoder: images of any size in, text (or labels) out."""

    def __init__(self, model, labels: Labels):
        self.model, self.labels = model, labels
        expected = (labels.image_height, labels.image_width)
        shape = tuple(model.input_shape[1:3]) if getattr(model, "input_shape", None) else expected
        if None not in shape and shape != expected:
            raise TransferlabError(f"the model reads {shape[0]}x{shape[1]} images but its labels say "
                                   f"{expected[0]}x{expected[1]}")

    @classmethod
    def load(cls, source: str | Path) -> Reader:
        """From a ``.keras`` file (``labels.json`` beside it), a folder, or an MLflow model URI."""
        text = str(source)
        path = Path(text)
        if path.is_file():
            return cls(load_keras_model(path), Labels.load(path.parent / LABELS_FILE))
        if path.is_dir():
            return cls(*_load_from_folder(path, None))
        if is_mlflow_uri(text):
            return cls(*_load_from_uri(text))
        raise TransferlabError(f"{source}: model not found (a .keras file, a folder, or runs:/ / models:/ URI)")

    def prepare(self, images: Iterable[np.ndarray]) -> np.ndarray:
        """Any uint8/float 0..255 images (gray, RGB or RGBA, any size) -> (N, H, W, 3) uint8."""
        height, width = self.labels.image_height, self.labels.image_width
        prepared = [to_model_image(image, height, width) for image in images]
        return np.stack(prepared) if prepared else np.zeros((0, height, width, 3), np.uint8)

    def predict_arrays(self, images, batch_size: int = DEFAULT_BATCH_SIZE) -> pd.DataFrame:
        """Decoded predictions for a batch (N, H, W, 3) or a list of images."""
        batch = self.prepare(images)
        if not len(batch):
            return decode_probabilities(_empty_output(self.labels), self.labels)
        probs = self.model.predict(batch.astype(np.float32), batch_size=batch_size, verbose=0)
        return decode_probabilities(np.asarray(probs), self.labels)

    def predict_files(self, files: Sequence[str | Path], batch_size: int = DEFAULT_BATCH_SIZE) -> pd.DataFrame:
        """One row per file, in order; unreadable files get an ``error`` and no prediction."""
        height, width = self.labels.image_height, self.labels.image_width
        images, good, errors = [], [], []
        for file in files:
            try:
                images.append(read_rgb(file, height, width))
                good.append(True)
                errors.append("")
            except UnreadableImageError as exc:
                good.append(False)
                errors.append(str(exc))
            except (OSError, ValueError, cv2.error) as exc:
                good.append(False)
                errors.append(f"cannot read: {exc}")
        decoded = self.predict_arrays(images, batch_size) if images else None
        text_column = "plate_text" if self.labels.task == "plates" else "label"
        extra_column = "char_confidences" if self.labels.task == "plates" else "top_classes"
        rows, read = [], iter(decoded.to_dict("records") if decoded is not None else [])
        for file, ok, error in zip(files, good, errors):
            row = {"file": str(file), text_column: "", "confidence": np.nan, extra_column: "", "error": error}
            if ok:
                row.update(next(read))
            rows.append(row)
        return pd.DataFrame(rows, columns=["file", text_column, "confidence", extra_column, "error"])


def to_model_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """One image (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), 0..255 -> uint8 RGB at the model's size."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image.astype(np.float64)), 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    elif image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if image.ndim != 3 or image.shape[-1] != 3 or 0 in image.shape:
        raise TransferlabError(f"an image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[:2] != (height, width):
        interpolation = cv2.INTER_AREA if image.shape[0] >= height else cv2.INTER_LINEAR
        image = cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interpolation)
    return image


def _empty_output(labels: Labels) -> np.ndarray:
    if labels.task == "plates":
        return np.zeros((0, labels.slots, len(labels.classes)))
    return np.zeros((0, len(labels.classes)))


def _labels_from_mlmodel(folder: Path) -> Labels | None:
    for mlmodel in sorted(folder.rglob("MLmodel")):
        import yaml

        data = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
        found = (data.get("metadata") or {}).get(METADATA_KEY)
        if found:
            return Labels.from_dict(found)
    return None


def _load_from_folder(folder: Path, fallback_labels: Labels | None):
    """A models/ folder, a saved MLflow Keras model or a pyfunc ``reader`` model."""
    keras_files = sorted(folder.rglob("*.keras"))
    if not keras_files:
        raise TransferlabError(f"{folder}: no .keras model inside")
    preferred = [f for f in keras_files if f.name == MODEL_FILE] or keras_files
    model_path = preferred[0]
    label_files = [model_path.parent / LABELS_FILE, *sorted(folder.rglob(LABELS_FILE))]
    labels = next((Labels.load(f) for f in label_files if f.is_file()), None)
    labels = labels or _labels_from_mlmodel(folder) or fallback_labels
    if labels is None:
        raise TransferlabError(f"{folder}: the model has no {LABELS_FILE} (nor '{METADATA_KEY}' metadata) "
                               "saying what its outputs mean")
    return load_keras_model(model_path), labels


def _configure_tracking() -> None:
    """The repository's MLflow store, unless MLFLOW_TRACKING_URI names another."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        from transferlab import tracking

        tracking.configure()


def _load_from_uri(uri: str):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # read when mlflow is first imported
    import mlflow

    _configure_tracking()
    with tempfile.TemporaryDirectory(prefix="transferlab-model-") as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        except Exception as exc:  # noqa: BLE001 - MlflowException, OSError, ...
            raise TransferlabError(f"{uri}: cannot download the model: {exc}") from None
        fallback = None
        if uri.startswith("runs:/"):  # a labels.json logged at the run's artifact root
            run_id = uri.removeprefix("runs:/").split("/", 1)[0]
            try:
                fallback = Labels.load(mlflow.artifacts.download_artifacts(
                    artifact_uri=f"runs:/{run_id}/{LABELS_FILE}", dst_path=str(Path(tmp) / "_labels")))
            except Exception:  # noqa: BLE001 - optional
                fallback = None
        folder = local if local.is_dir() else local.parent
        return _load_from_folder(folder, fallback)


def predict_files(model_path_or_uri: str | Path, files: Sequence[str | Path],
                  batch_size: int = DEFAULT_BATCH_SIZE) -> pd.DataFrame:
    """Read every file with a model (``.keras`` file or MLflow URI); see :meth:`Reader.predict_files`.

    Columns: ``file``, ``plate_text`` (classification: ``label``), ``confidence``,
    ``char_confidences`` (classification: ``top_classes``) and ``error`` ("" when read).
    """
    return Reader.load(model_path_or_uri).predict_files(list(files), batch_size)


# --------------------------------------------------------------------------- the command


def expand_inputs(inputs: Sequence[str | Path]) -> list[str]:
    """Files as given; folders replaced by the image files inside them (sorted, not recursive)."""
    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(str(p) for p in sorted(path.iterdir())
                         if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            found.append(str(item))
    return found


def format_row(row: dict, task: str) -> str:
    """One line of the command's output: ``file<TAB>text<TAB>confidence<TAB>details``."""
    if row["error"]:
        return f"{row['file']}\tERROR\t{row['error']}"
    text = row["plate_text"] if task == "plates" else row["label"]
    details = row["char_confidences"] if task == "plates" else row["top_classes"]
    return f"{row['file']}\t{text}\t{row['confidence']:.3f}\t{details}"


def predict_command(model: str, images: Sequence[str], csv_out: str | None = None,
                    batch_size: int = DEFAULT_BATCH_SIZE, echo=print) -> int:
    """``transferlab predict MODEL IMAGES... [--csv out.csv]``; returns the exit code.

    Prints one line per image (file, text, plate confidence, per-character confidences;
    ``ERROR`` and the reason for a file that could not be read), writes every row to
    ``csv_out`` when given. Exit code 0 when at least one image was read, 1 when none
    was (every file failed, or no file given): one bad file in a folder of good ones
    must not make a batch job fail, but a run that read nothing must.
    """
    files = expand_inputs(images)
    if not files:
        print("error: no image files given (folders are searched for image files)", file=sys.stderr)
        return 1
    reader = Reader.load(model)
    frame = reader.predict_files(files, batch_size)
    for row in frame.to_dict("records"):
        echo(format_row(row, reader.labels.task))
    if csv_out:
        Path(csv_out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(csv_out, index=False)
    failed = int((frame["error"] != "").sum())
    if failed:
        print(f"predict: {failed} of {len(frame)} file(s) could not be read", file=sys.stderr)
    return 1 if failed == len(frame) else 0


def __getattr__(name: str):
    """``PlateReaderModel`` and ``log_pyfunc_model`` moved to :mod:`transferlab.reader_pyfunc`;
    reader models logged before that name this module, so unpickling them still finds the class."""
    if name in ("PlateReaderModel", "log_pyfunc_model", "images_from_input"):
        from transferlab import reader_pyfunc

        return getattr(reader_pyfunc, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
