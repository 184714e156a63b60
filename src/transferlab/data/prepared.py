"""The split stage's output, as every later stage reads it: ``data/prepared/``.

One ``<split>_images.npy`` (uint8, memory-mapped), ``<split>_labels.npy`` and ``<split>.csv``
per split, and ``meta.json`` (task, classes, image size, plates, fingerprints). Written by
:mod:`transferlab.split`; read here so that no later stage imports the split stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.io import read_stage_json

SPLITS = ("train", "val", "test")
META_FILE = "meta.json"


@dataclass
class SplitData:
    """One split of the prepared cache."""

    images: np.ndarray  # uint8 (N, H, W, 3), memory-mapped
    labels: np.ndarray  # plates: int (N, slots); classification: int (N,)
    frame: pd.DataFrame


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


def with_recipe(params):
    """``params`` with the in-domain recipe for the prepared training split's size applied
    (:mod:`transferlab.config.recipe`), and its record; unchanged where it does not apply."""
    from transferlab.config import recipe

    if not recipe.applies(params):
        return params, {}
    return recipe.apply(params, n_train=len(load_split(params.split.output, "train").labels))
