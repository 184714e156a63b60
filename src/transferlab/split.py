"""Stage ``split``: seeded train/validation/test split, manifests and a decoded array cache.

Images are decoded and resized once here; later stages memory-map the uint8 ``.npy``
arrays instead of decoding files again. For plates, identical plate strings never land in
two splits: a test plate that was also seen in training would flatter the model.

With ``data.test_source`` the test split is that fixed set, all of it in file order, and
train/validation are split from ``data.source`` alone (``split.test_fraction`` is unused).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.config import Params
from transferlab.data.datasets import Dataset, load_dataset, load_test_dataset
from transferlab.generate.formats import resolve_plates
from transferlab.data.prepared import META_FILE, SPLITS
from transferlab.io import atomic_output_dir, read_json, write_json
from transferlab.tasks import task_for
from transferlab.test_source import source_stamp

METRICS_FILE = "metrics/data.json"
LABELS_FILE = "metrics/data_labels.csv"  # examples per character / class and split (a DVC plot)


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


def split_inputs(params: Params) -> dict:
    """What the split is made from: the settings DVC's split stage depends on and a content stamp
    of data.source (and data.test_source), as JSON reads them back. Recorded in meta.json."""
    settings = {"task": params.task, **{name: getattr(params, name).model_dump(mode="json")
                                        for name in ("plates", "data", "split")}}
    test = params.data.test_source
    stamps = {"source": source_stamp(params.task, params.data.source),
              "test_source": source_stamp(params.task, test) if test else None}
    return json.loads(json.dumps({"settings": settings, **stamps}, default=str))


def ensure_prepared(params: Params, metrics_file: str | Path = METRICS_FILE,
                    labels_file: str | Path = LABELS_FILE) -> bool:
    """Run the split when ``split.output`` is missing or was made from other inputs
    (:func:`split_inputs`: settings or files), reuse it otherwise; True when it ran. For the
    one-command entry points (``transferlab study``) on a fresh clone, where no ``dvc repro`` ran,
    and the study's own split (its statistics go to ``metrics_file`` / ``labels_file``, see :func:`run`)."""
    params = resolve_plates(params)
    meta = Path(params.split.output) / META_FILE
    if meta.is_file() and read_json(meta).get("inputs") == split_inputs(params):
        print(f"split: {params.split.output} is current: reused", flush=True)
        return False
    why = "missing" if not meta.is_file() else "made from other settings or files"
    print(f"split: {params.split.output} is {why}: running the split stage", flush=True)
    run(params, metrics_file, labels_file)
    return True


def run(params: Params, metrics_file: str | Path = METRICS_FILE, labels_file: str | Path = LABELS_FILE) -> dict:
    """Validate and decode the dataset, split it, write manifests, arrays and statistics
    (``metrics_file``, ``labels_file``: the pipeline's DVC metric and plot files by default)."""
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
                  "test_source": test_source, "fingerprints": {}, "inputs": split_inputs(params)}
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
    write_json(metrics_file, stats)
    Path(labels_file).parent.mkdir(parents=True, exist_ok=True)
    label_counts(params.task, frame).to_csv(labels_file, index=False)
    return stats
