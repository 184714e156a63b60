"""What makes a run findable in the MLflow UI: experiment kind, run names, the dataset used.

* Every experiment is tagged ``mlflow.experimentKind = custom_model_development``, the kind
  MLflow's UI uses to show a model-training experiment's runs table (rather than the
  GenAI views) on the page a user lands on.
* A training run's name leads with what differs between the compared variants (initial
  weights, strategy, augmentation, seed), then the backbone and the DVC experiment, so a
  list of runs reads as the comparison it is: ``imagenet-full-aug0.3-s0-efficientnet_lite0``.
* The training data is logged with ``mlflow.log_input``, its digest the prepared split's
  fingerprint, so runs on the same data are visibly the same dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

from transferlab.config import Params

TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def experiment_tags() -> dict[str, str]:
    """The tags every transferlab experiment carries."""
    return {TAG_EXPERIMENT_KIND: EXPERIMENT_KIND}


def tag_experiment(client, experiment) -> None:
    """Add :func:`experiment_tags` to an existing experiment that lacks them (older stores)."""
    for key, value in experiment_tags().items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)


def augmentation_label(params: Params) -> str:
    """``aug0`` when nothing is augmented (copies 0 or strength 0), else ``aug<strength>``
    (``x<copies>`` appended for more than one copy, ``-per-epoch`` with ``augment.mode: per_epoch``)."""
    cfg = params.augment
    if not cfg.augments:
        return "aug0"
    return (f"aug{cfg.strength:g}" + (f"x{cfg.copies}" if cfg.copies > 1 else "")
            + ("-per-epoch" if cfg.per_epoch else ""))


def variant_name(params: Params) -> str:
    """The run name of a training variant: what differs first, the constants after.

    Never MLflow's random name: training seeds Python's random module, so every run with
    the same seed would get the same "random" name.
    """
    cfg = params.train
    arm = "imagenet" if cfg.pretrained else "random-init"
    if params.pretrain.enabled:
        arm += "-synthetic"  # then fine-tuned on the real plates
    name = f"{arm}-{cfg.strategy}-{augmentation_label(params)}-s{cfg.seed}-{cfg.backbone}"
    experiment = os.environ.get("DVC_EXP_NAME")
    return f"{name} ({experiment})" if experiment else name


def log_dataset(images, labels, fingerprint: str, source: str | Path, name: str, context: str) -> None:
    """Log a dataset as an input of the active run (``mlflow.log_input``), digest = ``fingerprint``."""
    import warnings

    import mlflow

    with warnings.catch_warnings():
        # MLflow registers its local-file source class twice (for "" and "file:"), then warns on every
        # local path that it matches both: the same class, nothing a user can act on.
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        dataset = mlflow.data.from_numpy(images, targets=labels, source=str(Path(source).resolve()), name=name,
                                         digest=fingerprint)
    mlflow.log_input(dataset, context=context)
