"""Shared pieces of the params.yaml schema: the section base class, value types and plate-format constants."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


DEFAULT_PARAMS_FILE = "params.yaml"

# 0-9 and A-Z without the letter O (too easily read as zero): the 35 classes of the
# original question's 7 heads x 35 characters.
DEFAULT_ALPHABET = "0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"

# Placeholders in a plate format; every other character is printed literally.
FORMAT_DIGIT, FORMAT_LETTER, FORMAT_ANY = "#", "@", "*"
# Rendered as visual separators only: they are never part of the label.
FORMAT_SEPARATORS = " -"
DEFAULT_FORMATS = ["@@@ ####"]
# plates.alphabet / plates.slots / generate.formats: read from data.source's labels (transferlab.generate.formats).
AUTO = "auto"

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class Section(BaseModel):
    """Base of every params.yaml section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def format_label_chars(fmt: str) -> str:
    """The part of a plate format that becomes label characters (separators removed)."""
    return "".join(c for c in fmt if c not in FORMAT_SEPARATORS)


BackboneName = Literal["efficientnet_b0", "efficientnet_lite0", "mobilenet_v2", "plain_cnn"]
Strategy = Literal["scratch", "frozen", "finetune", "full"]
TrainSize = Annotated[int, Field(ge=1, le=10_000_000)]


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` (``train.epochs``) of a raw params mapping to ``value``, making the
    sections it names when missing; a ValueError names a part of the key that holds a value."""
    *parents, last = key.split(".")
    node = raw
    for depth, part in enumerate(parents):
        child = node.get(part)
        if child is None:
            node[part] = child = {}
        elif not isinstance(child, dict):
            raise ValueError(f"{'.'.join(parents[:depth + 1])} is a value, not a section")
        node = child
    node[last] = value
