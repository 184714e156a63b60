"""Stage ``test-source``: a content stamp of ``data.test_source`` that the ``split`` stage depends on.

DVC cannot depend on a path that may be null, so this stage runs on every ``dvc repro``
(it only hashes files, about a second) and writes a small JSON stamp; ``split`` depends on
the stamp, so it re-runs when the test set's content changes, and only then. Validation is
left to ``split``: a missing or unreadable file is hashed as such.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from transferlab.config import Params
from transferlab.tasks import task_for
from transferlab.io import file_sha256, write_json

STAMP_FILE = "metrics/test_source.json"


def listed_files(task: str, location: str | Path) -> list[Path]:
    """The files that make up a dataset: the plate CSV and the images it names, or the class folders' images."""
    return task_for(task).listed_files(Path(location))


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
