"""params.yaml sections of the experiments outside the default pipeline: study and tune."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from transferlab.config.base import BackboneName, Fraction, Section, Seed, Strategy, TrainSize


# The real plates bundled with the project (datasets/cn_plates/README.md): the default study's data.
BUNDLED_STUDY_SOURCE = "datasets/cn_plates/train.csv"
BUNDLED_STUDY_TEST_SOURCE = "datasets/cn_plates/test.csv"
StudyArm = Literal[(*get_args(Strategy), "probe")]  # the training strategies and the linear probe


class StudyConfig(Section):
    """Section ``study``: the study of transfer learning (study/dvc.yaml, ``transferlab study``).

    The defaults here are params.yaml's (a test keeps the two equal): the question of where the
    initial weights should come from, on the bundled real plates, within about an hour on 2 cores.
    """

    name: str = Field("transfer-study", min_length=1, description="MLflow tag `study` of every variant")
    experiment: str = Field("transferlab-study", min_length=1, description="MLflow experiment of the variants")
    source: str | None = Field(
        "auto", min_length=1,
        description="the study's data. auto: data.source (and data.test_source) when it is yours, else the real "
                    "plates bundled in datasets/cn_plates (data.source is generate's own output: there is nothing "
                    "real to study). A path: that data, in the format of data.source (a plate CSV or its folder, or "
                    "class folders). Either way the study splits it into <output>/prepared (plates.alphabet and "
                    "slots read from its labels). null: the pipeline's split")
    test_source: str | None = Field(
        "auto", min_length=1,
        description="the fixed test set that goes with source. auto: with source auto, data.test_source (your "
                    "data) or the bundled test.csv; with source a path, none. A path (with source a path): a fixed "
                    "test set in the same format; null: the test part is split from source (split.test_fraction)")
    look: str | None = Field(
        "auto", min_length=1,
        description="the look of the synthetic sources' plates: a look file (look.yaml, as the look stage writes); "
                    "auto: look.yaml beside source when there is one, else the look stage's fit when source is "
                    "data.source (or null), else a look the study fits to its training crops (<output>/look); "
                    "null: params.yaml's generate look")
    backbone: BackboneName = "efficientnet_lite0"
    head_pooling: Literal["global", "spatial"] = Field(
        "spatial", description="the plate head of every variant and synthetic source (as train.head_pooling); "
        "spatial keeps where each character sits, as the in-domain recipe does")
    arms: list[StudyArm] = Field(
        default_factory=list,
        description="factorial arms (group factorial, H1-H4); scratch = random init, every other arm starts from "
                    "ImageNet weights; []: no factorial")
    transfer_arm: Literal["frozen", "finetune", "full", "probe"] = Field(
        "finetune", description="the pretrained arm compared with scratch in H2-H4 and the data-size curve")
    augment_strengths: list[Fraction] = Field(
        default_factory=lambda: [0.0], min_length=1,
        description="factorial augmentation levels; 0 is the no-augmentation baseline")
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    strategies: list[StudyArm] = Field(
        default_factory=list,
        description="further strategies run without augmentation and ranked with the factorial arms")
    train_sizes: list[TrainSize] = Field(default_factory=list,
                                         description="data-size curve: other training-set sizes ([]: none)")
    size_seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2])
    sources: list[Literal["none", "imagenet", "synthetic", "imagenet_synthetic"]] = Field(
        default_factory=lambda: ["none", "imagenet", "synthetic", "imagenet_synthetic"],
        description="plates: where the initial weights come from, crossed with source_strategies (group sources); "
                    "synthetic sources pretrain on synthetic_count plates like the labels; []: no sources group")
    source_strategies: list[Literal["frozen", "finetune", "full"]] = Field(
        default_factory=lambda: ["frozen", "full"], min_length=1)
    synthetic_count: int = Field(8000, ge=10, le=1_000_000, description="synthetic plates per synthetic source")
    folds: int = Field(3, ge=0, le=20, description="k-fold cross-validation over train + validation: repetition r "
                       "(the r-th seed) validates on fold r mod k, so intervals include the split's variance; 0: off")
    train_size: int = Field(0, ge=0, description="training images per variant (seeded subset; 0: all)")
    val_size: int = Field(0, ge=0, description="validation images (fixed subset; 0: all)")
    test_size: int = Field(400, ge=0, description="test images (fixed subset; 0: all)")
    image_height: int = Field(48, ge=32, le=512, description="images are resized to this for the study")
    image_width: int = Field(144, ge=32, le=1024)
    epochs: int = Field(6, ge=1, le=1000, description="finetune: epochs of the head phase; other arms train "
                        "epochs + finetune_epochs in all (the same budget)")
    finetune_epochs: int = Field(6, ge=0, le=1000, description="finetune: epochs after unfreezing")
    unfreeze_depth: int = Field(2, ge=0, le=1000)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    batch_size: int = Field(32, ge=1, le=4096)
    augment_copies: int = Field(1, ge=1, le=20, description="augmented copies per training image when strength > 0")
    probe: Literal["logistic", "svm"] = Field("logistic", description="linear classifier of the probe")
    probe_c: float = Field(1.0, gt=0, description="inverse regularisation strength of the probe")
    metric: Literal["auto", "plate_accuracy", "char_accuracy", "accuracy"] = Field(
        "auto", description="the compared test metric; auto: char_accuracy (plates) / accuracy (classification)")
    rope: float = Field(0.01, ge=0, le=1, description="region of practical equivalence: arms whose difference in "
                        "the compared metric is within ±rope are equivalent for practical purposes")
    output: str = Field("study/results", min_length=1, description="variant results and cached features (DVC)")
    report: str = Field("docs/study", min_length=1, description="report.md, results.csv and figures (committed)")

    @model_validator(mode="after")
    def _check(self) -> StudyConfig:
        if self.backbone == "plain_cnn" and any(a != "scratch" for a in [*self.arms, *self.strategies]):
            raise ValueError("backbone plain_cnn has no pretrained weights: only the scratch arm can run")
        if self.backbone == "plain_cnn" and {"imagenet", "imagenet_synthetic"} & set(self.sources):
            raise ValueError("backbone plain_cnn has no ImageNet weights: sources can only be none and synthetic")
        if self.backbone == "plain_cnn" and self.train_sizes:
            raise ValueError("backbone plain_cnn has no pretrained arm for the data-size curve: set train_sizes: []")
        if self.folds == 1:
            raise ValueError("folds: 1 fold leaves nothing to train on (use 0 for no cross-validation, or >= 2)")
        for key in ("seeds", "size_seeds", "arms", "strategies", "train_sizes", "sources", "source_strategies"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ValueError(f"{key} must not repeat" if "seeds" not in key else "seeds must not repeat")
        if not (self.arms or self.strategies or self.train_sizes or self.sources):
            raise ValueError("the study has no variant: arms, strategies, train_sizes and sources are all empty "
                             "(set at least one)")
        if self.test_source not in (None, "auto") and self.source in (None, "auto"):
            raise ValueError(f"test_source is a path but source is {self.source or 'null'}: the study then reads "
                             "the pipeline's split (or the bundled plates), whose test set is data.test_source "
                             "(set source to a path too, or test_source: auto)")
        return self


TuneMetric = Literal["val_plate_accuracy", "val_char_accuracy", "val_accuracy", "val_loss"]


class SearchSpace(Section):
    """What the study searches; ``null`` keeps a dimension at its params.yaml value."""

    augment_strength: list[Fraction] | None = Field(
        default_factory=lambda: [0.0, 1.0], description="[low, high], uniform")
    learning_rate: list[float] | None = Field(
        default_factory=lambda: [1e-4, 1e-2], description="[low, high], log-uniform")
    unfreeze_depth: list[int | Literal["all"]] | None = Field(
        default_factory=lambda: [0, "all"],
        description="[low, high] blocks unfrozen from the top (0 = frozen, all = every block); finetune only")
    strategy: list[Strategy] | None = Field(None, description="e.g. [frozen, finetune, full]")
    backbone: list[BackboneName] | None = Field(None, description="e.g. [efficientnet_lite0, mobilenet_v2]")
    pretrained: list[bool] | None = Field(None, description="[true, false]")

    @field_validator("augment_strength", "learning_rate", "unfreeze_depth")
    @classmethod
    def _check_range(cls, value, info):
        if value is None:
            return value
        if len(value) != 2:
            raise ValueError(f"expected [low, high], got {len(value)} value(s) (null: do not search it)")
        low, high = value
        if info.field_name == "learning_rate" and not (0.0 < low <= 1.0 and 0.0 < high <= 1.0):
            raise ValueError(f"learning rates must be in (0, 1] (the scale is logarithmic), got {value}")
        if info.field_name == "unfreeze_depth":
            if low == "all" or low < 0 or (high != "all" and high < 0):
                raise ValueError(f"expected [low, high] blocks with 0 <= low < high (high may be all), got {value}")
            if high == "all":
                return value
        if not low < high:
            raise ValueError(f"low {low} must be below high {high} (null: do not search it)")
        return value

    @model_validator(mode="after")
    def _check_searches_something(self) -> SearchSpace:
        if all(getattr(self, name) is None for name in SearchSpace.model_fields):
            raise ValueError("every dimension is null: nothing to tune")
        return self

    @field_validator("strategy", "backbone", "pretrained")
    @classmethod
    def _check_choices(cls, value):
        if value is not None:
            if not value:
                raise ValueError("empty list (null: do not search it)")
            if len(set(value)) != len(value):
                raise ValueError(f"repeated choices in {value}")
        return value


class TuneConfig(Section):
    """Stage ``tune``: the Optuna study (not run by the default ``dvc repro``)."""

    study_name: str = Field("transferlab", min_length=1)
    storage: str | None = Field(
        None, description="SQLAlchemy URL shared by all workers; null: sqlite under <root>/tune/optuna.db")
    n_trials: int = Field(12, ge=1, le=100_000, description="finished (complete + pruned) trials the study should have")
    timeout: float | None = Field(None, gt=0, description="seconds after which this run starts no new trial")
    sampler: Literal["tpe", "random"] = "tpe"
    startup_trials: int = Field(5, ge=0, le=10_000, description="tpe: random trials before the model guides the search")
    pruner: Literal["median", "hyperband", "none"] = "median"
    pruner_startup_trials: int = Field(3, ge=0, le=10_000, description="median: finished trials before any is pruned")
    pruner_warmup_epochs: int = Field(1, ge=0, le=10_000, description="no trial is pruned during its first n epochs")
    seed: Seed = 0
    metric: TuneMetric | None = Field(
        None, description="null: val_char_accuracy (plates) / val_accuracy (classification)")
    train_images: int | None = Field(
        3000, ge=1, description="seeded subset of the training split every trial trains on; null: all of it")
    val_images: int | None = Field(1000, ge=1, description="seeded subset of the validation split; null: all of it")
    epochs: int | None = Field(3, ge=1, le=10_000, description="per trial; null: train.epochs")
    finetune_epochs: int | None = Field(3, ge=0, le=10_000, description="per trial; null: train.finetune_epochs")
    rope: float = Field(0.01, ge=0, le=1, description="region of practical equivalence of the best trial and the "
                        "runner-up (±rope of the metric): within it they are equivalent, not a clear winner")
    search: SearchSpace = Field(default_factory=SearchSpace)
    output: str = Field("tune/best_params.yaml", min_length=1)

    @field_validator("storage")
    @classmethod
    def _check_storage(cls, value):
        if value is not None:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                make_url(value)
            except ArgumentError:
                raise ValueError(f"not a database URL: {value!r} (e.g. sqlite:///tune/optuna.db, "
                                 "postgresql://user:password@host/db)") from None
        return value
