"""When the study's numbers can carry a verdict, and what budget would make them carry one.

A comparison of two arms says something only when both arms were compared at their
learned state and at least one of them learned anything. Three gates, used by the report
(:mod:`transferlab.study.verdict`) before every "supported" claim and every recommendation:

- **premature**: a variant still improving at its last epoch, or predicting one class for
  (nearly) every validation image (:func:`transferlab.evaluation.diagnostics.check_still_improving`,
  :func:`transferlab.evaluation.diagnostics.check_one_class`), had not finished learning: every
  comparison involving its cell is withheld, with the evidence and a longer budget;
- **near chance**: an arm whose 95 % interval over seeds does not clear
  :func:`transferlab.evaluation.stats.learned_level` (chance + ``MIN_SKILL`` of the way to perfect)
  has not shown that it learned; two such arms are not compared;
- **undecided**: the best arm and the runner-up are ranked only when one is practically better
  or both are practically equivalent (:mod:`transferlab.evaluation.comparison`, with the
  study's :class:`Design`: overlapping folds, the fixed test set, ``study.rope``).

A premature arm withholds the comparisons it is part of; it blocks the recommendation only
when it could plausibly still win (:func:`could_still_win`).

What would make an uninformative study informative is estimated from its own data-size
curve (:func:`size_budget`) and seed spread (:func:`transferlab.evaluation.stats.seeds_needed`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from transferlab.config import StudyConfig
from transferlab.evaluation import comparison as cmp
from transferlab.evaluation import diagnostics as d
from transferlab.evaluation.stats import MIN_SKILL, Interval, learned_level
from transferlab.study.grid import IMAGE_SCORES

PLATE_METRICS = ("plate_accuracy", "char_accuracy")
LONGER_FACTOR = 2  # a premature arm: suggest this multiple of the epochs it ran
FLAT_GAIN_PER_DOUBLING = 0.005  # a data-size curve rising less than this per doubling of images is flat
MAX_EXTRAPOLATION = 64  # no budget estimate beyond this multiple of the largest size tried


def number_field(value) -> float:
    """A result field as a float (NaN when missing: older results, probes)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _curves(result: pd.Series, history: pd.DataFrame, metric: str) -> list[str]:
    """History columns whose convergence decides: the compared metric's and the monitored one."""
    wanted = ["val_" + metric]
    monitor = result.get("monitor")
    if isinstance(monitor, str) and monitor not in wanted:
        wanted.append(monitor)
    return [c for c in wanted if c in history and history[c].notna().any()]


def unfinished_checks(result: pd.Series, history: pd.DataFrame, metric: str) -> list[d.Diagnostic]:
    """The fired checks saying one variant had not finished learning (empty: it had, or no evidence).

    Reads ``val_majority_fraction`` (and ``val_images``) from the result and the per-epoch
    validation curves (``val_<metric>`` and the result's ``monitor``) from its history.
    """
    found = [d.check_one_class(number_field(result.get("val_majority_fraction")), result.get("val_images"))]
    for column in _curves(result, history, metric):
        check = d.check_still_improving(history[column], column.replace("_", " "),
                                        higher_is_better=not column.endswith("loss"))
        found.append(check)
    return [c for c in found if c.fired]


def _short(check: d.Diagnostic) -> str:
    e = check.evidence
    if check.name == "one class":
        return f"the same prediction for {e['majority_fraction']:.0%} of validation images"
    return f"{e['name']} still {e['moving']} at its last epoch ({e['change']:+.3f} over the last {e['span']} epochs)"


def headroom(history: pd.DataFrame, metric: str, epochs: float) -> float:
    """What a premature variant could still gain: its validation metric's rise per epoch over the
    last epochs (:data:`transferlab.evaluation.diagnostics.IMPROVING_WINDOW`), continued for the
    further epochs of the suggested budget. A straight line over-estimates a flattening curve:
    on the side of not dismissing the arm. 0 when the curve is flat or falling (e.g. one class)."""
    column = "val_" + metric
    values = history[column].dropna().to_numpy(float) if column in history else np.array([])
    if len(values) < 2:
        return 0.0
    span = min(d.IMPROVING_WINDOW, len(values) - 1)
    per_epoch = max(0.0, float(values[-1] - values[-1 - span]) / span)
    return per_epoch * max(epochs, len(values)) * (LONGER_FACTOR - 1)


def assess_variants(frame: pd.DataFrame, histories: dict[str, pd.DataFrame], metric: str) -> pd.DataFrame:
    """The results with three columns more: ``premature`` (why the variant had not finished
    learning, "" when nothing says so), ``longer_epochs`` (the budget to suggest) and
    ``headroom`` (:func:`headroom`; 0 for a finished variant)."""
    why, longer, gain = [], [], []
    for _, row in frame.iterrows():
        history = histories.get(f"{row['group']}/{row['key']}", pd.DataFrame())
        fired = unfinished_checks(row, history, metric)
        why.append(", ".join(_short(c) for c in fired))
        ran = number_field(row.get("epochs"))
        ran = ran if np.isfinite(ran) and ran > 0 else float(len(history))
        longer.append(int(max(ran, 1) * LONGER_FACTOR) if fired else 0)
        gain.append(headroom(history, metric, ran) if fired else 0.0)
    return frame.assign(premature=why, longer_epochs=longer, headroom=gain)


def premature_text(rows: pd.DataFrame) -> str | None:
    """``scratch had not finished learning (seed 0: ...); train longer (e.g. 16 epochs) before
    comparing`` for the premature variants among ``rows``; None when there are none."""
    if "premature" not in rows:
        raise ValueError("assess_variants() must mark the results first")
    bad = rows[rows["premature"] != ""]
    if bad.empty:
        return None
    parts = []
    for arm, part in bad.groupby("arm", sort=False):
        cells = []
        for (aug, n), cell in part.groupby(["augment", "train_size"], sort=False):
            where = ", ".join(([f"augment {aug:g}"] if rows["augment"].nunique() > 1 else [])
                              + ([f"n={n}"] if rows["train_size"].nunique() > 1 else []))
            for evidence, same in cell.groupby("premature", sort=False):
                seeds = ", ".join(str(seed) for seed in same["seed"])
                cells.append(f"{where}{', ' if where else ''}seed{'s' if len(same) > 1 else ''} {seeds}: {evidence}")
        parts.append(f"{arm} had not finished learning ({'; '.join(cells)})")
    return f"{' and '.join(parts)}; train longer (e.g. {int(bad['longer_epochs'].max())} epochs) before comparing"


@dataclass(frozen=True)
class Design:
    """What the study's repetitions share, for :mod:`transferlab.evaluation.comparison`: the
    folds (their overlap widens the variance), the test images when a result does not record
    its count, and the region of practical equivalence. The default: one split, no test count."""

    folds: int = 0
    rope: float = cmp.DEFAULT_ROPE
    test_images: int | None = None

    @classmethod
    def of(cls, study: StudyConfig) -> Design:
        return cls(study.folds, study.rope, study.test_size or None)

    @property
    def overlap(self) -> float:
        return cmp.overlap_ratio(self.folds)

    def described(self, unit: str) -> str:
        """The report's sentence on how its intervals and verdicts are computed."""
        folds = (f"its variance corrected for the {self.folds} overlapping training folds (Nadeau & Bengio: "
                 f"× (1/J + 1/(k − 1)) instead of 1/J, J repetitions, k = {self.folds})" if self.folds >= 2
                 else "conditional on the one split every repetition shares (study.folds: 0)")
        return (f"Intervals are 95 % intervals of a t over seeds (paired by seed: same training subset and "
                f"augmentation seed), {folds}, with the fixed test set's sampling error added (from per-image "
                f"test scores where the results store them, else a binomial bound on the test count). Each "
                f"comparison gives P(A better), P(practically equivalent, within ±{self.rope:g} {unit}: "
                f"study.rope) and P(B better) (a Bayesian correlated t-test); one of them at or above "
                f"{cmp.DECISION:.2f} decides, otherwise it is undecided.")


def per_seed(rows: pd.DataFrame, metric: str) -> pd.Series:
    return rows.groupby("seed")["test_" + metric].mean()


def image_scores(rows: pd.DataFrame, metric: str) -> np.ndarray | None:
    """Per-image test scores ``(seeds, images)`` (seed order), None unless every row has them."""
    column = IMAGE_SCORES + metric
    if column not in rows or not all(isinstance(v, (list, tuple, np.ndarray)) and len(v) for v in rows[column]):
        return None
    per = rows.groupby("seed")[column].apply(lambda v: np.mean([np.asarray(x, float) for x in v], axis=0))
    return np.stack(per.to_list()) if len({len(x) for x in per}) == 1 else None


def test_error(rows: pd.DataFrame, metric: str, design: Design, other: pd.DataFrame | None = None) -> cmp.TestError:
    """The test set's sampling variance of one arm's mean, or of ``rows`` − ``other``: paired
    per-image scores when stored, else the binomial bound on the recorded (or the study's) count."""
    mine, theirs = image_scores(rows, metric), None if other is None else image_scores(other, metric)
    if mine is not None and (other is None or (theirs is not None and theirs.shape[1] == mine.shape[1])):
        return cmp.paired_image_error(mine, theirs)
    counts = [number_field(v) for part in (rows, other) if part is not None for v in part.get("test_images", [])]
    counts = [c for c in counts if np.isfinite(c)]
    n = int(min(counts)) if counts else design.test_images
    second = None if other is None else float(per_seed(other, metric).mean())
    return cmp.proportion_error(float(per_seed(rows, metric).mean()), n, second)


def test_basis(frame: pd.DataFrame, metric: str, design: Design) -> str:
    """How the test set's error is estimated for these results (said once in the report)."""
    return test_error(frame, metric, design).basis


def arm_interval(rows: pd.DataFrame, metric: str, design: Design = Design()) -> Interval:
    """Mean of the test metric over seeds with its 95 % interval (corrected for overlapping folds,
    with the test set's sampling error)."""
    values = per_seed(rows, metric)
    return cmp.repeated(values, design.rope, design.overlap, test_error(rows, metric, design), paired=False).interval


def compare_rows(first: pd.DataFrame, second: pd.DataFrame, metric: str,
                 design: Design = Design()) -> tuple[np.ndarray, cmp.Comparison]:
    """``first − second``: per-seed differences and their comparison, paired by seed (unpaired
    when no seed is shared)."""
    a, b = per_seed(first, metric), per_seed(second, metric)
    common = a.index.intersection(b.index)
    if len(common):
        diff = a.loc[common].to_numpy() - b.loc[common].to_numpy()
        error = test_error(first[first["seed"].isin(common)], metric, design, second[second["seed"].isin(common)])
        return diff, cmp.repeated(diff, design.rope, design.overlap, error)
    return np.array([]), cmp.unpaired(a, b, design.rope, design.overlap, test_error(first, metric, design, second))


def could_still_win(rows: pd.DataFrame, interval: Interval, leader: float, rope: float) -> tuple[bool, str]:
    """Whether a premature arm could plausibly still reach the leader's mean (within the ROPE):
    the high end of its interval plus its :func:`headroom` (the largest of its variants') at or
    above ``leader − rope``. One seed (no interval) always could. Returns the judgement and why."""
    gain = float(rows["headroom"].max()) if "headroom" in rows else 0.0
    reach = interval.high + gain
    text = (f"its 95 % high end {interval.high:.3f} plus its recent rise continued for the longer budget "
            f"({gain:+.3f}) {'reaches' if reach >= leader - rope else 'stays below'} the leader's mean {leader:.3f} "
            f"− ROPE {rope:g}")
    return bool(reach >= leader - rope), text


def learned(interval: Interval, chance: float) -> bool:
    return bool(np.isfinite(interval.low) and interval.low >= learned_level(chance))


def described(name: str, interval: Interval) -> str:
    """``scratch 0.080 (95 % CI 0.077 … 0.083)``."""
    if not np.isfinite(interval.low):
        return f"{name} {interval.estimate:.3f} (one seed: no interval)"
    return f"{name} {interval.estimate:.3f} (95 % CI {interval.low:.3f} … {interval.high:.3f})"


def learned_rule(chance: float, unit: str) -> str:
    """``learned: the low end of the 95 % interval reaches 0.126 char accuracy, chance ...``."""
    return (f"learned: the low end of the 95 % interval reaches {learned_level(chance):.3f} {unit}, chance "
            f"{chance:.3g} plus {MIN_SKILL * 100:.0f} % of the way to perfect")


def size_budget(sizes: pd.DataFrame, arm: str, target: float, unit: str) -> str:
    """At how many training images ``arm`` would reach ``target`` (mean, plus the half width of
    its interval at the largest size so that the interval clears it), from a straight line of
    its mean against log2(training images); or why the curve cannot tell."""
    part = sizes[(sizes["arm"] == arm) & np.isfinite(sizes["mean"])].sort_values("train_size") \
        if not sizes.empty else sizes
    if len(part) < 2:
        tried = ", ".join(f"n={n}" for n in part["train_size"]) if len(part) else "no size"
        return (f"{arm}: the data-size curve is too short to estimate a budget ({tried}); add sizes to "
                "study.train_sizes")
    x, y = np.log2(part["train_size"].to_numpy(float)), part["mean"].to_numpy(float)
    slope, intercept = np.polyfit(x, y, 1)
    span = f"n={int(part['train_size'].iloc[0])} … {int(part['train_size'].iloc[-1])}"
    if slope < FLAT_GAIN_PER_DOUBLING:
        return (f"{arm}: the data-size curve is flat ({slope:+.3f} {unit} per doubling of the training images over "
                f"{span}): more images alone are not predicted to help; see the diagnostics (epochs, learning rate)")
    last = part.iloc[-1]
    half = last["ci_high"] - last["mean"] if np.isfinite(last["ci_high"]) else 0.0
    goal = target + half
    needed = 2 ** ((goal - intercept) / slope)
    largest = float(last["train_size"])
    if needed <= largest:
        return (f"{arm}: its mean already reaches {goal:.3f} {unit} at the sizes tried ({span}); more seeds would "
                "narrow its interval")
    if needed > MAX_EXTRAPOLATION * largest:
        return (f"{arm}: the data-size curve ({slope:+.3f} {unit} per doubling over {span}) would need more than "
                f"{MAX_EXTRAPOLATION}× the largest size tried to reach {goal:.3f}: too far to extrapolate")
    rounded = int(float(f"{needed:.2g}"))
    return (f"{arm} would reach {goal:.3f} {unit} at about {rounded:,} training images (straight line of its mean "
            f"against log training size over {span}, {slope:+.3f} per doubling: an extrapolation to check with "
            "study.train_sizes)")


def companions(frame: pd.DataFrame, metric: str) -> list[str]:
    """Plate metrics shown next to the compared one (plate accuracy beside char accuracy and back)."""
    return [m for m in PLATE_METRICS if m != metric and "test_" + m in frame]


def cell_status(rows: pd.DataFrame, interval: Interval, chance: float) -> str:
    """``premature (k of n)``, ``learned`` or ``near chance`` for the variants of one cell."""
    bad = int((rows["premature"] != "").sum())
    if bad:
        return f"premature ({bad} of {len(rows)})"
    return "learned" if learned(interval, chance) else "near chance"


def summary_row(rows: pd.DataFrame, metric: str, chance: float, design: Design = Design()) -> dict:
    """Mean, 95 % CI over seeds, companion means, training time and status of a set of variants."""
    interval = arm_interval(rows, metric, design)
    row = {"seeds": int(rows["seed"].nunique()), "mean": interval.estimate, "ci_low": interval.low,
           "ci_high": interval.high, "train_seconds": float(rows["train_seconds"].mean()),
           "status": cell_status(rows, interval, chance)}
    row.update({m: float(rows["test_" + m].mean()) for m in companions(rows, metric)})
    return row
