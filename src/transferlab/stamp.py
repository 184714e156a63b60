"""Stage ``test-source``: a content stamp of ``data.test_source`` that the ``split`` stage depends on.

DVC cannot depend on a path that may be null, so this stage runs on every ``dvc repro``
(it only hashes files, about a second) and writes a small JSON stamp; ``split`` depends on
the stamp, so it re-runs when the test set's content changes, and only then. Validation is
left to ``split``: a missing or unreadable file is hashed as such.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from transferlab.config import Params
from transferlab.datasets import class_image_files, plate_csv_path
from transferlab.io import file_sha256, write_json

STAMP_FILE = "metrics/test_source.json"


def listed_files(task: str, location: str | Path) -> list[Path]:
    """The files that make up a dataset: the plate CSV and the images it names, or the class folders' images."""
    path = Path(location)
    if task == "classification":
        return [file for _, file in class_image_files(path)] if path.is_dir() else []
    csv = plate_csv_path(path)
    if not csv.is_file():
        return []
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return [csv]  # the CSV's own bytes still change with every edit
    names = frame["image_path"] if "image_path" in frame.columns else []
    return [csv] + [csv.parent / name for name in names if name.strip()]


def source_stamp(task: str, location: str | Path) -> dict:
    """File count and one SHA-256 over every file's path and content."""
    files = listed_files(task, location)
    digest = hashlib.sha256()
    for file in files:
        content = file_sha256(file) if file.is_file() else "missing"
        digest.update(f"{file}\0{content}\n".encode())
    return {"test_source": str(location), "files": len(files), "sha256": digest.hexdigest()}


def run(params: Params) -> dict:
    """Write the stamp of data.test_source ({"test_source": null} when none is set)."""
    location = params.data.test_source
    stamp = source_stamp(params.task, location) if location else {"test_source": None}
    write_json(STAMP_FILE, stamp)
    if location:
        print(f"test-source: {location}: {stamp['files']} file(s), sha256 {stamp['sha256'][:16]}")
    return stamp
