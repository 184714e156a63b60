"""Stage ``split``: seeded train/validation/test split, manifests and a decoded array cache.

Images are decoded and resized once here; later stages memory-map the uint8 ``.npy``
arrays instead of decoding files again. For plates, identical plate strings never land in
two splits: a test plate that was also seen in training would flatter the model.

With ``data.test_source`` the test split is that fixed set, all of it in file order, and
train/validation are split from ``data.source`` alone (``split.test_fraction`` is unused).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.config import Params
from transferlab.datasets import Dataset, load_dataset, load_test_dataset
from transferlab.errors import TransferlabError
from transferlab.formats import resolve_plates
from transferlab.io import atomic_output_dir, read_stage_json, write_json
from transferlab.tasks import task_for

SPLITS = ("train", "val", "test")
METRICS_FILE = "metrics/data.json"
LABELS_FILE = "metrics/data_labels.csv"  # examples per character / class and split (a DVC plot)
META_FILE = "meta.json"


@dataclass
class SplitData:
    """One split of the prepared cache."""

    images: np.ndarray  # uint8 (N, H, W, 3), memory-mapped
    labels: np.ndarray  # plates: int (N, slots); classification: int (N,)
    frame: pd.DataFrame


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """Image counts of (train, val, test) for n images; validation and test get at least one,
    except a test fraction of 0 (the test split comes from data.test_source)."""
    n_val = max(1, round(n * val_fraction))
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    return n - n_val - n_test, n_val, n_test


def min_images_for_split(val_fraction: float, test_fraction: float) -> int:
    """Smallest group size that leaves at least one image in every split drawn from it."""
    n = 2
    while split_sizes(n, val_fraction, test_fraction)[0] < 1:
        n += 1
    return n


def stratified_assignment(labels: pd.Series, val_fraction: float, test_fraction: float,
                          rng: np.random.Generator) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per image, the same fractions within every class."""
    needed = min_images_for_split(val_fraction, test_fraction)
    counts = labels.value_counts().sort_index()
    too_small = counts[counts < needed]
    if not too_small.empty:
        listed = ", ".join(f"{name!r} has {count}" for name, count in too_small.items())
        fractions = f"split.val_fraction={val_fraction}"
        if test_fraction:
            fractions += f" and split.test_fraction={test_fraction}"
        raise TransferlabError(
            f"class(es) with too few images for the split: {listed}; each class needs at least {needed} images for {fractions}"
        )
    assignment = np.zeros(len(labels), dtype=np.int64)
    for name in counts.index:  # sorted class order keeps the rng sequence reproducible
        members = rng.permutation(np.flatnonzero(labels.to_numpy() == name))
        _, n_val, n_test = split_sizes(len(members), val_fraction, test_fraction)
        assignment[members[:n_val]] = 1
        assignment[members[n_val:n_val + n_test]] = 2
    return assignment


def leakage_free_assignment(texts: pd.Series, val_fraction: float, test_fraction: float,
                            rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Random split, then every plate string moved to the split holding most of its copies.

    Returns the assignment and how many images were moved to remove the leakage.
    """
    n = len(texts)
    needed = min_images_for_split(val_fraction, test_fraction)
    if n < needed:
        raise TransferlabError(f"the dataset has {n} images; at least {needed} are needed for the split fractions")
    _, n_val, n_test = split_sizes(n, val_fraction, test_fraction)
    order = rng.permutation(n)
    assignment = np.zeros(n, dtype=np.int64)
    assignment[order[:n_val]] = 1
    assignment[order[n_val:n_val + n_test]] = 2
    moved = 0
    for _, members in pd.Series(np.arange(n)).groupby(texts.to_numpy()):
        where = assignment[members.to_numpy()]
        if len(set(where)) > 1:
            target = Counter(where.tolist()).most_common(1)[0][0]  # ties: the first seen split
            moved += int((where != target).sum())
            assignment[members.to_numpy()] = target
    if len(set(assignment)) < (3 if n_test else 2):
        filled = "train, validation and test" if n_test else "train and validation"
        raise TransferlabError(f"too few distinct plate strings to fill {filled} without leakage")
    return assignment, moved


def encode_labels(params: Params, dataset: Dataset, frame: pd.DataFrame) -> np.ndarray:
    return params.kind.encode_labels(params, dataset.classes, frame["label"].tolist())


def dataset_statistics(params: Params, frame: pd.DataFrame, moved: int, test_source: str | None) -> dict:
    """Counts and label distributions per split, recorded as DVC metrics."""
    stats: dict = {"total": len(frame), "moved_for_leakage": moved, "test_source": test_source}
    for name in SPLITS:
        part = frame[frame["split"] == name]
        stats[name] = {"count": len(part), **params.kind.split_entry(part["label"])}
    return stats


def label_counts(task: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Examples per character (plates) or class, one column per split: ``label, train, val, test``.

    A file of its own, not part of ``metrics/data.json``: 35 characters x 3 splits of numbers
    would bury the dataset's few headline metrics in ``dvc metrics show``.
    """
    kind = task_for(task)
    columns = {name: kind.label_counter(frame.loc[frame["split"] == name, "label"]) for name in SPLITS}
    table = pd.DataFrame(columns).reindex(columns=list(SPLITS)).fillna(0).astype(int)
    return table.sort_index().rename_axis("label").reset_index()


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """A short content hash of the prepared data, tagged on every training run."""
    digest = hashlib.sha256(images.tobytes())
    digest.update(labels.tobytes())
    return digest.hexdigest()[:16]


def run(params: Params) -> dict:
    """Validate and decode the dataset, split it, write manifests, arrays and statistics."""
    params = resolve_plates(params)  # load_params did already; a library caller may not have
    dataset = load_dataset(params)
    test = load_test_dataset(params, dataset) if params.data.test_source else None
    rng = np.random.default_rng(params.split.seed)
    fractions = (params.split.val_fraction, 0.0 if test else params.split.test_fraction)
    assignment, moved = params.kind.assign_splits(dataset.frame["label"], *fractions, rng)
    frame = dataset.frame.assign(split=[SPLITS[i] for i in assignment])
    images = dataset.images
    if test:
        print(f"split: the test split is data.test_source ({test.source})")
        frame = pd.concat([frame, test.frame.assign(split="test")], ignore_index=True)
        images = np.concatenate([images, test.images])
    test_source = str(test.source) if test else None
    stats = dataset_statistics(params, frame, moved, test_source)
    meta: dict = {"task": params.task, "classes": dataset.classes, "image_height": params.data.image_height,
                  "image_width": params.data.image_width, "source": str(dataset.source),
                  "test_source": test_source, "fingerprints": {}}
    for key, value in params.kind.split_meta(params).items():
        meta[key] = stats[key] = value
    with atomic_output_dir(params.split.output) as out:
        for name in SPLITS:
            mask = (frame["split"] == name).to_numpy()
            part = frame[mask].drop(columns="split").reset_index(drop=True)
            labels = encode_labels(params, dataset, part)
            np.save(out / f"{name}_images.npy", images[mask])
            np.save(out / f"{name}_labels.npy", labels)
            part.to_csv(out / f"{name}.csv", index=False)
            meta["fingerprints"][name] = fingerprint(images[mask], labels)
            print(f"split: {name}: {len(part)} images")
        write_json(out / META_FILE, meta)
    write_json(METRICS_FILE, stats)
    label_counts(params.task, frame).to_csv(LABELS_FILE, index=False)
    return stats


def read_meta(prepared_dir: str | Path) -> dict:
    return read_stage_json(Path(prepared_dir) / META_FILE, "split")


def load_split(prepared_dir: str | Path, name: str) -> SplitData:
    """Memory-map one split of the prepared cache."""
    folder = Path(prepared_dir)
    read_meta(folder)
    return SplitData(
        images=np.load(folder / f"{name}_images.npy", mmap_mode="r"),
        labels=np.load(folder / f"{name}_labels.npy"),
        frame=pd.read_csv(folder / f"{name}.csv", dtype={"image_path": str, "label": str}, keep_default_na=False),
    )
