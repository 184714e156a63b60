"""An exclusive file lock across processes, for the few places where several local processes
must not do the same first-time setup at once (the MLflow store, a study's sqlite file)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created with its folder) while the block runs.

    A no-op for None, and without ``fcntl`` (Windows), where the database's own busy timeout
    is all there is; the folder is still created, since callers write into it.
    """
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
