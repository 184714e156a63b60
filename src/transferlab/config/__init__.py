"""The typed schema of params.yaml: one place that says what every knob means and accepts.

Every section mirrors a DVC stage. Unknown keys and out-of-range values are rejected
with a message that names the key (``augment.strenght: unknown key (did you mean
strength?)``), because a silently ignored typo would make an experiment lie.

The sections live by stage group: :mod:`.base` (shared types and constants), :mod:`.data`,
:mod:`.training` and :mod:`.experiments`; every name is importable from ``transferlab.config``.
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from transferlab.errors import TransferlabError
from transferlab.config.base import (  # noqa: F401 - re-exported
    AUTO,
    set_dotted,
    DEFAULT_ALPHABET,
    DEFAULT_FORMATS,
    DEFAULT_PARAMS_FILE,
    FORMAT_ANY,
    FORMAT_DIGIT,
    FORMAT_LETTER,
    FORMAT_SEPARATORS,
    Fraction,
    Section,
    Seed,
    format_label_chars,
)
from transferlab.config.data import (  # noqa: F401 - re-exported
    AugmentConfig,
    CaptureConfig,
    DataConfig,
    GenerateConfig,
    LookConfig,
    PlatesConfig,
    SplitConfig,
    StyleWeights,
)
from transferlab.config.experiments import SearchSpace, StudyConfig, TuneConfig  # noqa: F401 - re-exported
from transferlab.config.training import EvaluateConfig, MlflowConfig, PretrainConfig, TrainConfig


class Params(Section):
    """The whole params.yaml."""

    task: Literal["plates", "classification"] = "plates"
    plates: PlatesConfig = Field(default_factory=PlatesConfig)
    look: LookConfig = Field(default_factory=LookConfig)
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
    def kind(self):
        """The task object of ``task`` (:mod:`transferlab.tasks`)."""
        from transferlab.tasks import task_for

        return task_for(self.task)

    @property
    def reads_generator_output(self) -> bool:
        """data.source is the synthetic dataset the generate stage writes (its folder or labels.csv)."""
        output = os.path.abspath(self.generate.output)
        return os.path.abspath(self.data.source) in (output, os.path.join(output, "labels.csv"))

    @model_validator(mode="after")
    def _check_auto(self) -> Params:
        for key in [f"plates.{k}" for k in ("alphabet", "slots") if getattr(self.plates, k) == AUTO]:
            if not self.kind.plate_strings:
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


def with_overrides(raw: dict[str, Any] | None, overrides: Sequence[str]) -> dict[str, Any]:
    """``raw`` params with ``KEY=VALUE`` overrides set, as ``dvc exp run -S`` sets them: a dotted
    key, a YAML value (``3``, ``true``, ``null``, ``[0, 1]``, ``auto``). Unknown keys are left for
    validation to reject, by name."""
    raw = copy.deepcopy(raw or {})
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise TransferlabError(f"-S {item}: expected KEY=VALUE with a dotted params.yaml key, e.g. -S train.epochs=3")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TransferlabError(f"-S {item}: the value is not valid YAML: {exc}") from None
        try:
            set_dotted(raw, key.strip(), value)
        except ValueError as exc:
            raise TransferlabError(f"-S {item}: {exc}") from None
    return raw


def load_params(path: str | Path = DEFAULT_PARAMS_FILE, overrides: Sequence[str] = ()) -> Params:
    """Read and validate params.yaml (with ``overrides``: ``KEY=VALUE`` as ``-S`` gives them), ``auto``
    plate settings resolved (so every stage sees the same values)."""
    path = Path(path)
    if not path.is_file():
        raise TransferlabError(f"{path}: parameters file not found (run from the project root)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TransferlabError(f"{path}: not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise TransferlabError(f"{path}: expected a mapping of sections at the top level")
    from transferlab.generate.formats import resolve_plates  # it reads data.source, which needs the parsed params

    source = f"{path} with -S {' '.join(overrides)}" if overrides else str(path)
    return resolve_plates(parse_params(with_overrides(raw, overrides) if overrides else raw, source))
