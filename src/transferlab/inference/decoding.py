"""The decoder of a model's outputs and the images it reads, without TensorFlow, MLflow or pandas.

A model is only usable together with its decoder: which symbol each class index means,
the slots and pad symbol of a plate, and the image size it was trained at. That travels
beside the model as ``labels.json`` (``models/labels.json`` next to ``models/model.keras``,
beside an exported ``.onnx``/``.tflite`` file, and as an MLflow artifact)::

    {"task": "plates", "classes": ["0", ..., "Z"], "image_height": 64, "image_width": 192,
     "slots": 7, "pad_char": null}

``classes`` is the per-slot symbol list for plates (the pad symbol is its last entry when
plates vary in length, and ``pad_char`` names it) and the class names for classification.

Confidence of a plate = the product of its per-slot maximum probabilities (see
:mod:`transferlab.evaluation.metrics`); ``char_confidences`` lists the maximum probability of each
character of the text read (pad slots are left out of the list but not of the product).

Only NumPy, OpenCV and the task objects (NumPy only) are imported here: the reader of exported models
(:mod:`transferlab.inference.runtime`) starts in a fraction of a second because of it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from transferlab.errors import TransferlabError
from transferlab.tasks import TASKS, Task, task_for

LABELS_FILE = "labels.json"


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
        if self.task not in TASKS:
            raise TransferlabError(f"labels: unknown task {self.task!r} ({' or '.join(TASKS)})")
        if len(self.classes) < 2:
            raise TransferlabError(f"labels: at least two classes are needed, got {self.classes!r}")
        self.kind.check_classes(self.classes, self.pad_char)

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
        kind = params.kind
        return cls(task=params.task, classes=list(classes), image_height=params.data.image_height,
                   image_width=params.data.image_width, slots=kind.slots(params), pad_char=kind.pad_char(params))

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

    @property
    def kind(self) -> Task:
        """The task object that reads these outputs."""
        return task_for(self.task)


def output_columns(task: str) -> list[str]:
    """The columns of a decoded prediction: text, confidence, details."""
    return list(task_for(task).output_columns)


def decode_rows(probs: np.ndarray, labels: Labels) -> list[dict[str, Any]]:
    """Model outputs -> one dict per image, keys :func:`output_columns`.

    Plates: ``plate_text``, ``confidence``, ``char_confidences`` ("0.99 0.97 ...").
    Classification: ``label``, ``confidence``, ``top_classes`` ("cat 0.91 dog 0.05 ...").
    """
    return labels.kind.decode_rows(np.asarray(probs, np.float64), labels.classes, labels.slots, labels.pad_char)


def decoded_texts(probs: np.ndarray, labels: Labels) -> list[str]:
    """Only the text (plate string or class name) of each image."""
    column = labels.kind.output_columns[0]
    return [row[column] for row in decode_rows(probs, labels)]


def empty_output(labels: Labels) -> np.ndarray:
    """A model output for zero images, shaped like a real one."""
    return labels.kind.empty_output(labels.slots, len(labels.classes))


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


def prepare_batch(images: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Any uint8/float 0..255 images (gray, RGB or RGBA, any size) -> (N, H, W, 3) uint8."""
    prepared = [to_model_image(image, height, width) for image in images]
    return np.stack(prepared) if prepared else np.zeros((0, height, width, 3), np.uint8)
