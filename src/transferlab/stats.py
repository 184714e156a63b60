"""Effect sizes with 95 % confidence intervals over seeds, and the sentences that report them.

A study repeats every variant with a few seeds; the question "does X help?" is then a
difference of means whose uncertainty comes from the seed-to-seed spread. With 3 seeds a
t-interval is wide: that is the honest answer, not a defect. When the design pairs the
two arms by seed (same data subset and initial head), the paired difference is used.

An interval that covers zero is reported as "not distinguishable from no effect".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval (``low`` .. ``high``) and how it was computed."""

    estimate: float
    low: float
    high: float
    n: int
    method: str  # "t-interval", "paired t-interval", "bootstrap", "single value"
    confidence: float = CONFIDENCE

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
            return f"{shown} (one seed only: no interval)"
        return (f"{shown} ({self.confidence * 100:.0f} % CI {fmt.format(self.low)} … "
                f"{fmt.format(self.high)}, {self.method} over {self.n} seed{'s' if self.n != 1 else ''})")


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
    sem = float(x.std(ddof=1) / np.sqrt(len(x)))
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * sem)
    return Interval(mean, mean - half, mean + half, len(x), method, confidence)


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
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = float(np.sqrt(va + vb))
    if se == 0.0:
        return Interval(diff, diff, diff, min(len(a), len(b)), "Welch t-interval", confidence)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, dof) * se)
    return Interval(diff, diff - half, diff + half, min(len(a), len(b)), "Welch t-interval", confidence)


def bootstrap_interval(values, confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> Interval:
    """Mean with a percentile-bootstrap interval (fixed seed: the same numbers give the same interval)."""
    x = _clean(values)
    if len(x) == 0:
        raise ValueError("no values to estimate from")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(x.mean()), float(low), float(high), len(x), "bootstrap", confidence)


def plate_chance(num_classes: int, slots: int) -> float:
    """Accuracy of uniform guessing: per character 1/classes, per plate (1/classes)^slots."""
    return (1.0 / num_classes) ** slots


@dataclass(frozen=True)
class Finding:
    """One hypothesis answered: a sentence, the interval behind it, and the verdict."""

    key: str
    claim: str
    interval: Interval | None
    verdict: str  # "supported" | "contradicted" | "not distinguishable from no effect" | "not run"
    sentence: str


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
