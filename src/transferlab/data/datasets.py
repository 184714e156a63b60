"""Reading a user's dataset (or the synthetic one) into a validated manifest.

Two input conventions, so users bring data as they already have it:
- plates: a CSV ``image_path,plate_text`` with paths relative to the CSV (fast-plate-ocr);
- classification: one folder per class (``keras.utils.image_dataset_from_directory``).

Everything is checked before any output is written; every problem is reported with its
file and row in one message, because fixing errors one run at a time is miserable.
``data.test_source`` (a fixed test set) is read by the same rules and checked against the
source: the same classes, and no plate string or image file in both.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.config import Params
from transferlab.errors import TransferlabError
from transferlab.data.images import IMAGE_EXTENSIONS, UnreadableImageError, read_rgb
from transferlab.data.plates import LabelError, PlateCodec

PLATE_COLUMNS = ("image_path", "plate_text")
PLATE_CSV_NAME = "labels.csv"
MAX_LISTED_PROBLEMS = 20
MAX_LISTED_OVERLAPS = 5


@dataclass
class Dataset:
    """A validated dataset: one row per image, images decoded at the working size."""

    frame: pd.DataFrame  # columns: image_path (as the user wrote it), file (resolved), label, row
    images: np.ndarray  # uint8 (N, H, W, 3)
    classes: list[str]  # classification: class names; plates: the head symbols
    source: Path


class Problems:
    """Collects per-row problems; raises them together or, when the user opted in, skips them."""

    def __init__(self, source: Path, skip_invalid: bool):
        self.source, self.skip_invalid, self.items = source, skip_invalid, []

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{where}: {what}")

    def settle(self, what_is_checked: str) -> None:
        if not self.items:
            return
        listed = self.items[:MAX_LISTED_PROBLEMS]
        more = len(self.items) - len(listed)
        text = "\n  ".join(listed) + (f"\n  ... and {more} more" if more else "")
        if self.skip_invalid:
            print(f"warning: {self.source}: skipping {len(self.items)} invalid {what_is_checked}:\n  {text}",
                  file=sys.stderr)
            self.items = []
            return
        raise TransferlabError(
            f"{self.source}: {len(self.items)} invalid {what_is_checked}:\n  {text}\n"
            "Fix them, or set data.skip_invalid: true to skip such rows with a warning."
        )


def plate_csv_path(source: str | Path) -> Path:
    """A plate dataset is a CSV, or a folder that holds labels.csv."""
    source = Path(source)
    return source / PLATE_CSV_NAME if source.is_dir() else source


def read_plate_manifest(source: str | Path, codec: PlateCodec, skip_invalid: bool, key: str = "data.source") -> pd.DataFrame:
    """Read and check the plate CSV: columns, empty, duplicates, labels, files present."""
    csv = plate_csv_path(source)
    if not csv.is_file():
        raise TransferlabError(f"{csv}: plate CSV not found ({key} must be a CSV or a folder with {PLATE_CSV_NAME})")
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TransferlabError(f"{csv}: not a readable CSV: {exc}") from None
    missing = [c for c in PLATE_COLUMNS if c not in frame.columns]
    if missing:
        raise TransferlabError(f"{csv}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns) or 'none'}")
    if frame.empty:
        raise TransferlabError(f"{csv}: no rows: the dataset is empty")
    frame = frame.assign(row=np.arange(len(frame)) + 2)  # row as shown in a spreadsheet: header is row 1
    problems = Problems(csv, skip_invalid)
    duplicated = frame["image_path"].duplicated(keep="first")
    for _, item in frame[duplicated].iterrows():
        problems.add(f"row {item.row} ({item.image_path})", "duplicate image_path (already listed earlier)")
    bad_rows = set(frame.index[duplicated])
    for index, item in frame.iterrows():
        try:
            codec.check(codec.label_of(item.plate_text))
        except LabelError as exc:
            problems.add(f"row {item.row} ({item.image_path})", f"label {item.plate_text!r}: {exc}")
            bad_rows.add(index)
        if not item.image_path.strip():
            problems.add(f"row {item.row}", "empty image_path")
            bad_rows.add(index)
    problems.settle("rows")
    frame = frame.drop(index=sorted(bad_rows))
    frame["label"] = [codec.label_of(text) for text in frame["plate_text"]]
    frame["file"] = [str(csv.parent / p) for p in frame["image_path"]]
    return frame[["image_path", "file", "label", "row"]].reset_index(drop=True)


def class_image_files(root: Path) -> list[tuple[str, Path]]:
    """(class, file) for every image in root's class sub-folders, sorted so the order is reproducible."""
    found = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found += [(class_dir.name, f) for f in sorted(class_dir.rglob("*"))
                  if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
    return found


def read_class_manifest(source: str | Path, key: str = "data.source", min_classes: int = 2) -> pd.DataFrame:
    """One sub-folder per class, images inside; a training set needs two classes, a test set one."""
    root = Path(source)
    if not root.is_dir():
        raise TransferlabError(f"{root}: class folder not found ({key} must hold one sub-folder per class)")
    rows = [{"image_path": str(file.relative_to(root)), "file": str(file), "label": name}
            for name, file in class_image_files(root)]
    if not rows:
        raise TransferlabError(f"{root}: no images found (expected sub-folders per class with {', '.join(IMAGE_EXTENSIONS)} files)")
    frame = pd.DataFrame(rows)
    if frame["label"].nunique() < min_classes:
        raise TransferlabError(f"{root}: only one class ({frame['label'].iloc[0]}); classification needs at least two")
    frame["row"] = np.arange(len(frame)) + 1
    return frame


def decode_images(frame: pd.DataFrame, height: int, width: int, problems: Problems) -> tuple[pd.DataFrame, np.ndarray]:
    """Decode every image once, at the working size; unreadable files become problems."""
    images = np.zeros((len(frame), height, width, 3), dtype=np.uint8)
    readable = np.ones(len(frame), dtype=bool)
    for i, item in enumerate(frame.itertuples()):
        try:
            images[i] = read_rgb(item.file, height, width)
        except UnreadableImageError as exc:
            problems.add(f"row {item.row} ({item.image_path})", str(exc))
            readable[i] = False
    problems.settle("images")
    return frame[readable].reset_index(drop=True), images[readable]


def load_dataset(params: Params) -> Dataset:
    """The dataset named by ``data.source`` for ``params.task``, fully validated and decoded."""
    return _load(params, params.data.source, "data.source")


def load_test_dataset(params: Params, train: Dataset) -> Dataset:
    """The fixed test set named by ``data.test_source``: validated like the source, with the
    source's classes, and sharing no plate string (plates) or image file (classification) with it."""
    test = _load(params, params.data.test_source, "data.test_source", known_classes=train.classes)
    check_no_overlap(params.kind, train, test)
    return test


def _load(params: Params, location: str, key: str, known_classes: list[str] | None = None) -> Dataset:
    data = params.data
    frame, source, classes = params.kind.load_frame(params, location, key, known_classes)
    frame, images = decode_images(frame, data.image_height, data.image_width, Problems(source, data.skip_invalid))
    if frame.empty:
        raise TransferlabError(f"{source}: no valid images left after skipping invalid rows")
    return Dataset(frame=frame, images=images, classes=classes, source=source)


def check_no_overlap(task, train: Dataset, test: Dataset) -> None:
    """Refuse a test set that shares plates (or, for classification, identical image files) with
    the source: a test item seen in training flatters the model. ``task``: a task object."""
    shared, what = task.shared_items(train, test)
    item = task.item
    if shared:
        examples = ", ".join(shared[:MAX_LISTED_OVERLAPS]) + (", ..." if len(shared) > MAX_LISTED_OVERLAPS else "")
        raise TransferlabError(
            f"data.test_source ({test.source}): {len(shared)} {what} (e.g. {examples}): "
            f"a test {item} seen in training flatters the model; remove them from one of the two"
        )
