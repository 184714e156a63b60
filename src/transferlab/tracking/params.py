"""Parameters and provenance tags as MLflow takes them: flat keys, cut to MLflow's limits."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from transferlab.tracking.locations import project_root

# Tag keys written by run_tags (besides MLflow's own ``mlflow.source.git.commit``).
TAG_GIT_COMMIT = "git_commit"
TAG_DVC_EXP_NAME = "dvc_exp_name"
TAG_DVC_STAGE = "dvc_stage"
TAG_DATASET_FINGERPRINT = "dataset_fingerprint"

# MLflow's limits (mlflow.utils.validation): longer values are rejected, so they are cut.
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_KEY_LENGTH = 250



def _scalar(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        return value.as_posix()
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return _scalar(value)


def _key(key: str) -> str:
    """A key MLflow accepts: invalid characters become ``_``; at most 250 characters."""
    key = re.sub(r"[^/\w.\- :]", "_", key)
    return key[:MAX_KEY_LENGTH]


def _cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def flatten_params(nested: Mapping[str, Any] | Any, prefix: str = "") -> dict[str, str]:
    """Nested parameters as flat MLflow params: ``{"train": {"lr": 1}}`` -> ``{"train.lr": "1"}``.

    Lists (and tuples) become JSON strings (``[0.0, 0.5]``), empty mappings ``{}``, other
    values ``str()`` (enums their value, paths posix); pydantic models are dumped first.
    Values longer than MLflow's limit (6000 characters) are cut and end in ``...``.
    """
    if hasattr(nested, "model_dump"):
        nested = nested.model_dump()
    flat: dict[str, str] = {}
    for key, value in nested.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, name))
            continue
        if isinstance(value, Mapping):
            text = "{}"
        elif isinstance(value, (list, tuple, set, frozenset)):
            text = json.dumps(_jsonable(value), ensure_ascii=False)
        else:
            text = _scalar(value)
        flat[_key(name)] = _cut(text, MAX_PARAM_VALUE_LENGTH)
    return flat


def _git_commit(root: Path) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else "unknown"


def run_tags(fingerprint: str | None = None) -> dict[str, str]:
    """Provenance tags for a run.

    ``git_commit`` (and MLflow's ``mlflow.source.git.commit``): the commit the run's code
    comes from -- for a DVC experiment its baseline commit (``DVC_EXP_BASELINE_REV``, also
    right for queued runs whose copy has no useful HEAD), otherwise HEAD of the project
    root; ``"unknown"`` outside git. ``dvc_exp_name`` (``DVC_EXP_NAME``) and ``dvc_stage``
    (``DVC_STAGE``) when DVC runs the stage; ``dataset_fingerprint`` when given.
    """
    commit = os.environ.get("DVC_EXP_BASELINE_REV") or _git_commit(project_root())
    tags = {TAG_GIT_COMMIT: commit, "mlflow.source.git.commit": commit}
    if os.environ.get("DVC_EXP_NAME"):
        tags[TAG_DVC_EXP_NAME] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_STAGE"):
        tags[TAG_DVC_STAGE] = os.environ["DVC_STAGE"]
    if fingerprint:
        tags[TAG_DATASET_FINGERPRINT] = fingerprint
    return tags
