"""The in-domain recipe: the synthetic budget and the fine-tuning settings, from the data's size.

With ``pretrain.enabled`` on the user's own plates (``pretrain.recipe: auto``), these keys
follow a rule instead of params.yaml's values, which were chosen for the 15,400-plate
synthetic default run. A key whose value differs from its default was set by hand and wins.

The rule, and why (measured on 510 real training crops, README *In-domain transfer*):

- pretraining budget: about 120,000 synthetic image-epochs at 48x144 (30,000 plates x 4
  epochs, scaled down for larger working sizes): a pretrained reader needs many distinct
  plates, and this is what fits a one-hour run on 2 CPU cores;
- fine-tuning learning rate 5e-4: a quarter of the from-ImageNet rate, the start already reads plates;
- head pooling ``spatial`` for both: the head keeps where each character sits;
- augmentation copies by real training-set size (4 below 2,000 images, 2 below 5,000, 1 below
  20,000, else none): a few hundred crops need variety, a large set has it;
- epochs: enough for about 1,200 optimizer steps (8 to 40 epochs), patience a third of them,
  so a fine-tune does not stop while its validation metric is still rising.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from transferlab.config.base import Section, set_dotted

PRETRAIN_IMAGE_EPOCHS = 120_000  # synthetic images x epochs at the reference working size below
REFERENCE_PIXELS = 48 * 144
PRETRAIN_EPOCHS = 4
FINETUNE_STEPS = 1200
FINETUNE_LEARNING_RATE = 5e-4


@dataclass(frozen=True)
class Choice:
    """One key the recipe sets: its dotted name, value and why."""

    key: str
    value: Any
    reason: str


def applies(params) -> bool:
    """The recipe is for in-domain transfer on the user's own plates."""
    return (params.pretrain.enabled and params.pretrain.recipe == "auto" and params.kind.plate_strings
            and not params.reads_generator_output)


def copies_for(n_train: int) -> int:
    return 4 if n_train < 2000 else 2 if n_train < 5000 else 1 if n_train < 20000 else 0


def recipe(params, n_train: int | None) -> list[Choice]:
    """The rule's choices; those that need the real training-set size only when ``n_train`` is given."""
    scale = REFERENCE_PIXELS / (params.data.image_height * params.data.image_width)
    count = int(min(30_000, max(5_000, round(PRETRAIN_IMAGE_EPOCHS * scale / PRETRAIN_EPOCHS, -2))))
    found = [
        Choice("generate.count", count, f"{PRETRAIN_IMAGE_EPOCHS:,} synthetic image-epochs at 48x144 "
               f"(scaled to {params.data.image_height}x{params.data.image_width}) over {PRETRAIN_EPOCHS} epochs"),
        Choice("pretrain.epochs", PRETRAIN_EPOCHS, "the synthetic budget's epochs"),
        Choice("pretrain.early_stopping_patience", 2, "stop a pretraining that no longer improves"),
        Choice("train.head_pooling", "spatial", "the head keeps where each character sits (pretraining and "
               "fine-tuning share the head)"),
        Choice("train.learning_rate", FINETUNE_LEARNING_RATE, "fine-tuning a model that already reads plates: a "
               "quarter of the from-ImageNet rate"),
    ]
    if n_train is None:
        return found
    copies = copies_for(n_train)
    per_epoch = math.ceil(n_train * (1 + copies) / params.train.batch_size)
    epochs = int(min(40, max(8, math.ceil(FINETUNE_STEPS / per_epoch))))
    found += [
        Choice("augment.copies", copies, f"{n_train} real training images: {copies} augmented copies each "
               "(4 below 2,000, 2 below 5,000, 1 below 20,000)"),
        Choice("train.epochs", epochs, f"about {FINETUNE_STEPS} optimizer steps at {per_epoch} per epoch (8-40 epochs)"),
        Choice("train.early_stopping_patience", max(3, epochs // 3), "a third of the epochs: no early stop while "
               "validation is still rising"),
    ]
    return found


def default_of(key: str) -> Any:
    """The schema's default of a dotted key."""
    from transferlab.config import Params

    return value_of(Params(), key)


def value_of(params, key: str) -> Any:
    value: Any = params
    for part in key.split("."):
        value = getattr(value, part)
    return value.model_dump() if isinstance(value, Section) else value


def with_updates(params, updates: dict[str, Any]):
    """``params`` with dotted keys replaced (validated like params.yaml)."""
    raw = params.model_dump()
    for key, value in updates.items():
        set_dotted(raw, key, value)
    return type(params).model_validate(raw)


def apply(params, n_train: int | None = None) -> tuple[Any, dict[str, dict]]:
    """``params`` with the recipe's keys set where it applies and the key was not set by hand.

    Returns the params and, per key, ``{"value", "reason"}`` (a hand-set key: its own value and
    "set in params.yaml"), for metrics and the MLflow run.
    """
    if not applies(params):
        return params, {}
    chosen, record = {}, {}
    for choice in recipe(params, n_train):
        own = value_of(params, choice.key)
        if own != default_of(choice.key):
            record[choice.key] = {"value": own, "reason": "set in params.yaml (differs from the default)"}
        else:
            chosen[choice.key] = choice.value
            record[choice.key] = {"value": choice.value, "reason": choice.reason}
    return with_updates(params, chosen), record
