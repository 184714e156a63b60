"""params.yaml sections of the data stages: plates, generate, data, split, augment."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, field_validator, model_validator

from transferlab.config.base import AUTO, DEFAULT_ALPHABET, DEFAULT_FORMATS, Fraction, Section, Seed


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

    count: int = Field(22000, ge=1, le=1_000_000)
    height: int = Field(48, ge=16, le=512, description="rendered crop height in pixels")
    width: int = Field(144, ge=16, le=1024, description="rendered crop width in pixels")
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


AugmentMode = Literal["offline", "per_epoch"]


class AugmentConfig(Section):
    """imgaug pipeline whose every component scales with one strength in [0, 1].

    ``mode`` says when the ``copies`` variants per training image are drawn: ``offline``
    once, by the augment stage (written to disk; every epoch sees the same ones), or
    ``per_epoch`` afresh for every epoch by the training engine (nothing written), seeded
    by ``(seed, epoch)``. Either way an epoch holds the originals and ``copies`` variants of each.
    """

    strength: Fraction = 0.3
    copies: int = Field(0, ge=0, le=50, description="augmented variants per training image (and epoch)")
    mode: AugmentMode = Field("offline", description="offline: the augment stage writes the copies once; "
                              "per_epoch: the training engine draws fresh ones every epoch")
    seed: Seed = 0
    preview_strengths: list[Fraction] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0], min_length=1)
    preview_images: int = Field(6, ge=1, le=64)
    output: str = "data/augmented"

    @property
    def augments(self) -> bool:
        """Whether training sees augmented images: ``copies`` > 0 at a strength above 0 (either mode)."""
        return self.copies > 0 and self.strength > 0

    @property
    def per_epoch(self) -> bool:
        """Whether the training engine draws the variants afresh every epoch (nothing on disk)."""
        return self.augments and self.mode == "per_epoch"

    @property
    def images_per_original(self) -> int:
        """Training images per original image in an epoch: itself and its augmented variants."""
        return 1 + self.copies if self.augments else 1


class LookConfig(Section):
    """Stage ``look``: the renderer's look fitted to the user's real training crops.

    Applies with the user's own plate data and ``pretrain.enabled``; a look key of
    ``generate`` whose value differs from its default was set by hand and is kept.
    """

    fit: bool = Field(True, description="false: generate renders the look exactly as params.yaml sets it")
    trials: int = Field(40, ge=1, le=10_000, description="looks tried (Optuna TPE, seeded; the first ones are "
                        "the default look and each plate style alone)")
    samples: int = Field(400, ge=16, le=100_000, description="real training crops (at most) and renders compared "
                         "per trial")
    seed: Seed = 0
    output: str = Field("look", min_length=1, description="look.yaml, previews and the trials")
