"""Where a repository's MLflow store is, also from inside DVC's temporary experiment copies."""

from __future__ import annotations

import os
from pathlib import Path

STORE_DIRNAME = "mlruns"
DB_FILENAME = "mlflow.db"
ARTIFACTS_DIRNAME = "artifacts"

_EXPS_COMPONENTS = (".dvc", "tmp", "exps")


def _exps_prefix(path: Path) -> Path | None:
    """The repository holding ``path`` when ``path`` is inside ``<repo>/.dvc/tmp/exps/``."""
    parts = path.parts
    n = len(_EXPS_COMPONENTS)
    for i in range(1, len(parts) - n + 1):
        if parts[i : i + n] == _EXPS_COMPONENTS:
            return Path(*parts[:i])
    return None


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
    except ValueError:
        return False
    return True


def project_root(start: Path | None = None) -> Path:
    """The user's repository root (absolute), also from inside DVC's temporary experiment copies.

    In order: a ``.dvc/tmp/exps`` component in ``start`` (default: the working directory)
    means a queued/temp DVC experiment copy, whose repository is the prefix before it;
    otherwise ``DVC_ROOT`` (set by DVC for stage commands) when ``start`` lies inside it;
    otherwise the nearest ancestor holding a ``.dvc`` folder, then one holding ``dvc.yaml``,
    then one holding ``.git``; otherwise ``start`` itself.
    """
    here = Path(start if start is not None else Path.cwd()).expanduser().resolve()
    prefix = _exps_prefix(here)
    if prefix is not None:
        return prefix

    dvc_root = os.environ.get("DVC_ROOT")
    if dvc_root:
        root = Path(dvc_root).expanduser().resolve()
        root = _exps_prefix(root) or root
        if root.is_dir() and _is_within(here, root):
            return root

    candidates = [here, *here.parents]
    for is_root in (lambda d: (d / ".dvc").is_dir(), lambda d: (d / "dvc.yaml").is_file(),
                    lambda d: (d / ".git").exists()):
        for folder in candidates:
            if is_root(folder):
                return folder
    return here


def _root(root: Path | str | None) -> Path:
    return project_root() if root is None else Path(root).expanduser().resolve()


def store_dir(root: Path | str | None = None) -> Path:
    """``<root>/mlruns``: the MLflow store of the repository (default: :func:`project_root`)."""
    return _root(root) / STORE_DIRNAME


def artifacts_dir(root: Path | str | None = None) -> Path:
    """``<root>/mlruns/artifacts``: the artifact root of every experiment in the store."""
    return store_dir(root) / ARTIFACTS_DIRNAME


def tracking_uri(root: Path | str | None = None) -> str:
    """``sqlite:///<absolute path>/mlruns/mlflow.db``."""
    return "sqlite:///" + (store_dir(root) / DB_FILENAME).as_posix()
