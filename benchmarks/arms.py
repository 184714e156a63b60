"""Shared by the real-data benchmarks: train arms over seeds through the engine, print intervals."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from transferlab.training import engine
from transferlab.config import Params
from transferlab.data.arrays import ArrayData
from transferlab.evaluation import comparison
from transferlab.evaluation.stats import t_interval


@dataclass
class Arm:
    name: str
    scores: dict[str, list[float]] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)  # "kept/trained" epochs per seed
    seconds: float = 0.0  # per seed
    extra_seconds: float = 0.0  # e.g. pretraining, once
    augment_seconds: float = 0.0  # per seed, of ``seconds``: drawing augmentations (offline copies or per epoch)


def run_arm(name: str, make_params: Callable[[int], Params], data: ArrayData, seeds: list[int],
            metrics: tuple[str, ...], folds: int = 0, validation: bool = False) -> Arm:
    """Train the arm once per seed (on fold ``i mod folds`` of train + validation when ``folds``)
    and score its kept weights on the test set (and, with ``validation``, as ``val_<metric>`` on
    the validation set it kept its epoch on)."""
    arm, started = Arm(name, {m: [] for m in metrics}), time.monotonic()
    for i, seed in enumerate(seeds):
        params = make_params(seed)
        part = data.fold(i % folds, folds) if folds >= 2 else data
        augmenting = time.monotonic()
        trained_on = part.augmented(params.augment)
        arm.augment_seconds += (time.monotonic() - augmenting) / len(seeds)
        result = engine.fit(params, trained_on, verbose=False)
        arm.augment_seconds += result.augment_seconds / len(seeds)
        scores = engine.score_model(result.model, data, data.x_test, data.y_test, params.train.batch_size)
        for metric in metrics:
            arm.scores[metric].append(scores[metric])
        arm.kept.append(f"{result.selection.kept_epoch}/{result.epochs}")
        shown = ", ".join(f"{m.replace('_', ' ')} {scores[m]:.3f}" for m in metrics)
        if validation:
            val = engine.score_model(result.model, part, part.x_val, part.y_val, params.train.batch_size)
            for metric in metrics:
                arm.scores.setdefault(f"val_{metric}", []).append(val[metric])
            shown += "; validation " + ", ".join(f"{m.replace('_', ' ')} {val[m]:.3f}" for m in metrics)
        print(f"{name} seed {seed}: test {shown} (kept epoch {arm.kept[-1]}; {result.seconds:.0f}s training)",
              flush=True)
    arm.seconds = (time.monotonic() - started) / len(seeds)
    return arm


def print_table(arms: list[Arm], metrics: tuple[str, ...], test_images: int, baseline: str | None = None,
                folds: int = 0, rope: float = comparison.DEFAULT_ROPE) -> None:
    """Each arm's mean and t-interval over seeds; then each arm against ``baseline`` on the first
    metric, as the study compares (transferlab.evaluation.comparison): paired by seed, the
    variance corrected for overlapping folds, the fixed test set's error added, and P(better) /
    P(practically equivalent within ±rope) / P(worse)."""
    seeds = len(next(iter(arms[0].scores.values())))
    print(f"\n{test_images} test images, {seeds} seeds, mean and 95 % t-interval over seeds")
    header = "".join(f"{m.replace('_', ' '):<26}" for m in metrics)
    print(f"{'arm':<20} {header}{'kept epochs':<14}{'extra s':>8} {'train s/seed':>12}")
    for arm in arms:
        cells = "".join(f"{(i := t_interval(arm.scores[m])).estimate:.3f} ({i.low:.3f} … {i.high:.3f})    "
                        for m in metrics)
        print(f"{arm.name:<20} {cells}{' '.join(arm.kept):<14}{arm.extra_seconds:>8.0f} {arm.seconds:>12.0f}")
    base = next((a for a in arms if a.name == baseline), None)
    metric, unit = metrics[0], metrics[0].replace("_", " ")
    for arm in arms:
        if base is None or arm is base:
            continue
        a, b = arm.scores[metric], base.scores[metric]
        test = comparison.proportion_error(sum(a) / len(a), test_images, sum(b) / len(b))
        found = comparison.repeated([x - y for x, y in zip(a, b)], rope, comparison.overlap_ratio(folds), test)
        verdict = comparison.VERDICTS[found.decision]
        print(f"{arm.name} − {base.name}: {found.interval.format(unit=unit)}: {verdict} — "
              f"{found.probabilities(arm.name, base.name)}")
