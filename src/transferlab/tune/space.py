"""The study's search space: which params.yaml keys a trial sets, how Optuna proposes them, and
the settings a study is tied to (a trial is a validated copy of params.yaml)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transferlab.config import DEFAULT_PARAMS_FILE, Params, SearchSpace, TuneConfig, load_params, parse_params
from transferlab.errors import TransferlabError

# Optuna parameter names are the dotted params.yaml keys they set.
P_STRENGTH, P_RATE, P_DEPTH = "augment.strength", "train.learning_rate", "train.unfreeze_depth"
P_STRATEGY, P_BACKBONE, P_PRETRAINED = "train.strategy", "train.backbone", "train.pretrained"
P_COPIES = "augment.copies"


def load_tune_params(path: str | Path = DEFAULT_PARAMS_FILE) -> tuple[Params, TuneConfig]:
    """params.yaml and its ``tune`` section."""
    params = load_params(path)
    return params, params.tune


def config_of(params: Params, cfg: TuneConfig | None) -> TuneConfig:
    """The study's settings: ``cfg`` when given, else params.yaml's ``tune`` section."""
    return cfg or params.tune


def metric_name(params: Params, cfg: TuneConfig) -> str:
    """The study's value. Plates default to character accuracy: in trials of a few epochs the
    plate accuracy (every slot right) is still 0 for most of them and cannot rank them."""
    metric = cfg.metric or params.kind.monitored_metric
    allowed = params.kind.tuned_metrics
    if metric not in allowed:
        raise TransferlabError(f"tune.metric: {metric} is not measured for task {params.task} "
                               f"(use one of {', '.join(allowed)})")
    return metric


def direction_of(metric: str) -> str:
    """Optuna's direction for the metric: losses go down, accuracies up."""
    return "minimize" if metric.endswith("loss") else "maximize"


def searched_keys(search: SearchSpace) -> list[str]:
    """The params.yaml keys of the dimensions ``tune.search`` does not leave null."""
    names = {"augment_strength": P_STRENGTH, "learning_rate": P_RATE, "unfreeze_depth": P_DEPTH,
             "strategy": P_STRATEGY, "backbone": P_BACKBONE, "pretrained": P_PRETRAINED}
    return [key for field, key in names.items() if getattr(search, field) is not None]


# (backbone, input shape) -> blocks: building a backbone to count them costs seconds
_BLOCK_COUNTS: dict[tuple[str, tuple[int, int, int]], int] = {}


def block_counts(params: Params, cfg: TuneConfig) -> dict[str, int]:
    """Blocks of every backbone the study may use (the top of the unfreeze_depth range)."""
    import keras

    from transferlab.training.backbones import build_backbone

    shape = (params.data.image_height, params.data.image_width, 3)
    names = cfg.search.backbone or [params.train.backbone]
    missing = [name for name in names if (name, shape) not in _BLOCK_COUNTS]
    for name in missing:  # the layer structure does not depend on the weights
        _BLOCK_COUNTS[name, shape] = len(build_backbone(name, shape, pretrained=False).blocks)
    if missing:
        keras.backend.clear_session()
    return {name: _BLOCK_COUNTS[name, shape] for name in names}


def check_search_space(params: Params, cfg: TuneConfig, blocks: dict[str, int]) -> list[str]:
    """Errors for ranges the backbones cannot honour; returns notes worth printing."""
    notes = []
    depth = cfg.search.unfreeze_depth
    if depth is not None:
        low, high = depth
        top = max(blocks.values())
        for value, end in ((low, "low"), (high, "high")):
            if value != "all" and value > top:
                owner = ", ".join(f"{name} has {count}" for name, count in blocks.items())
                raise TransferlabError(f"tune.search.unfreeze_depth: {end} {value} but {owner} blocks "
                                       f"(use 0..{top}, or all)")
        if "finetune" not in (cfg.search.strategy or [params.train.strategy]):
            notes.append(f"train.strategy is {params.train.strategy}: tune.search.unfreeze_depth has no effect "
                         "(it only applies to finetune)")
    if cfg.search.augment_strength is not None and params.augment.copies == 0:
        notes.append("augment.copies is 0: trials (and the winner's parameters) use augment.copies 1, "
                     "or the searched strength would change nothing")
    return notes


def _choose(trial, key: str, choices: list) -> Any:
    """One of ``choices``; a single choice is set, not searched (Optuna's plots and
    importances have nothing to say about a parameter that never varies)."""
    return choices[0] if len(choices) == 1 else trial.suggest_categorical(key, choices)


def suggest(trial, cfg: TuneConfig, params: Params, blocks: dict[str, int]) -> dict[str, Any]:
    """The trial's values, keyed by the dotted params.yaml keys they set.

    Conditional: ``train.unfreeze_depth`` only when the strategy is finetune; pretrained
    weights are impossible (forced false, not searched) for plain_cnn and for scratch; with
    ``augment.copies: 0`` a searched strength comes with ``augment.copies: 1`` (forced, and
    part of the winner's parameters, so that it trains as the trials did).
    """
    search, values = cfg.search, {}
    if search.backbone:
        values[P_BACKBONE] = _choose(trial, P_BACKBONE, search.backbone)
    backbone = values.get(P_BACKBONE, params.train.backbone)
    if search.strategy:
        values[P_STRATEGY] = _choose(trial, P_STRATEGY, search.strategy)
    strategy = values.get(P_STRATEGY, params.train.strategy)
    can_pretrain = backbone != "plain_cnn" and strategy != "scratch"
    if search.pretrained and can_pretrain:
        values[P_PRETRAINED] = _choose(trial, P_PRETRAINED, search.pretrained)
    elif not can_pretrain and (search.pretrained or params.train.pretrained):
        values[P_PRETRAINED] = False
    if search.augment_strength:
        values[P_STRENGTH] = trial.suggest_float(P_STRENGTH, *search.augment_strength)
        if params.augment.copies == 0:  # no augmented copies: the strength would change nothing
            values[P_COPIES] = 1
    if search.learning_rate:
        values[P_RATE] = trial.suggest_float(P_RATE, *search.learning_rate, log=True)
    if search.unfreeze_depth and strategy == "finetune":
        low, high = search.unfreeze_depth
        high = max(blocks.values()) if high == "all" else high
        # One distribution for every backbone (a static search space); a shallower backbone
        # gets the depth clipped to its block count (then "all").
        values[P_DEPTH] = min(trial.suggest_int(P_DEPTH, low, high), blocks[backbone])
    return values


def baseline_values(params: Params, cfg: TuneConfig, blocks: dict[str, int]) -> tuple[dict[str, Any], list[str]]:
    """params.yaml's own values of the searched dimensions, as Optuna parameters for trial 0
    (``study.enqueue_trial``), so that every study says how it compares to what the user had.

    A value outside its searched range is left to the sampler (and noted): Optuna would
    refuse a categorical one, and an out-of-range number would distort the sampler's model.
    """
    search, train = cfg.search, params.train
    fixed: dict[str, Any] = {}
    wanted = [(P_BACKBONE, search.backbone, train.backbone), (P_STRATEGY, search.strategy, train.strategy),
              (P_PRETRAINED, search.pretrained, train.pretrained)]
    for key, choices, value in wanted:
        if choices:
            fixed[key] = value if value in choices else None
    for key, span, value in ((P_STRENGTH, search.augment_strength, params.augment.strength),
                             (P_RATE, search.learning_rate, train.learning_rate)):
        if span:
            fixed[key] = value if span[0] <= value <= span[1] else None
    if search.unfreeze_depth:
        low, high = search.unfreeze_depth
        high = max(blocks.values()) if high == "all" else high
        fixed[P_DEPTH] = train.unfreeze_depth if low <= train.unfreeze_depth <= high else None
    notes = [f"params.yaml's {key} is outside tune.search: the baseline trial (0) samples it"
             for key, value in fixed.items() if value is None]
    return {key: value for key, value in fixed.items() if value is not None}, notes


def trial_params(params: Params, cfg: TuneConfig, values: dict[str, Any], source: str = "tune trial") -> Params:
    """params.yaml with the trial's values and the study's epochs, validated like params.yaml."""
    raw = params.model_copy(deep=True).model_dump()
    if cfg.epochs is not None:
        raw["train"]["epochs"] = cfg.epochs
    if cfg.finetune_epochs is not None:
        raw["train"]["finetune_epochs"] = cfg.finetune_epochs
    for key, value in values.items():
        section, name = key.split(".")
        raw[section][name] = value
    return parse_params(raw, source)


def study_settings(params: Params, cfg: TuneConfig, fingerprints: dict[str, str]) -> dict[str, Any]:
    """Everything that shapes a trial's value except the searched values, flat.

    A study resumed with other settings would compare apples and oranges, so it is refused.
    """
    base = trial_params(params, cfg, {}).model_dump()
    flat: dict[str, Any] = {"task": base["task"], "tune.metric": metric_name(params, cfg),
                            "tune.search": json.dumps(cfg.search.model_dump(), sort_keys=True),
                            "tune.train_images": cfg.train_images, "tune.val_images": cfg.val_images}
    for section, keys in (("plates", None), ("data", ("image_height", "image_width")),
                          ("augment", ("strength", "copies", "seed")), ("train", None)):
        for key, value in base[section].items():
            if (keys is None or key in keys) and f"{section}.{key}" not in ("train.output",):
                flat[f"{section}.{key}"] = value
    for key in searched_keys(cfg.search):
        flat.pop(key, None)
    flat.update({f"data.fingerprint.{k}": v for k, v in sorted(fingerprints.items())})
    return json.loads(json.dumps(flat))  # lists/tuples as JSON would store them


def max_trial_epochs(params: Params, cfg: TuneConfig) -> int:
    """The most epochs a trial can train (both phases when finetune may be proposed): the pruner's resource."""
    base = trial_params(params, cfg, {})
    strategies = cfg.search.strategy or [params.train.strategy]
    return base.train.epochs + (base.train.finetune_epochs if "finetune" in strategies else 0)

