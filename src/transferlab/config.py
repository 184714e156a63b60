"""The typed schema of params.yaml: one place that says what every knob means and accepts.

Every section mirrors a DVC stage. Unknown keys and out-of-range values are rejected
with a message that names the key (``augment.strenght: unknown key (did you mean
strength?)``), because a silently ignored typo would make an experiment lie.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from transferlab.errors import TransferlabError

DEFAULT_PARAMS_FILE = "params.yaml"

# 0-9 and A-Z without the letter O (too easily read as zero): the 35 classes of the
# original question's 7 heads x 35 characters.
DEFAULT_ALPHABET = "0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"

# Placeholders in a plate format; every other character is printed literally.
FORMAT_DIGIT, FORMAT_LETTER, FORMAT_ANY = "#", "@", "*"
# Rendered as visual separators only: they are never part of the label.
FORMAT_SEPARATORS = " -"
DEFAULT_FORMATS = ["@@@ ####"]
# plates.alphabet / plates.slots / generate.formats: read from data.source's labels (transferlab.formats).
AUTO = "auto"

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class Section(BaseModel):
    """Base of every params.yaml section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class PlatesConfig(Section):
    """How plate text maps to the model's character slots."""

    alphabet: str = Field(DEFAULT_ALPHABET, min_length=2, description="auto: the symbols of data.source's labels")
    slots: int | Literal["auto"] = Field(7, description="character heads of the model = longest plate; auto: "
                                         "data.source's longest (variable_length follows the labels)")
    variable_length: bool = Field(False, description="plates may be shorter than slots (padded)")
    pad_char: str = Field("_", min_length=1, max_length=1, description="fills slots of shorter plates")

    @field_validator("slots", mode="wrap")
    @classmethod
    def _check_slots(cls, value, handler):
        return value if value == AUTO else _SLOTS.validate_python(value)

    @model_validator(mode="after")
    def _check_alphabet(self) -> PlatesConfig:
        if self.alphabet == AUTO:
            return self
        duplicates = sorted({c for c in self.alphabet if self.alphabet.count(c) > 1})
        if duplicates:
            raise ValueError(f"alphabet: repeated characters {''.join(duplicates)!r}")
        if self.pad_char in self.alphabet:
            raise ValueError(f"pad_char: {self.pad_char!r} is also in the alphabet")
        if any(c.isspace() for c in self.alphabet):
            raise ValueError("alphabet: must not contain white space")
        return self


PlateStyle = Literal["eu", "us", "cn_blue", "two_colour", "embossed"]


class StyleWeights(Section):
    """Relative weights of the plate styles rendered (any non-negative numbers; 0 = never)."""

    eu: float = Field(1.0, ge=0, description="EU-like: white/yellow/tinted/dark, optional blue strip, seals")
    us: float = Field(0.0, ge=0, description="US-like: scenic background, state name, slogan, stickers")
    cn_blue: float = Field(0.0, ge=0, description="Chinese blue: white characters and border, dot after 2 glyphs")
    two_colour: float = Field(0.0, ge=0, description="dark on yellow/white or white on green/blue")
    embossed: float = Field(0.0, ge=0, description="stamped metal: raised characters with shadow and highlight")

    @model_validator(mode="after")
    def _check_some_style(self) -> StyleWeights:
        if not any(self.weights().values()):
            raise ValueError("every style weight is 0: give at least one style a positive weight")
        return self

    def weights(self) -> dict[str, float]:
        """Style name -> weight, in the schema's order (the order styles are drawn from)."""
        return {name: getattr(self, name) for name in type(self).model_fields}


class CaptureConfig(Section):
    """Camera conditions of the synthetic crops: the probability of each per image."""

    tight_crop: Fraction = Field(0.0, description="the crop cuts into the plate edge (a tight detector box)")
    loose_crop: Fraction = Field(0.0, description="wide margins of car around a smaller plate")
    low_resolution: Fraction = Field(0.15, description="0.6-0.9x fewer pixels on the plate, upsampled")
    very_low_resolution: Fraction = Field(0.0, description="rendered at 0.35-0.6x the size, then upscaled")
    greyscale: Fraction = Field(0.08, description="monochrome camera")
    night_ir: Fraction = Field(0.0, description="infrared flash at night: bright plate, dark scene, grey, noisy")
    colour_cast: Fraction = Field(0.0, description="strong yellow / green / blue tint (street lamps, glass)")

    @model_validator(mode="after")
    def _check_crops(self) -> CaptureConfig:
        if self.tight_crop + self.loose_crop > 1:
            raise ValueError(f"tight_crop + loose_crop must be <= 1 (got {self.tight_crop} + {self.loose_crop})")
        return self


class GenerateConfig(Section):
    """The embedded default dataset: synthetic plates rendered deterministically from a seed."""

    count: int = Field(4000, ge=1, le=1_000_000)
    height: int = Field(64, ge=16, le=512, description="rendered crop height in pixels")
    width: int = Field(192, ge=16, le=1024, description="rendered crop width in pixels")
    formats: list[str] | Literal["auto"] = Field(
        AUTO, description="# digit, @ letter, * any symbol, space/- separators; other characters literal; "
        "auto: like data.source's labels (the built-in @@@ #### when data.source is this output)")
    format_weights: list[Annotated[float, Field(gt=0)]] | None = Field(
        None, description="relative frequency of each format; null: equally often")
    seed: Seed = 0
    country_strip_probability: Fraction = Field(0.5, description="how often an eu-style plate has the blue strip")
    styles: StyleWeights = Field(default_factory=StyleWeights)
    uniform_share: Fraction = Field(0.0, description="with formats: auto, the share of plates whose characters are "
                                    "drawn uniformly (each position from the kinds of symbol the labels show there), "
                                    "not by the labels' frequencies")
    prefix_glyphs: str = Field("", description="one of these is drawn before the characters, not in the label")
    bare_one: Fraction = Field(0.0, description="how often a plate draws '1' as a bare stroke (no flag, no foot), "
                               "as Chinese plates do; not with an 'I' in plates.alphabet")
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    output: str = "data/synthetic"

    @field_validator("formats", mode="wrap")
    @classmethod
    def _check_formats(cls, value, handler):
        return value if value == AUTO else _FORMATS.validate_python(value)

    @field_validator("format_weights")
    @classmethod
    def _check_weights(cls, value, info):
        formats = info.data.get("formats", [])  # absent when it is itself invalid
        if value is not None and formats == AUTO:
            raise ValueError("formats: auto takes its weights from the labels (set format_weights: null)")
        if value is not None and len(value) != len(formats):
            raise ValueError(f"{len(value)} weight(s) for {len(formats)} format(s)")
        return value

    @property
    def format_list(self) -> list[str]:
        """The explicit formats; auto without labels to imitate falls back to the built-in ones."""
        return DEFAULT_FORMATS if self.formats == AUTO else self.formats

    @field_validator("uniform_share")
    @classmethod
    def _check_uniform_share(cls, value, info):
        if value and info.data.get("formats", AUTO) != AUTO:
            raise ValueError("only with formats: auto (explicit formats already draw their characters uniformly)")
        return value

    @field_validator("prefix_glyphs")
    @classmethod
    def _check_prefix_glyphs(cls, value: str) -> str:
        if any(c.isspace() for c in value):
            raise ValueError("must not contain white space (each character is one glyph)")
        return value


_SLOTS = TypeAdapter(Annotated[int, Field(ge=1, le=20)])
_FORMATS = TypeAdapter(Annotated[list[str], Field(min_length=1)])


class DataConfig(Section):
    """Where the images come from and the size every stage works at."""

    source: str = Field("data/synthetic", min_length=1, description="plate CSV (or its folder) / class folders")
    test_source: str | None = Field(
        None, min_length=1,
        description="a fixed test set in the format of source: the test split is all of its images, in file order; "
                    "train/validation then come from source alone (validation takes split.val_fraction of it, "
                    "split.test_fraction is unused)",
    )
    image_height: int = Field(64, ge=16, le=512)
    image_width: int = Field(192, ge=16, le=1024)
    skip_invalid: bool = Field(False, description="skip unreadable images and bad labels with a warning")


class SplitConfig(Section):
    """Seeded train/validation/test split."""

    val_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.15
    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0, description="unused when data.test_source is set")] = 0.15
    seed: Seed = 0
    output: str = "data/prepared"

    @model_validator(mode="after")
    def _check_fractions(self) -> SplitConfig:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1 (got {self.val_fraction} + {self.test_fraction})"
            )
        return self


class AugmentConfig(Section):
    """imgaug pipeline whose every component scales with one strength in [0, 1]."""

    strength: Fraction = 0.3
    copies: int = Field(1, ge=0, le=50, description="augmented variants written per training image")
    seed: Seed = 0
    preview_strengths: list[Fraction] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0], min_length=1)
    preview_images: int = Field(6, ge=1, le=64)
    output: str = "data/augmented"


BackboneName = Literal["efficientnet_b0", "efficientnet_lite0", "mobilenet_v2", "plain_cnn"]
Strategy = Literal["scratch", "frozen", "finetune", "full"]


class TrainConfig(Section):
    """Backbone, transfer strategy and optimisation of the training stage."""

    backbone: BackboneName = "efficientnet_lite0"
    pretrained: bool = Field(True, description="ImageNet initial weights; the only difference between the two arms")
    strategy: Strategy = Field(
        "finetune",
        description="scratch: random init, all trainable; frozen: backbone frozen, head trained; "
        "finetune: head first, then the top unfreeze_depth blocks at a smaller rate; full: all trainable from the start",
    )
    unfreeze_depth: int = Field(2, ge=0, le=1000, description="finetune: backbone blocks unfrozen, counted from the top")
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="cosine: decay each phase's rate to zero over its epochs (converges in fewer epochs)"
    )
    finetune_lr_factor: float = Field(0.1, gt=0.0, le=1.0, description="finetune phase rate = factor x learning_rate")
    bn_trainable: bool = Field(False, description="let BatchNorm update its statistics while fine-tuning")
    batch_size: int = Field(32, ge=1, le=4096)
    epochs: int = Field(10, ge=1, le=10_000, description="epochs of training (finetune: of the head phase)")
    finetune_epochs: int = Field(10, ge=0, le=10_000, description="finetune: epochs after unfreezing")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    head_pooling: Literal["global", "spatial"] = Field(
        "global", description="global: average pooling (the original question); spatial: keep the feature map layout"
    )
    head_units: int = Field(128, ge=0, le=4096, description="per-slot dense layer width (0: softmax directly)")
    early_stopping_patience: int = Field(5, ge=0, le=10_000, description="0 disables early stopping")
    init_from: str | None = Field(None, description="a model saved by an earlier run to start from")
    cache_features: bool = Field(True, description="frozen: compute backbone features once, train the head on them")
    seed: Seed = 0
    output: str = "models"

    @model_validator(mode="after")
    def _check_strategy(self) -> TrainConfig:
        if self.strategy == "scratch" and self.pretrained:
            raise ValueError("strategy scratch starts from random weights: set pretrained: false "
                             "(or use strategy frozen, finetune or full with pretrained weights)")
        if self.backbone == "plain_cnn" and self.pretrained:
            raise ValueError("backbone plain_cnn has no pretrained weights: set pretrained: false")
        return self


class PretrainConfig(Section):
    """Stage ``pretrain``: in-domain transfer through synthetic plates like the user's (plates only)."""

    enabled: bool = Field(False, description="train on the generate stage's synthetic plates first; train starts "
                          "from that model (from ImageNet when train.pretrained, else from random weights)")
    epochs: int = Field(5, ge=1, le=10_000)
    learning_rate: float = Field(2e-3, gt=0.0, le=1.0)
    early_stopping_patience: int = Field(2, ge=0, le=10_000, description="0 disables early stopping")
    val_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.05, description="synthetic plates held out to measure the synthetic validation accuracy")
    seed: Seed = 0
    output: str = Field("pretrain", min_length=1, description="the pretrained model and its metrics")


class EvaluateConfig(Section):
    """Stage ``evaluate``: test-set metrics, diagnostics and inference speed."""

    output: str = Field("evaluation", min_length=1, description="folder of the figures, predictions and report")
    augmented_strengths: list[Fraction] = Field(
        default_factory=lambda: [1.0],
        description="extra augmentation strengths checked on the test images (augment.strength is always checked)",
    )
    augment_seed: Seed = 0
    worst_mistakes: int = Field(16, ge=0, le=100, description="wrong predictions shown in worst_mistakes.png")
    mistakes_by: Literal["lowest_confidence", "highest_confidence"] = Field(
        "lowest_confidence", description="which wrong predictions are the worst: least sure or most confidently wrong",
    )
    top_confusions: int = Field(20, ge=1, le=1000, description="rows of metrics/evaluate_confusions.csv")
    example_images: int = Field(4, ge=0, le=32, description="test images shown at each strength in augmented_examples.png")
    latency_calls: int = Field(20, ge=1, le=10_000, description="single-image calls timed after warm-up")
    export: bool = Field(True, description="export the model to ONNX (evaluate.output/reader/) and check it "
                                           "reads the test images like the Keras model")
    export_samples: int = Field(64, ge=1, le=100_000, description="test images of the export's parity check")


TrainSize = Annotated[int, Field(ge=1, le=10_000_000)]


class StudyConfig(Section):
    """Section ``study``: the factorial study and strategy comparison (study/dvc.yaml)."""

    name: str = Field("transfer-study", min_length=1, description="MLflow tag `study` of every variant")
    experiment: str = Field("transferlab-study", min_length=1, description="MLflow experiment of the variants")
    backbone: BackboneName = "efficientnet_lite0"
    arms: list[Literal["scratch", "frozen", "finetune", "full", "probe"]] = Field(
        default_factory=lambda: ["scratch", "finetune"], min_length=1,
        description="factorial arms; scratch = random init, every other arm starts from ImageNet weights")
    transfer_arm: Literal["frozen", "finetune", "full", "probe"] = Field(
        "finetune", description="the pretrained arm compared with scratch in H2-H4 and the data-size curve")
    augment_strengths: list[Fraction] = Field(default_factory=lambda: [0.0, 0.3], min_length=1,
                                              description="factorial augmentation levels; 0 is the no-augmentation baseline")
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    strategies: list[Literal["scratch", "frozen", "finetune", "full", "probe"]] = Field(
        default_factory=lambda: ["frozen", "probe"],
        description="further strategies run without augmentation and ranked with the factorial arms")
    train_sizes: list[TrainSize] = Field(default_factory=lambda: [100],
                                              description="data-size curve: other training-set sizes")
    size_seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2])
    sources: list[Literal["none", "imagenet", "synthetic", "imagenet_synthetic"]] = Field(
        default_factory=list, description="plates: where the initial weights come from, crossed with "
        "source_strategies (group sources); synthetic sources pretrain on synthetic_count plates like the labels")
    source_strategies: list[Literal["frozen", "finetune", "full"]] = Field(
        default_factory=lambda: ["finetune", "full"], min_length=1)
    synthetic_count: int = Field(5000, ge=10, le=1_000_000, description="synthetic plates per synthetic source")
    folds: int = Field(3, ge=0, le=20, description="k-fold cross-validation over train + validation: repetition r "
                       "(the r-th seed) validates on fold r mod k, so intervals include the split's variance; 0: off")
    train_size: int = Field(400, ge=0, description="training images per variant (seeded subset; 0: all)")
    val_size: int = Field(200, ge=0, description="validation images (fixed subset; 0: all)")
    test_size: int = Field(400, ge=0, description="test images (fixed subset; 0: all)")
    image_height: int = Field(48, ge=32, le=512, description="images are resized to this for the study")
    image_width: int = Field(144, ge=32, le=1024)
    epochs: int = Field(4, ge=1, le=1000, description="finetune: epochs of the head phase; other arms train "
                        "epochs + finetune_epochs in all (the same budget)")
    finetune_epochs: int = Field(4, ge=0, le=1000, description="finetune: epochs after unfreezing")
    unfreeze_depth: int = Field(2, ge=0, le=1000)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    batch_size: int = Field(32, ge=1, le=4096)
    augment_copies: int = Field(1, ge=1, le=20, description="augmented copies per training image when strength > 0")
    probe: Literal["logistic", "svm"] = Field("logistic", description="linear classifier of the probe")
    probe_c: float = Field(1.0, gt=0, description="inverse regularisation strength of the probe")
    metric: Literal["auto", "plate_accuracy", "char_accuracy", "accuracy"] = Field(
        "auto", description="the compared test metric; auto: char_accuracy (plates) / accuracy (classification)")
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
        if len(set(self.seeds)) != len(self.seeds) or len(set(self.size_seeds)) != len(self.size_seeds):
            raise ValueError("seeds must not repeat")
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


class MlflowConfig(Section):
    """The MLflow experiment of the pipeline's runs (recorded in the repository's mlruns/ store, or in
    team mode the server named by $TRANSFERLAB_TRACKING_URI: transferlab.team_store)."""

    experiment: str = Field("transferlab", min_length=1)


class Params(Section):
    """The whole params.yaml."""

    task: Literal["plates", "classification"] = "plates"
    plates: PlatesConfig = Field(default_factory=PlatesConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    study: StudyConfig = Field(default_factory=StudyConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)

    @property
    def reads_generator_output(self) -> bool:
        """data.source is the synthetic dataset the generate stage writes (its folder or labels.csv)."""
        output = os.path.abspath(self.generate.output)
        return os.path.abspath(self.data.source) in (output, os.path.join(output, "labels.csv"))

    @model_validator(mode="after")
    def _check_auto(self) -> Params:
        for key in [f"plates.{k}" for k in ("alphabet", "slots") if getattr(self.plates, k) == AUTO]:
            if self.task != "plates":
                raise ValueError(f"{key}: auto reads plate labels, but task is {self.task}: remove it")
            if self.reads_generator_output:
                raise ValueError(f"{key}: auto reads the labels of data.source, but data.source is the output of "
                                 f"generate, whose labels follow {key}: set it")
        return self

    @model_validator(mode="after")
    def _check_formats_fit(self) -> Params:
        """Explicit formats must fit the plates where they feed the split; elsewhere the
        generate stage checks them when it runs (a CSV user's formats do not matter)."""
        if self.generate.formats == AUTO:
            return self
        for i, fmt in enumerate(self.generate.formats):
            text = format_label_chars(fmt)
            if not text:
                raise ValueError(f"generate.formats[{i}]: {fmt!r} has no character to render")
            if not self.reads_generator_output or AUTO in (self.plates.alphabet, self.plates.slots):
                continue
            if len(text) > self.plates.slots or (len(text) < self.plates.slots and not self.plates.variable_length):
                raise ValueError(
                    f"generate.formats[{i}]: {fmt!r} has {len(text)} characters but plates.slots is "
                    f"{self.plates.slots} (set plates.variable_length: true for shorter plates)"
                )
            unknown = sorted({c for c in text if c not in (FORMAT_DIGIT, FORMAT_LETTER, FORMAT_ANY)}
                             - set(self.plates.alphabet))
            if unknown:
                raise ValueError(f"generate.formats[{i}]: literal characters {''.join(unknown)!r} are not in plates.alphabet")
        return self


def format_label_chars(fmt: str) -> str:
    """The part of a plate format that becomes label characters (separators removed)."""
    return "".join(c for c in fmt if c not in FORMAT_SEPARATORS)


def _model_for_location(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema class that owns the key at ``loc`` (for did-you-mean suggestions)."""
    model: type[BaseModel] = Params
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None) if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _describe(error: dict[str, Any]) -> str:
    """One line per pydantic error, naming the dotted key as it is written in params.yaml."""
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc if not str(p).startswith("function-after"))
    if error["type"] == "extra_forbidden":
        owner = _model_for_location(loc)
        known = list(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else f" (known keys: {', '.join(known)})"
        return f"{key}: unknown key{hint}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("value_error", "assertion_error") or "input" not in error:
        return f"{key}: {message}" if key else message
    return f"{key}: {message} (got {error['input']!r})"


def parse_params(raw: dict[str, Any] | None, source: str = DEFAULT_PARAMS_FILE) -> Params:
    """Validate a params mapping; raise one TransferlabError listing every problem."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise TransferlabError(f"{source}: invalid parameters:\n  " + "\n  ".join(lines)) from None


def load_params(path: str | Path = DEFAULT_PARAMS_FILE) -> Params:
    """Read and validate params.yaml, ``auto`` plate settings resolved (so every stage sees the same values)."""
    path = Path(path)
    if not path.is_file():
        raise TransferlabError(f"{path}: parameters file not found (run from the project root)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TransferlabError(f"{path}: not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise TransferlabError(f"{path}: expected a mapping of sections at the top level")
    from transferlab.formats import resolve_plates  # it reads data.source, which needs the parsed params

    return resolve_plates(parse_params(raw, str(path)))
