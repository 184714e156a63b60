"""The look file the ``look`` stage writes, and how ``generate`` applies it.

``<look.output>/look.yaml`` holds a ``generate:`` section of look keys (styles, capture
conditions, render size, ...). When it says ``fitted: true``, ``generate`` renders with those
keys in place of params.yaml's; the look stage has already kept every key the user changed
from its default, so the file is the whole effective look, readable on its own.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from transferlab.config import Params
from transferlab.errors import TransferlabError

LOOK_FILE = "look.yaml"
METRICS_FILE = "metrics/look.json"  # written by the look stage (distances, kept keys)
# The generate keys a look consists of (what the look stage fits or keeps).
LOOK_KEYS = ("height", "width", "styles", "country_strip_probability", "prefix_glyphs", "bare_one", "capture",
             "uniform_share")


def look_path(params: Params) -> Path:
    return Path(params.look.output) / LOOK_FILE


def read_look(params: Params) -> dict | None:
    """The fitted look's ``generate`` keys, or None when the look stage fitted none."""
    path = look_path(params)
    return read_look_file(path) if path.is_file() else None


def read_look_file(path: str | Path, key: str = "the look stage",
                   rerun: str = "run the look stage again (dvc repro look)") -> dict | None:
    """The ``generate`` keys of a look file (``fitted: true``), or None when it says ``fitted: false``.

    ``key`` and ``rerun`` say in an error where the file came from and how to make it again.
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TransferlabError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise TransferlabError(f"{path}: look file of {key} not readable: {exc}") from None
    if not isinstance(doc, dict) or not doc.get("fitted"):
        return None
    look = doc.get("generate")
    unknown = sorted(set(look or {}) - set(LOOK_KEYS)) if isinstance(look, dict) else None
    if unknown is None or unknown:
        raise TransferlabError(f"{path}: generate must be a mapping of look keys ({', '.join(LOOK_KEYS)}); "
                               f"{rerun}")
    return look


def with_look(params: Params, look: dict) -> Params:
    """``params`` with ``look``'s generate keys in place."""
    return Params.model_validate({**params.model_dump(), "generate": {**params.generate.model_dump(), **look}})


def with_fitted_look(params: Params) -> tuple[Params, bool]:
    """``params`` with the look stage's fitted look applied (and whether there was one)."""
    look = read_look(params)
    return (params, False) if look is None else (with_look(params, look), True)
