"""Which parameters a stage's MLflow run records: the sections the stage reads, not all of params.yaml.

Logging every section as params of every run makes runs look different in the UI when only
an unrelated section changed (a tuning search space, the study grid), and hides what really
differs. So a run's params are the keys of :data:`STAGE_SECTIONS` (the stage's ``params:``
in ``dvc.yaml``, plus the upstream sections whose outputs the stage consumes), and the whole
configuration is one artifact beside them (:data:`PARAMS_ARTIFACT`) for the full record.
"""

from __future__ import annotations

from typing import Any

from transferlab.config import Params

PARAMS_ARTIFACT = "params/params.yaml"

# A dotted entry ("augment.strength") picks one key of a section. train also records split and
# augment: its training set is their output (the augmentation is one of the compared arms).
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "train": ("task", "plates", "data", "split", "augment", "pretrain", "train", "mlflow"),
    "pretrain": ("task", "plates", "generate", "data", "pretrain", "train", "mlflow"),
    "evaluate": ("task", "plates", "augment.strength", "augment.copies", "pretrain.enabled", "pretrain.recipe",
                 "data.source", "train.batch_size", "evaluate"),
}


def stage_params(params: Params, stage: str) -> dict[str, Any]:
    """The nested parameters ``stage`` reads (:data:`STAGE_SECTIONS`), JSON-ready."""
    full = params.model_dump(mode="json")
    picked: dict[str, Any] = {}
    for entry in STAGE_SECTIONS[stage]:
        section, _, key = entry.partition(".")
        if key:
            picked.setdefault(section, {})[key] = full[section][key]
        else:
            picked[section] = full[section]
    return picked


def log_full_params(params: Params) -> None:
    """The whole effective configuration as one artifact of the active run (``params/params.yaml``)."""
    import mlflow
    import yaml

    mlflow.log_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
                    PARAMS_ARTIFACT)
