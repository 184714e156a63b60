"""Effect sizes with 95 % confidence intervals over seeds, and the sentences that report them.

A study repeats every variant with a few seeds; the question "does X help?" is then a
difference of means whose uncertainty comes from the seed-to-seed spread. With 3 seeds a
t-interval is wide: that is the honest answer, not a defect. When the design pairs the
two arms by seed (same data subset and initial head), the paired difference is used.

An interval that covers zero is reported as "not distinguishable from no effect".

Statistically above chance is not the same as having learned something: a character
accuracy of 0.08 against a chance of 0.029 can be "significant" and still be noise for any
practical purpose. :data:`MIN_SKILL` sets the level an accuracy must clear before the study
or the tuner call a result informative (:func:`learned_level`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

CONFIDENCE = 0.95
# An accuracy has "learned" when the low end of its 95 % interval lies at least this share of
# the way from chance to perfect: chance + MIN_SKILL * (1 - chance). A share, not a multiple of
# chance: 2 x chance is impossible for two classes (1.0) and meaningless for plates (35^-7).
# 1/35 chance -> 0.126 char accuracy; 10 classes -> 0.19; 2 classes -> 0.55; plates -> 0.10.
MIN_SKILL = 0.10
MAX_SEEDS = 50  # seeds_needed: beyond this the difference is too small to chase with seeds


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval (``low`` .. ``high``) and how it was computed."""

    estimate: float
    low: float
    high: float
    n: int
    method: str  # "t-interval", "paired t-interval", "bootstrap", "single value", "Wilson interval", ...
    confidence: float = CONFIDENCE
    counted: str = "seed"  # what n counts, for the sentence

    def covers(self, value: float = 0.0) -> bool:
        return self.low <= value <= self.high

    @property
    def excludes_zero(self) -> bool:
        return not self.covers(0.0)

    def format(self, digits: int = 3, signed: bool = True, unit: str = "") -> str:
        """``+0.120 plate accuracy (95 % CI +0.050 … +0.190, paired t-interval over 3 seeds)``."""
        fmt = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
        shown = fmt.format(self.estimate) + (f" {unit}" if unit else "")
        if not np.isfinite(self.low):
            return f"{shown} (one {self.counted} only: no interval)"
        return (f"{shown} ({self.confidence * 100:.0f} % CI {fmt.format(self.low)} … "
                f"{fmt.format(self.high)}, {self.method} over {self.n} {self.counted}{'s' if self.n != 1 else ''})")


def _clean(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def t_interval(values, confidence: float = CONFIDENCE, method: str = "t-interval") -> Interval:
    """Mean of ``values`` with a Student-t interval (n - 1 degrees of freedom).

    One value gives an infinitely wide interval: nothing can be said about the spread.
    """
    x = _clean(values)
    if len(x) == 0:
        raise ValueError("no values to estimate from")
    mean = float(x.mean())
    if len(x) == 1:
        return Interval(mean, -np.inf, np.inf, 1, "single value", confidence)
    if np.ptp(x) == 0:  # no spread: scipy warns about precision; the interval is the value itself
        return Interval(mean, mean, mean, len(x), method, confidence)
    low, high = _scipy_stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return Interval(mean, float(low), float(high), len(x), method, confidence)


def difference_interval(a, b, paired: bool, confidence: float = CONFIDENCE) -> Interval:
    """Mean of ``a`` − mean of ``b``.

    ``paired``: ``a[i]`` and ``b[i]`` share seed i, so the interval is a t-interval of the
    per-seed differences (which removes the seed's own effect). Otherwise Welch's
    t-interval for two independent samples.
    """
    a, b = _clean(a), _clean(b)
    if paired:
        if len(a) != len(b):
            raise ValueError(f"paired samples must have the same length ({len(a)} vs {len(b)})")
        return t_interval(a - b, confidence, method="paired t-interval")
    if len(a) == 0 or len(b) == 0:
        raise ValueError("no values to estimate from")
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Interval(diff, -np.inf, np.inf, min(len(a), len(b)), "single value", confidence)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return Interval(diff, diff, diff, min(len(a), len(b)), "Welch t-interval", confidence)
    low, high = _scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return Interval(diff, float(low), float(high), min(len(a), len(b)), "Welch t-interval", confidence)


def plate_chance(num_classes: int, slots: int) -> float:
    """Accuracy of uniform guessing: per character 1/classes, per plate (1/classes)^slots."""
    return (1.0 / num_classes) ** slots


def learned_level(chance: float, skill: float = MIN_SKILL) -> float:
    """The accuracy a result must clearly exceed to count as learned (see :data:`MIN_SKILL`)."""
    return chance + skill * (1.0 - chance)


def proportion_interval(proportion: float, n: int, confidence: float = CONFIDENCE,
                        counted: str = "validation image") -> Interval:
    """Wilson score interval of an accuracy measured on ``n`` items (good also near 0 and 1)."""
    if n < 1:
        raise ValueError("a proportion needs at least one item")
    p = float(np.clip(proportion, 0.0, 1.0))
    z = float(_scipy_stats.norm.ppf(0.5 + confidence / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), int(n), "Wilson interval", confidence,
                    counted)


def proportion_difference_interval(p1: float, n1: int, p2: float, n2: int, confidence: float = CONFIDENCE,
                                   counted: str = "validation image") -> Interval:
    """``p1 - p2`` with Newcombe's interval (from the two Wilson intervals; treats the samples as
    independent, which is conservative when both were measured on the same images)."""
    a = proportion_interval(p1, n1, confidence, counted)
    b = proportion_interval(p2, n2, confidence, counted)
    diff = a.estimate - b.estimate
    low = diff - float(np.hypot(a.estimate - a.low, b.high - b.estimate))
    high = diff + float(np.hypot(a.high - a.estimate, b.estimate - b.low))
    return Interval(diff, low, high, min(int(n1), int(n2)), "Newcombe interval", confidence, counted)


def unclear_best(best: float, second: float | None, n: int, chance: float, name: str = "accuracy",
                 rival: str = "the runner-up", rope: float | None = None) -> str | None:
    """Why the best of several accuracies measured on the same ``n`` items is not a clear winner,
    or None when it is one: the low end of its Wilson interval must reach :func:`learned_level`,
    and it must be practically better than ``second`` (the runner-up): P(best − second > rope)
    >= 0.95 with the items' sampling error (:func:`transferlab.evaluation.comparison.single`,
    the same rule as the study's comparisons; one run each, so seed noise is not included)."""
    from transferlab.evaluation import comparison as cmp

    rope = cmp.DEFAULT_ROPE if rope is None else rope
    interval = proportion_interval(best, n)
    shown = f"{name} {interval.format(4, signed=False)}"
    level = learned_level(chance)
    if interval.low <= chance:
        return f"not distinguishable from chance ({chance:.3g}): {shown}"
    if interval.low < level:
        return (f"not clearly above chance: {shown}, whose low end does not reach {level:.3f} (chance {chance:.3g} "
                f"plus {MIN_SKILL * 100:.0f} % of the way to perfect)")
    if second is None:
        return None
    compared = cmp.single(best - second, rope, cmp.proportion_error(best, n, second), counted="validation image")
    if compared.decision == "better":
        return None
    shown = f"difference {compared.interval.format(4)}; {compared.probabilities('best', rival)}"
    if compared.decision == "equivalent":
        return f"practically equivalent to {rival} ({second:.4f}, within ±{rope:.3g}): {shown}"
    return f"not distinguishable from {rival} ({second:.4f}): {shown}"


def seeds_needed(differences, confidence: float = CONFIDENCE, max_seeds: int = MAX_SEEDS, overlap: float = 0.0,
                 test_variance: float = 0.0, margin: float = 0.0) -> int | None:
    """Seeds a paired t-interval would need to clear ``margin`` (0, or the ROPE) on the side of
    the mean, if the per-seed differences kept their mean and spread; None when no number up to
    ``max_seeds`` would (or the mean does not clear it). ``overlap`` and ``test_variance`` as in
    :mod:`transferlab.evaluation.comparison`: they do not shrink with more seeds."""
    d = _clean(differences)
    distance = abs(float(d.mean())) - margin if len(d) else 0.0
    if len(d) < 2 or distance <= 0:
        return None
    s2 = float(d.var(ddof=1))
    if s2 == 0 and test_variance == 0:
        return len(d)
    for n in range(2, max_seeds + 1):
        if _scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * np.sqrt((1 / n + overlap) * s2 + test_variance) < distance:
            return n
    return None


@dataclass(frozen=True)
class Finding:
    """One hypothesis answered: a sentence, the interval behind it, and the verdict."""

    key: str
    claim: str
    interval: Interval | None
    # "supported" | "contradicted" | "not distinguishable from no effect" | "not run" | withheld:
    # "premature" (an arm had not finished learning) | "uninformative" (near chance); comparisons
    # against a ROPE (transferlab.evaluation.comparison): "practically equivalent" | "undecided"
    verdict: str
    sentence: str
    probabilities: dict | None = None  # comparisons: p_better, p_equivalent, p_worse


def verdict(interval: Interval) -> str:
    """Supported when the interval lies above zero, contradicted below, else no effect shown."""
    if interval.low > 0:
        return "supported"
    if interval.high < 0:
        return "contradicted"
    return "not distinguishable from no effect"


def finding(key: str, claim: str, what: str, interval: Interval, unit: str, digits: int = 3) -> Finding:
    """``H2 (claim): what = +0.120 unit (95 % CI +0.05 … +0.19, paired t-interval over 3 seeds): supported.``"""
    decided = verdict(interval)
    text = f"{key} ({claim}): {what} = {interval.format(digits, unit=unit)}: {decided}."
    return Finding(key, claim, interval, decided, text)


def not_run(key: str, claim: str, why: str) -> Finding:
    return Finding(key, claim, None, "not run", f"{key} ({claim}): not answered — {why}.")


def withheld(key: str, claim: str, decided: str, why: str) -> Finding:
    """A hypothesis whose effect is not reported because the evidence cannot carry it:
    ``H2 (claim): premature: scratch had not finished learning (...); train longer ...``."""
    return Finding(key, claim, None, decided, f"{key} ({claim}): {decided}: {why}.")
