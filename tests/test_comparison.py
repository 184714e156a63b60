"""The comparisons behind the study's and the tuner's verdicts: corrected for overlapping folds,
with the fixed test set's sampling error, against a region of practical equivalence (pure numpy)."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from transferlab.evaluation import comparison as cmp
from transferlab.evaluation import metrics, stats


def nested_scores(accuracies, n):
    """Per-image 0/1 scores of models that get the first round(p·n) images right: the same
    images are easy for all of them (the usual case), so their per-image differences are few."""
    return np.array([(np.arange(n) < round(p * n)).astype(float) for p in accuracies])


def test_the_corrected_interval_is_the_nadeau_bengio_one_and_wider_than_the_naive_one():
    diffs = [0.03, 0.035, 0.04]
    naive = cmp.repeated(diffs, rope=0.01)
    assert naive.interval.low == pytest.approx(stats.difference_interval(diffs, [0, 0, 0], paired=True).low)
    corrected = cmp.repeated(diffs, rope=0.01, overlap=cmp.overlap_ratio(3))
    # 3 folds: n_test/n_train = 1/2; variance of the mean (1/3 + 1/2) s^2 instead of s^2 / 3.
    half = scipy_stats.t.ppf(0.975, 2) * np.sqrt((1 / 3 + 1 / 2) * np.var(diffs, ddof=1))
    assert corrected.interval.high - corrected.interval.estimate == pytest.approx(half)
    widths = [c.interval.high - c.interval.low for c in (corrected, naive)]
    assert widths[0] / widths[1] == pytest.approx(np.sqrt(2.5))
    assert "corrected paired t (overlapping folds)" in corrected.interval.format()
    assert cmp.overlap_ratio(0) == 0 and cmp.overlap_ratio(5) == pytest.approx(0.25)


def test_on_correlated_repetitions_the_naive_interval_undercovers_and_the_corrected_one_does_not():
    """9 repetitions (3 × 3-fold) correlated as k-fold ones are (rho = 1/k; Bouckaert & Frank 2004):
    the naive t-interval misses the true difference far more than 5 % of the time; the corrected
    one does not."""
    rng = np.random.default_rng(0)
    k, repetitions, runs, truth = 3, 9, 2000, 0.05
    rho = 1 / k
    shared = rng.normal(0, np.sqrt(rho), (runs, 1)) * 0.02
    own = rng.normal(0, np.sqrt(1 - rho), (runs, repetitions)) * 0.02
    samples = truth + shared + own
    missed = {"naive": 0, "corrected": 0}
    for row in samples:
        for name, overlap in (("naive", 0.0), ("corrected", cmp.overlap_ratio(k))):
            interval = cmp.repeated(row, rope=0.01, overlap=overlap).interval
            missed[name] += not interval.covers(truth)
    assert missed["naive"] / runs > 0.25
    assert missed["corrected"] / runs < 0.07


def test_clearly_better_practically_equivalent_and_undecided():
    n = 400
    better = cmp.repeated([0.10, 0.12, 0.11], 0.01, cmp.overlap_ratio(3),
                          cmp.paired_image_error(nested_scores([0.71, 0.72, 0.70], n), nested_scores([0.6] * 3, n)))
    assert better.decision == "better" and better.better >= cmp.DECISION
    assert better.test.basis == "paired per-image scores over 400 test images"

    n = 4000  # a large test set on which two nearly identical models differ on a few images
    same = cmp.repeated([0.001, -0.001, 0.0005], 0.01, cmp.overlap_ratio(3),
                        cmp.paired_image_error(nested_scores([0.801, 0.799, 0.8005], n), nested_scores([0.8] * 3, n)))
    assert same.decision == "equivalent" and same.equivalent >= cmp.DECISION
    assert same.interval.low > -0.01 and same.interval.high < 0.01

    # ImageNet vs scratch on digits (the issue): +0.019 over 3 seeds, 95 % CI about -0.018 ... +0.056.
    undecided = cmp.repeated([0.035, 0.005, 0.017], 0.01, cmp.overlap_ratio(3))
    assert undecided.decision == "undecided"
    assert max(undecided.better, undecided.equivalent, undecided.worse) < cmp.DECISION
    worse = cmp.repeated([-0.10, -0.12, -0.11], 0.01)
    assert worse.decision == "worse"
    for c in (better, same, undecided, worse):
        assert c.better + c.equivalent + c.worse == pytest.approx(1.0)


def test_the_probabilities_are_those_of_the_student_posterior():
    diffs = np.array([0.02, 0.04, 0.03])
    c = cmp.repeated(diffs, rope=0.01, overlap=0.5)
    scale = np.sqrt((1 / 3 + 0.5) * diffs.var(ddof=1))
    assert c.better == pytest.approx(scipy_stats.t.sf((0.01 - 0.03) / scale, 2))
    assert c.worse == pytest.approx(scipy_stats.t.cdf((-0.01 - 0.03) / scale, 2))
    assert "P(A better) " in c.probabilities() and "±0.01" in c.probabilities()
    single = cmp.repeated([0.5], rope=0.01)
    assert not np.isfinite(single.interval.low) and single.decision == "undecided"
    assert single.probabilities() == "no probabilities (one repetition)"


def test_the_fixed_test_set_widens_the_interval_and_paired_scores_are_tighter_than_the_bound():
    diffs = [0.05, 0.05, 0.05]  # no spread over seeds: only the test set is uncertain
    bound = cmp.proportion_error(0.65, 400, 0.6)
    assert bound.variance == pytest.approx((0.65 * 0.35 + 0.6 * 0.4) / 400)
    assert "binomial bound over 400 test images" in bound.basis
    paired = cmp.paired_image_error(nested_scores([0.65] * 3, 400), nested_scores([0.6] * 3, 400))
    assert paired.variance == pytest.approx(np.var(np.r_[np.ones(20), np.zeros(380)], ddof=1) / 400)
    assert 0 < paired.variance < bound.variance
    without, with_bound = cmp.repeated(diffs, 0.01), cmp.repeated(diffs, 0.01, test=bound)
    assert without.interval.high - without.interval.low == pytest.approx(0, abs=1e-9)
    assert with_bound.interval.low < 0.05 < with_bound.interval.high
    assert "+ test-set error" in with_bound.interval.method
    assert cmp.proportion_error(0.5, None) is cmp.NO_TEST_ERROR


def test_unpaired_comparison_adds_both_corrected_variances():
    c = cmp.unpaired([0.6, 0.62, 0.64], [0.5, 0.5, 0.53], rope=0.01, overlap=0.5)
    assert c.interval.estimate == pytest.approx(0.11)
    assert c.interval.method == "corrected Welch t (overlapping folds)"
    assert c.interval.low < 0.11 < c.interval.high


def test_seeds_needed_knows_that_overlapping_folds_do_not_shrink_with_seeds():
    diffs = [0.0, 0.02, 0.04]
    assert stats.seeds_needed(diffs) is not None
    assert stats.seeds_needed(diffs, overlap=0.5) is None  # the 1/(k-1) term stays
    assert stats.seeds_needed([0.012, 0.008, 0.01], margin=0.01) is None  # the mean does not clear the ROPE


def test_per_image_scores_average_to_the_accuracies():
    true = np.array([[1, 2, 0], [1, 1, 0], [2, 2, 2], [0, 1, 2]])  # class 0 = pad in the first two plates
    pred = np.array([[1, 2, 0], [1, 2, 0], [2, 2, 1], [0, 1, 2]])
    scores = metrics.per_image_scores(true, pred, pad_index=0)
    assert scores["plate_accuracy"].mean() == pytest.approx(metrics.plate_accuracy(true, pred))
    assert scores["char_accuracy"].mean() == pytest.approx(metrics.char_accuracy(true, pred, 0))
    labels = np.array([0, 1, 1, 2])
    assert metrics.per_image_scores(labels, np.array([0, 1, 2, 2]))["accuracy"].tolist() == [1, 1, 0, 1]


def test_the_tuner_calls_a_practically_equivalent_runner_up_so():
    assert stats.unclear_best(0.80, 0.60, 300, 1 / 35) is None
    tie = stats.unclear_best(0.62, 0.60, 300, 1 / 35, rival="trial 3")
    assert tie.startswith("not distinguishable from trial 3") and "P(best better)" in tie
    same = stats.unclear_best(0.8001, 0.8, 200_000, 1 / 35, rival="trial 3")
    assert same.startswith("practically equivalent to trial 3 (0.8000, within ±0.01)")
    assert stats.unclear_best(0.85, 0.80, 2000, 1 / 35, rope=0.0) is None
