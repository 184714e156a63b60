"""Builders of tiny datasets and parameter files shared by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

from transferlab.config import Params, parse_params


def plate_image(text: str, height: int = 32, width: int = 96) -> np.ndarray:
    """A plain, legible plate-like image (white plate, black text): tests need no realism."""
    image = np.full((height, width, 3), 235, np.uint8)
    cv2.putText(image, text, (3, int(height * 0.7)), cv2.FONT_HERSHEY_SIMPLEX, width / 200, (10, 10, 10), 1)
    return image


def write_plate_csv(folder: Path, texts: list[str], size: tuple[int, int] = (32, 96)) -> Path:
    """images/NNN.png + labels.csv (paths relative to the CSV), one row per text."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(texts):
        name = f"images/{i:03d}.png"
        cv2.imwrite(str(folder / name), plate_image(text, *size))
        rows.append({"image_path": name, "plate_text": text})
    csv = folder / "labels.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def write_class_folders(folder: Path, counts: dict[str, int], size: int = 24) -> Path:
    """One sub-folder per class; each class has its own colour so it is learnable."""
    rng = np.random.default_rng(0)
    for c, (name, count) in enumerate(counts.items()):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = np.clip(rng.normal(60 + 70 * c, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / name / f"{i:03d}.jpg"), image)
    return folder


def random_plates(n: int, seed: int = 0, alphabet: str = "0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ", length: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(alphabet), length)) for _ in range(n)]


def tiny_params(root: Path, **sections) -> Params:
    """Parameters for a tiny run with every output under ``root``; sections override keys."""
    raw: dict = {
        "generate": {"count": 24, "height": 32, "width": 96, "output": str(root / "data/synthetic")},
        "data": {"source": str(root / "data/synthetic"), "image_height": 32, "image_width": 96},
        "split": {"val_fraction": 0.2, "test_fraction": 0.2, "output": str(root / "data/prepared")},
        "augment": {"strength": 0.5, "copies": 1, "preview_images": 2, "preview_strengths": [0, 1],
                    "output": str(root / "data/augmented")},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(name, {}).update(values)
        else:
            raw[name] = values
    return parse_params(raw)


def write_params(path: Path, params: Params) -> Path:
    path.write_text(yaml.safe_dump(params.model_dump(), sort_keys=False))
    return path


@contextmanager
def inside_project(root: Path, monkeypatch) -> Iterator[None]:
    """Work in ``root`` as a fresh project would: no outer DVC root or MLflow URI, no run left open."""
    import mlflow

    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(root)
    try:
        yield
    finally:
        mlflow.end_run()


def run_status(run_id: str, root=None) -> str:
    """The status of a run in the repository's store (``FINISHED``, ``FAILED``, ``KILLED``, ``RUNNING``)."""
    import mlflow

    from transferlab import tracking

    return mlflow.MlflowClient(tracking_uri=tracking.configure(root)).get_run(run_id).info.status
