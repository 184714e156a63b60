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
- **indistinguishable**: the best arm and the runner-up whose paired difference interval
  covers zero are not ranked.

What would make an uninformative study informative is estimated from its own data-size
curve (:func:`size_budget`) and seed spread (:func:`transferlab.evaluation.stats.seeds_needed`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transferlab.evaluation import diagnostics as d
from transferlab.evaluation.stats import MIN_SKILL, Interval, difference_interval, learned_level, t_interval

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


def assess_variants(frame: pd.DataFrame, histories: dict[str, pd.DataFrame], metric: str) -> pd.DataFrame:
    """The results with two columns more: ``premature`` (why the variant had not finished
    learning, "" when nothing says so) and ``longer_epochs`` (the budget to suggest)."""
    why, longer = [], []
    for _, row in frame.iterrows():
        history = histories.get(f"{row['group']}/{row['key']}", pd.DataFrame())
        fired = unfinished_checks(row, history, metric)
        why.append(", ".join(_short(c) for c in fired))
        ran = number_field(row.get("epochs"))
        ran = ran if np.isfinite(ran) and ran > 0 else float(len(history))
        longer.append(int(max(ran, 1) * LONGER_FACTOR) if fired else 0)
    return frame.assign(premature=why, longer_epochs=longer)


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


def per_seed(rows: pd.DataFrame, metric: str) -> pd.Series:
    return rows.groupby("seed")["test_" + metric].mean()


def arm_interval(rows: pd.DataFrame, metric: str) -> Interval:
    """Mean of the test metric over seeds with its 95 % t-interval."""
    return t_interval(per_seed(rows, metric))


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


def cell_status(rows: pd.DataFrame, metric: str, chance: float) -> str:
    """``premature (k of n)``, ``learned`` or ``near chance`` for the variants of one cell."""
    bad = int((rows["premature"] != "").sum())
    if bad:
        return f"premature ({bad} of {len(rows)})"
    return "learned" if learned(arm_interval(rows, metric), chance) else "near chance"


def summary_row(rows: pd.DataFrame, metric: str, chance: float) -> dict:
    """Mean, 95 % CI over seeds, companion means, training time and status of a set of variants."""
    interval = arm_interval(rows, metric)
    row = {"seeds": int(rows["seed"].nunique()), "mean": interval.estimate, "ci_low": interval.low,
           "ci_high": interval.high, "train_seconds": float(rows["train_seconds"].mean()),
           "status": cell_status(rows, metric, chance)}
    row.update({m: float(rows["test_" + m].mean()) for m in companions(rows, metric)})
    return row


def difference(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, Interval]:
    """Per-seed differences and their interval: paired by seed, Welch when no seed is shared."""
    common = a.index.intersection(b.index)
    if len(common):
        diff = a.loc[common].to_numpy() - b.loc[common].to_numpy()
        return diff, difference_interval(a.loc[common], b.loc[common], paired=True)
    return np.array([]), difference_interval(a, b, paired=False)
