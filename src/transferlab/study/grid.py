"""The study's grid: its variants (group, arm, augmentation, size, seed), their params and keys.

One definition for both ways of running it: ``run_all`` walks :func:`variants`, and
``study/dvc.yaml``'s matrix stages name the same cells, which :func:`find_variant` looks up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transferlab.config import Params, StudyConfig
from transferlab.errors import TransferlabError
from transferlab.io import key_hash
from transferlab.tasks import task_for
from transferlab.study.sources import source_model

RESULT_FILE = "result.json"
HISTORY_FILE = "history.csv"
RESULTS_TABLE = "results.csv"
REPORT_FILE = "report.md"
IMAGE_SCORES = "images_test_"  # result fields: per-image test scores of each metric, for paired comparisons
FIGURES = {
    "factorial": "factorial.png",
    "curves": "learning_curves.png",
    "sizes": "data_size.png",
    "strategies": "strategies.png",
    "verdict": "verdict.png",
}


@dataclass(frozen=True)
class Variant:
    """One trained configuration of the study."""

    group: str
    arm: str
    augment: float
    train_size: int
    seed: int
    source: str = ""  # group sources: the initial weights (none, imagenet, synthetic, imagenet_synthetic)

    @property
    def pretrained(self) -> bool:
        """Starts from ImageNet weights (directly, or under the synthetic pretraining)."""
        if self.source:
            return self.source in ("imagenet", "imagenet_synthetic")
        return self.arm != "scratch"

    @property
    def name(self) -> str:
        """The compared arm: the strategy, or source/strategy in the sources group."""
        return f"{self.source}/{self.arm}" if self.source else self.arm

    @property
    def key(self) -> str:
        prefix = f"{self.source}-" if self.source else ""
        return f"{prefix}{self.arm}-aug{self.augment:g}-n{self.train_size}-s{self.seed}"

    def folder(self, study: StudyConfig) -> Path:
        return Path(study.output) / "variants" / self.group / self.key

    def label(self) -> str:
        return f"{self.name} aug {self.augment:g}"


# --------------------------------------------------------------------------- parameters


def metric_name(task: str, study: StudyConfig) -> str:
    kind = task_for(task)
    if study.metric == "auto":
        return kind.scored_metric
    if study.metric not in kind.compared_metrics:
        raise TransferlabError(f"study.metric {study.metric} is not measured for task {task}; use "
                               f"{' or '.join(kind.compared_metrics)} (or auto)")
    return study.metric


def variants(study: StudyConfig) -> list[Variant]:
    """Every variant of the grid, in the order they run (factorial, strategies, sizes)."""
    found = [Variant("factorial", arm, float(a), study.train_size, seed)
             for arm in study.arms for a in study.augment_strengths for seed in study.seeds]
    found += [Variant("strategies", arm, 0.0, study.train_size, seed)
              for arm in study.strategies for seed in study.seeds]
    found += [Variant("sizes", arm, 0.0, int(n), seed)
              for arm in ("scratch", study.transfer_arm) for n in study.train_sizes for seed in study.size_seeds]
    found += [Variant("sources", strategy, 0.0, study.train_size, seed, source)
              for source in study.sources for strategy in study.source_strategies for seed in study.seeds]
    return found


def variant_params(params: Params, study: StudyConfig, variant: Variant) -> Params:
    """params.yaml with the variant's backbone, weights, strategy, seed, size and schedule."""
    arm = variant.arm
    strategy = "frozen" if arm == "probe" else arm
    # Every arm gets the same number of epochs: finetune splits them into head + finetune phases.
    epochs = study.epochs if strategy == "finetune" else study.epochs + study.finetune_epochs
    train = {**params.train.model_dump(), "backbone": study.backbone, "head_pooling": study.head_pooling,
             "pretrained": variant.pretrained, "strategy": strategy, "seed": variant.seed,
             "epochs": epochs, "finetune_epochs": study.finetune_epochs, "unfreeze_depth": study.unfreeze_depth,
             "learning_rate": study.learning_rate, "batch_size": study.batch_size, "early_stopping_patience": 0,
             "init_from": source_model(study, variant.source), "cache_features": True}
    data = {**params.data.model_dump(), "image_height": study.image_height, "image_width": study.image_width}
    augment = {**params.augment.model_dump(), "strength": variant.augment,
               "copies": study.augment_copies if variant.augment > 0 else 0, "seed": variant.seed}
    raw = {**params.model_dump(), "train": train, "data": data, "augment": augment}
    return Params.model_validate(raw)


def variant_hash(params: Params, study: StudyConfig, variant: Variant, fingerprint: str) -> str:
    """What shapes a variant's result: a finished variant with the same hash is not run again."""
    shaping = {k: v for k, v in study.model_dump().items()
               if k not in ("arms", "augment_strengths", "seeds", "strategies", "train_sizes", "size_seeds", "name",
                            "experiment", "report", "transfer_arm", "metric", "rope")}
    pretraining = [params.generate.model_dump(), params.pretrain.model_dump()] if "synthetic" in variant.source else []
    return key_hash([variant_params(params, study, variant).train.model_dump(), params.task,
                     params.plates.model_dump(), shaping, variant.key, fingerprint, pretraining])


# --------------------------------------------------------------------------- data


def fold_of(study: StudyConfig, variant: Variant) -> int | None:
    """The cross-validation fold of a variant: its repetition's position among the seeds."""
    if study.folds < 2:
        return None
    seeds = study.size_seeds if variant.group == "sizes" else study.seeds
    return seeds.index(variant.seed) % study.folds


def find_variant(study: StudyConfig, group: str, arm: str, augment: float, train_size: int, seed: int,
                 source: str = "") -> Variant:
    wanted = Variant(group, arm, float(augment), int(train_size), int(seed), source)
    if wanted not in variants(study):
        raise TransferlabError(f"variant {group}/{wanted.key} is not in the study grid of params.yaml")
    return wanted
