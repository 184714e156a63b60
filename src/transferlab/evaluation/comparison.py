"""Comparisons that hold for the design actually run: overlapping repetitions, a fixed test set, and
a region of practical equivalence.

**Overlapping repetitions.** With k folds (``study.folds``) the repetitions train on overlapping
data, so their results are correlated and their spread understates the variance of their mean.
The corrected resampled t-test (Nadeau & Bengio 2003) multiplies the variance of the mean of J
repetitions by ``1/J + n_test/n_train`` instead of ``1/J``; for k folds ``n_test/n_train =
1/(k − 1)`` (Bouckaert & Frank 2004) — :func:`overlap_ratio`. Read with a flat prior, the
posterior of the mean difference is a Student t with J − 1 degrees of freedom at that scale: the
Bayesian correlated t-test of Benavoli et al. (2017, JMLR 18(77)), whose probabilities are given
here. More repetitions shrink only the ``1/J`` term.

**The fixed test set.** Every repetition is scored on the same test images, so the test set's own
sampling error is common to all of them and in none of their spread. It is added as a variance
(:class:`TestError`): from the per-image scores of the compared arms when the results store them
(the variance of the per-image differences, averaged over repetitions, over n); otherwise from the
accuracies and the test count, ``p(1 − p)/n`` per arm, an upper bound when the arms' errors are
not negatively correlated (the same images are hard for both). The degrees of freedom of the sum
follow Welch–Satterthwaite.

**Practical equivalence.** Given ``rope`` (the half-width of the region of practical
equivalence, ``study.rope``), a comparison reports P(A better) = P(δ > rope), P(practically
equivalent) = P(|δ| ≤ rope) and P(B better) = P(δ < −rope). One of them at or above
:data:`DECISION` decides; otherwise the comparison is undecided. An interval inside the ROPE is an
answer ("equivalent for practical purposes"), not a failure to find a difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

from transferlab.evaluation.stats import CONFIDENCE, Finding, Interval

DECISION = 0.95  # posterior probability a verdict needs
DEFAULT_ROPE = 0.01  # of the headline accuracy: study.rope and tune.rope default to it
DECISIONS = ("better", "equivalent", "worse", "undecided")


def overlap_ratio(folds: int) -> float:
    """Nadeau & Bengio's ``n_test/n_train`` for k-fold repetitions: 1/(k − 1); 0 without folds
    (every repetition on the same split: the interval is then conditional on that split)."""
    return 1.0 / (folds - 1) if folds >= 2 else 0.0


@dataclass(frozen=True)
class TestError:
    """The fixed test set's sampling variance of a mean (or of a difference of means)."""

    variance: float
    n: int  # test images (0: not included)
    basis: str  # for the report: how it was estimated

    @property
    def included(self) -> bool:
        return self.n > 0


NO_TEST_ERROR = TestError(0.0, 0, "not included (the results record no test image count)")


def paired_image_error(a: np.ndarray, b: np.ndarray | None = None) -> TestError:
    """From per-image scores, ``(repetitions, images)`` per arm: the variance of the per-image
    differences (or of the scores, for one arm) averaged over repetitions, over n."""
    per_image = np.atleast_2d(np.asarray(a, np.float64)).mean(axis=0)
    if b is not None:
        per_image = per_image - np.atleast_2d(np.asarray(b, np.float64)).mean(axis=0)
    n = len(per_image)
    if n < 2:
        return NO_TEST_ERROR
    return TestError(float(per_image.var(ddof=1)) / n, n, f"paired per-image scores over {n} test images")


def proportion_error(p_a: float, n: int | None, p_b: float | None = None) -> TestError:
    """From accuracies alone: ``p(1 − p)/n`` per arm (an upper bound for a paired difference)."""
    if not n or n < 2:
        return NO_TEST_ERROR
    variance = sum(p * (1 - p) for p in (p_a, p_b) if p is not None and np.isfinite(p)) / n
    return TestError(float(variance), int(n), f"binomial bound over {int(n)} test images (no per-image scores stored)")


@dataclass(frozen=True)
class Comparison:
    """A difference (or a level) with its interval and its posterior probabilities against the ROPE."""

    interval: Interval
    rope: float
    better: float  # P(δ > rope)
    equivalent: float  # P(|δ| <= rope)
    worse: float  # P(δ < -rope)
    test: TestError

    @property
    def decision(self) -> str:
        """``better``, ``equivalent``, ``worse`` (one probability >= DECISION) or ``undecided``."""
        for name, p in (("better", self.better), ("equivalent", self.equivalent), ("worse", self.worse)):
            if p >= DECISION:
                return name
        return "undecided"

    def probabilities(self, a: str = "A", b: str = "B") -> str:
        """``P(A better) 0.97, P(practically equivalent, ±0.010) 0.03, P(B better) 0.00``."""
        if not np.isfinite(self.better):
            return "no probabilities (one repetition)"
        return (f"P({a} better) {self.better:.2f}, P(practically equivalent, ±{self.rope:.3g}) {self.equivalent:.2f}, "
                f"P({b} better) {self.worse:.2f}")


def posterior(mean: float, variance: float, df: float, rope: float, n: int, method: str, test: TestError,
              confidence: float = CONFIDENCE, counted: str = "seed") -> Comparison:
    """Student posterior of δ (location ``mean``, scale² ``variance``, ``df``): interval and probabilities."""
    if not np.isfinite(variance):
        nan = float("nan")
        return Comparison(Interval(mean, -np.inf, np.inf, n, "single value", confidence, counted), rope, nan, nan, nan,
                          test)
    if variance <= 0:  # no spread at all: the probabilities are certainties
        better, worse = float(mean > rope), float(mean < -rope)
        return Comparison(Interval(mean, mean, mean, n, method, confidence, counted), rope, better,
                          1 - better - worse, worse, test)
    scale = float(np.sqrt(variance))
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, df)) * scale
    better = float(_scipy_stats.t.sf((rope - mean) / scale, df))
    worse = float(_scipy_stats.t.cdf((-rope - mean) / scale, df))
    return Comparison(Interval(mean, mean - half, mean + half, n, method, confidence, counted), rope, better,
                      max(0.0, 1.0 - better - worse), worse, test)


def _satterthwaite(parts: list[tuple[float, float]]) -> float:
    """Degrees of freedom of a sum of variances, each ``(variance, its df)`` (Welch–Satterthwaite)."""
    total = sum(v for v, _ in parts)
    denominator = sum(v * v / df for v, df in parts if v > 0 and df > 0)
    return total * total / denominator if denominator > 0 else float("inf")


def repetition_variance(values, overlap: float = 0.0) -> tuple[float, float, int]:
    """Mean, corrected variance of the mean ``(1/J + overlap) s²`` and J, of J repetitions
    (variance infinite for one repetition: its spread is unknown)."""
    x = np.asarray(values, np.float64).ravel()
    x = x[np.isfinite(x)]
    if len(x) == 0:
        raise ValueError("no values to estimate from")
    if len(x) == 1:
        return float(x[0]), float("inf"), 1
    return float(x.mean()), (1.0 / len(x) + overlap) * float(x.var(ddof=1)), len(x)


def _method(base: str, overlap: float, test: TestError) -> str:
    """``corrected paired t (overlapping folds) + test-set error``: what the interval accounts for."""
    shown = f"corrected {base} (overlapping folds)" if overlap > 0 else base
    return shown + (" + test-set error" if test.included else "")


def repeated(values, rope: float, overlap: float = 0.0, test: TestError = NO_TEST_ERROR, paired: bool = True,
             confidence: float = CONFIDENCE) -> Comparison:
    """Repetitions' per-repetition differences (or levels) with the corrected variance and the
    test error added; one repetition gives no interval."""
    mean, variance, j = repetition_variance(values, overlap)
    df = _satterthwaite([(variance, j - 1), (test.variance, test.n - 1)]) if j > 1 else 1.0
    method = _method("paired t" if paired else "t", overlap, test)
    return posterior(mean, variance + test.variance, df, rope, j, method, test, confidence)


def unpaired(a, b, rope: float, overlap: float = 0.0, test: TestError = NO_TEST_ERROR,
             confidence: float = CONFIDENCE) -> Comparison:
    """mean(a) − mean(b) of repetitions that share no seed: the two corrected variances added."""
    (ma, va, ja), (mb, vb, jb) = repetition_variance(a, overlap), repetition_variance(b, overlap)
    parts = [(va, ja - 1), (vb, jb - 1), (test.variance, test.n - 1)]
    df = _satterthwaite(parts) if min(ja, jb) > 1 else 1.0
    return posterior(ma - mb, va + vb + test.variance, df, rope, min(ja, jb), _method("Welch t", overlap, test), test,
                     confidence)


def single(difference: float, rope: float, test: TestError, confidence: float = CONFIDENCE,
           counted: str = "test image") -> Comparison:
    """One measurement per arm (the tuner's trials): the evaluation set's sampling error is the only
    variance known (each arm's own seed noise is not)."""
    return posterior(difference, test.variance, max(test.n - 1, 1), rope, test.n, "sampling-error interval", test,
                     confidence, counted)


VERDICTS = {"better": "supported", "worse": "contradicted", "equivalent": "practically equivalent",
            "undecided": "undecided"}


def finding(key: str, claim: str, what: str, comparison: Comparison, unit: str, names: tuple[str, str] = ("A", "B"),
            digits: int = 3) -> Finding:
    """``H2 (claim): what = +0.120 unit (95 % CI …): supported — P(finetune better) 0.99, …``.

    The claim is "A improves over B": supported when A is practically better, contradicted when
    B is, practically equivalent, or undecided (neither of the three reaches :data:`DECISION`).
    """
    decided = VERDICTS[comparison.decision]
    text = (f"{key} ({claim}): {what} = {comparison.interval.format(digits, unit=unit)}: {decided} — "
            f"{comparison.probabilities(*names)}.")
    probabilities = {"p_better": comparison.better, "p_equivalent": comparison.equivalent, "p_worse": comparison.worse}
    return Finding(key, claim, comparison.interval, decided, text, probabilities)
