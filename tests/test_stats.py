import numpy as np
import pytest

from transferlab.evaluation import stats


def test_t_interval_on_hand_made_numbers():
    # mean 2, sd 1, n 3: half width = t(0.975, 2) * 1 / sqrt(3) = 4.302653 * 0.577350 = 2.484138
    interval = stats.t_interval([1.0, 2.0, 3.0])
    assert interval.estimate == pytest.approx(2.0)
    assert interval.low == pytest.approx(2.0 - 2.484138, abs=1e-5)
    assert interval.high == pytest.approx(2.0 + 2.484138, abs=1e-5)
    assert interval.n == 3 and interval.method == "t-interval"


def test_paired_difference_removes_the_seed_effect():
    # Seeds differ a lot, but the pretrained arm is exactly 0.1 better on each seed.
    pretrained, scratch = [0.5, 0.8, 0.3], [0.4, 0.7, 0.2]
    paired = stats.difference_interval(pretrained, scratch, paired=True)
    assert paired.estimate == pytest.approx(0.1)
    assert paired.low == pytest.approx(0.1) and paired.high == pytest.approx(0.1)
    assert stats.verdict(paired) == "supported"
    unpaired = stats.difference_interval(pretrained, scratch, paired=False)
    assert unpaired.covers(0.0)  # the seed spread hides the effect without pairing


def test_welch_interval_matches_the_textbook_value():
    # Equal variances (5/3) and n = 4: se = sqrt(2 * 5/3 / 4) = 0.912871, dof = 6, t = 2.446912.
    interval = stats.difference_interval([1, 2, 3, 4], [2, 3, 4, 5], paired=False)
    assert interval.estimate == pytest.approx(-1.0)
    assert interval.low == pytest.approx(-1 - 2.446912 * 0.912871, abs=1e-5)
    assert interval.high == pytest.approx(-1 + 2.446912 * 0.912871, abs=1e-5)


def test_interval_covering_zero_is_reported_as_no_effect():
    interval = stats.difference_interval([0.52, 0.48, 0.55], [0.50, 0.50, 0.50], paired=True)
    assert interval.covers(0.0)
    found = stats.finding("H3", "augmentation improves accuracy", "augment 0.3 − none", interval, "char accuracy")
    assert found.verdict == "not distinguishable from no effect"
    assert "not distinguishable from no effect" in found.sentence
    assert "95 % CI" in found.sentence and "paired t-interval over 3 seeds" in found.sentence
    assert found.sentence.startswith("H3 (augmentation improves accuracy): augment 0.3 − none = +0.017 char accuracy")


def test_interval_below_zero_contradicts():
    interval = stats.difference_interval([0.1, 0.2, 0.15], [0.5, 0.6, 0.55], paired=True)
    assert stats.verdict(interval) == "contradicted"
    assert interval.high < 0


def test_single_seed_gives_no_interval():
    interval = stats.t_interval([0.7])
    assert not np.isfinite(interval.low) and interval.covers(0.0)
    assert "one seed only" in interval.format()


def test_paired_samples_must_match():
    with pytest.raises(ValueError):
        stats.difference_interval([1, 2], [1, 2, 3], paired=True)


def test_chance_levels():
    assert stats.plate_chance(35, 7) == pytest.approx(35.0**-7)
    assert stats.plate_chance(10, 1) == pytest.approx(0.1)


def test_learned_level_is_a_share_of_the_way_from_chance_to_perfect():
    assert stats.learned_level(1 / 35) == pytest.approx(1 / 35 + 0.1 * (1 - 1 / 35))  # 0.126
    assert stats.learned_level(0.5) == pytest.approx(0.55)


def test_wilson_interval_matches_the_textbook_value():
    # 8 of 10: Wilson 95 % interval 0.4902 .. 0.9433 (e.g. Newcombe 1998, table I)
    interval = stats.proportion_interval(0.8, 10)
    assert interval.low == pytest.approx(0.4902, abs=1e-4) and interval.high == pytest.approx(0.9433, abs=1e-4)
    assert stats.proportion_interval(0.0, 20).low == 0.0 and stats.proportion_interval(0.0, 20).high > 0
    assert "over 10 validation images" in interval.format()
    with pytest.raises(ValueError):
        stats.proportion_interval(0.5, 0)


def test_newcombe_difference_interval():
    # Newcombe 1998 example: 56/70 vs 48/80 -> difference 0.2, interval 0.0524 .. 0.3339
    interval = stats.proportion_difference_interval(56 / 70, 70, 48 / 80, 80)
    assert interval.estimate == pytest.approx(0.2)
    assert interval.low == pytest.approx(0.0524, abs=1e-3) and interval.high == pytest.approx(0.3339, abs=1e-3)


def test_unclear_best_refuses_near_chance_and_ties():
    assert "not distinguishable from chance" in stats.unclear_best(0.064, 0.05, 6, 1 / 35)
    assert "not clearly above chance" in stats.unclear_best(0.08, None, 2000, 1 / 35)
    assert "not distinguishable from trial 3" in stats.unclear_best(0.62, 0.60, 200, 1 / 35, rival="trial 3")
    assert stats.unclear_best(0.80, 0.60, 200, 1 / 35) is None
    assert stats.unclear_best(0.80, None, 200, 1 / 35) is None


def test_seeds_needed_to_separate_a_paired_difference():
    assert stats.seeds_needed([0.02, -0.01, 0.02]) == 15
    assert stats.seeds_needed([0.01, -0.01, 0.0]) is None  # mean zero
    assert stats.seeds_needed([0.0001, -0.03, 0.03]) is None  # would need more than MAX_SEEDS
