"""The arrays a training run sees, and the seeded ways to cut them.

One carrier for every path that trains (the ``train`` stage, tuning trials, study
variants): images are uint8 (N, H, W, 3) 0-255 RGB, labels are class indices (plates:
(N, slots), classification: (N,)); one-hot encoding happens at fit time.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transferlab.config import AugmentConfig, Params
from transferlab.errors import TransferlabError

# The augment stage's output (here, not in transferlab.augment, which imports imgaug slowly).
IMAGES_FILE, LABELS_FILE = "train_images.npy", "train_labels.npy"
# Written instead of the arrays when nothing is augmented: which prepared training split to read.
POINTER_FILE = "train_source.json"


@dataclass
class ArrayData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: str
    classes: list[str]  # class names, or the plate symbols (class index -> character)
    fingerprint: str  # of the prepared training split
    pad_index: int | None = None  # plates of variable length: the pad symbol's class
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    # augment.mode per_epoch: x_train holds the originals, and the training engine draws each
    # epoch's augmented variants at this configuration (None: x_train is trained on as it is).
    epoch_augment: AugmentConfig | None = None

    @property
    def kind(self):
        """The task object of ``task`` (:mod:`transferlab.tasks`)."""
        from transferlab.tasks import task_for

        return task_for(self.task)

    @property
    def pad_char(self) -> str | None:
        return self.classes[self.pad_index] if self.pad_index is not None else None

    @property
    def slots(self) -> int:
        return self.y_train.shape[1] if self.y_train.ndim == 2 else 1

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def replace(self, **changes) -> ArrayData:
        return dataclasses.replace(self, **changes)

    def subset(self, size: int | None, seed: int) -> ArrayData:
        """A seeded training subset: the same seed and size give the same images in every arm."""
        idx = seeded_subset(len(self.y_train), size, seed)
        return self.replace(x_train=self.x_train[idx], y_train=self.y_train[idx])

    @property
    def train_images_per_epoch(self) -> int:
        """Training images in an epoch: ``x_train``'s, times 1 + copies with per-epoch augmentation."""
        return len(self.x_train) * (self.epoch_augment.images_per_original if self.epoch_augment else 1)

    def augmented(self, augment: AugmentConfig) -> ArrayData:
        """The training set augmented in memory exactly as the ``augment`` stage would; with
        ``augment.mode: per_epoch`` the originals, marked for the engine to augment every epoch."""
        if augment.per_epoch:
            return self.replace(epoch_augment=augment)
        from transferlab.augment import augmented_training_set

        images, labels, _ = augmented_training_set(self.x_train, self.y_train, augment)
        return self.replace(x_train=images, y_train=labels)

    def resized(self, height: int, width: int) -> ArrayData:
        parts = {name: resize_images(getattr(self, name), height, width)
                 for name in ("x_train", "x_val", "x_test") if getattr(self, name) is not None}
        return self.replace(**parts)

    def fold(self, index: int, folds: int, seed: int = 0) -> ArrayData:
        """Cross-validation: fold ``index`` of ``folds`` over train + validation is the validation set.

        Repetitions then differ in their split as well as their seed, so intervals over them
        include the split's variance (large on small data). For plates, every copy of a plate
        string stays in one fold (no leakage); classes are spread evenly over the folds.
        """
        if not 0 <= index < folds:
            raise ValueError(f"fold {index} of {folds}")
        x = np.concatenate([self.x_train, self.x_val])
        y = np.concatenate([self.y_train, self.y_val])
        assignment = fold_assignment(y, folds, seed, grouped=self.kind.grouped_folds)
        return self.replace(x_train=x[assignment != index], y_train=y[assignment != index],
                            x_val=x[assignment == index], y_val=y[assignment == index])


def seeded_subset(count: int, size: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset of ``size`` of ``count`` items (all for None/0)."""
    if not size or size >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng([seed, size]).permutation(count)[:size])


def fold_assignment(labels: np.ndarray, folds: int, seed: int, grouped: bool) -> np.ndarray:
    """Fold index per row. ``grouped``: identical label rows (plate strings) share a fold."""
    rng = np.random.default_rng([seed, folds])
    if grouped:
        _, group = np.unique(labels.reshape(len(labels), -1), axis=0, return_inverse=True)
        group = group.ravel()
        if group.max(initial=-1) + 1 < folds:
            raise TransferlabError(f"study.folds: {folds} folds but only {group.max() + 1} distinct plate strings")
        order = rng.permutation(group.max() + 1)
        return (np.argsort(order)[group]) % folds
    assignment = np.zeros(len(labels), np.int64)
    for name in np.unique(labels):  # stratified: each class dealt round the folds in random order
        members = rng.permutation(np.flatnonzero(labels == name))
        assignment[members] = (np.arange(len(members)) + rng.integers(folds)) % folds
    if np.bincount(assignment, minlength=folds).min() == 0:
        raise TransferlabError(f"study.folds: {folds} folds but only {len(labels)} images")
    return assignment


def resize_images(images: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    images = np.asarray(images)
    if images.shape[1:3] == (height, width):
        return np.ascontiguousarray(images)
    return np.stack([cv2.resize(im, (width, height), interpolation=cv2.INTER_AREA) for im in images]) \
        if len(images) else np.zeros((0, height, width, 3), np.uint8)


def pad_index(params: Params, classes: list[str]) -> int | None:
    """The pad symbol's class when plates vary in length (it is never a real character)."""
    pad = params.kind.pad_char(params)
    return classes.index(pad) if pad is not None and pad in classes else None


def augmented_training_arrays(params: Params, fingerprint: str) -> tuple[np.ndarray, np.ndarray]:
    """The augment stage's training set: its arrays, or the prepared split its pointer names.

    ``fingerprint`` is the prepared training split's: a pointer written for other data is
    stale (augment has not run since split did) and refused rather than silently followed.
    """
    from transferlab.data.prepared import load_split

    folder = Path(params.augment.output)
    if (folder / IMAGES_FILE).is_file():
        if params.augment.per_epoch:  # copies written before the mode changed: augment has not run since
            raise TransferlabError(f"{folder}: holds offline augmented copies but augment.mode is per_epoch: "
                                   "run `dvc repro augment`")
        return np.load(folder / IMAGES_FILE), np.load(folder / LABELS_FILE)
    pointer = folder / POINTER_FILE
    if not pointer.is_file():
        raise TransferlabError(f"{folder}: augmented training set not found: run `dvc repro augment` first")
    try:
        target = json.loads(pointer.read_text(encoding="utf-8"))
        split_dir, pointed = target["split"], target["fingerprint"]
    except (ValueError, KeyError, TypeError) as exc:
        raise TransferlabError(f"{pointer}: unreadable ({exc}): run `dvc repro augment`") from None
    if pointed != fingerprint:
        raise TransferlabError(f"{pointer}: points to training data {pointed} but the prepared split is "
                               f"{fingerprint}: run `dvc repro augment`")
    train = load_split(split_dir, "train")
    return np.asarray(train.images), np.asarray(train.labels)


def load_prepared(params: Params, test: bool = False, augmented: bool = False) -> ArrayData:
    """The prepared split (stage ``split``) as arrays; the test split only when asked for.

    With ``augmented``, the training arrays are the augment stage's (:func:`augmented_training_arrays`);
    with ``augment.mode: per_epoch`` those are the originals, and the engine augments every epoch.
    """
    from transferlab.data.prepared import load_split, read_meta

    meta = read_meta(params.split.output)
    if meta["task"] != params.task:
        raise TransferlabError(f"{params.split.output} holds a {meta['task']} split but task is {params.task}: "
                               "run the split stage again (dvc repro split)")
    parts = {}
    for name in ("train", "val", "test") if test else ("train", "val"):
        split = load_split(params.split.output, name)
        parts[f"x_{name}"], parts[f"y_{name}"] = np.asarray(split.images), np.asarray(split.labels)
    classes = list(meta["classes"])
    if augmented:
        parts["x_train"], parts["y_train"] = augmented_training_arrays(params, meta["fingerprints"]["train"])
        if params.augment.per_epoch:
            parts["epoch_augment"] = params.augment
    return ArrayData(task=meta["task"], classes=classes, fingerprint=meta["fingerprints"]["train"],
                     pad_index=pad_index(params, classes), **parts)
