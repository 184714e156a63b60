"""Small file helpers shared by the stages: atomic outputs, JSON, array caches."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from transferlab.errors import TransferlabError


@contextlib.contextmanager
def atomic_output_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder that replaces ``path`` only if the block succeeds.

    A crash or Ctrl-C halfway leaves the previous output (or nothing) in place, never a
    half-written one, so DVC and the user never see a mix of old and new files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the output should look like any other folder
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def unlinked(path: str | Path) -> Path:
    """``path`` with any existing file removed, for a write that opens it in place.

    A DVC output may be a hardlink into DVC's cache (``cache.type`` in .dvc/config); writing
    through it would change the cached version too (read-only protection does not stop
    root). A new file breaks the link instead.
    """
    path = Path(path)
    path.unlink(missing_ok=True)
    return path


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename), keys sorted for stable diffs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_to_builtin) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def key_hash(key: Any, length: int = 16) -> str:
    """A short stable hash of ``key`` (JSON-serialisable; other values by ``str``): what a cached
    result was made from, so a cache is reused exactly when the key is the same."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:length]


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_stage_json(path: str | Path, stage: str) -> Any:
    """A JSON file written by an earlier stage; if it is missing, say which stage to run."""
    path = Path(path)
    if not path.is_file():
        raise TransferlabError(f"{path}: not found: run the {stage} stage first (dvc repro {stage})")
    return read_json(path)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks so large files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _to_builtin(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
