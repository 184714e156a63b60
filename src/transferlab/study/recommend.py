"""The study's recommendation: which strategy to use, or why the evidence names none.

The ranked arms (:func:`ranked_rows`) are compared with the leader, the finished arm with the
highest mean, by :func:`transferlab.study.evidence.compare_rows` (overlapping folds, the fixed
test set, ``study.rope``). The leader is recommended when it is practically better than every
other finished arm; arms practically equivalent to it tie, and the cheapest of the tie is named;
an undecided comparison names none. A premature arm withholds the comparisons it is part of and
blocks the recommendation only when it could still win
(:func:`transferlab.study.evidence.could_still_win`); otherwise the text says what was withheld.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from transferlab.config import StudyConfig
from transferlab.evaluation import stats
from transferlab.evaluation.comparison import Comparison
from transferlab.study.curves import budget
from transferlab.study.evidence import (Design, arm_interval, compare_rows, could_still_win, described, learned,
                                        learned_rule, premature_text, summary_row)


def ranked_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The variants the recommendation ranks: the sources group (source/strategy) when the study
    has one, since where the weights come from is then its main question; else the variants
    without augmentation at the study's training size (factorial and strategies)."""
    if (frame["group"] == "sources").any():
        return frame[frame["group"] == "sources"]
    fact = frame["group"] == "factorial"
    same = frame[(frame["augment"] == 0) & frame["group"].isin(["factorial", "strategies"])]
    return same[same["train_size"] == frame[fact]["train_size"].max()] if fact.any() else same


def strategy_ranking(frame: pd.DataFrame, study: StudyConfig, metric: str, chance: float) -> pd.DataFrame:
    """Every strategy without augmentation at the study's training size, best mean first."""
    design = Design.of(study)
    rows = [{"strategy": arm, **summary_row(part, metric, chance, design), "pretrained": arm != "scratch"}
            for arm, part in ranked_rows(frame).groupby("arm")]
    return pd.DataFrame(rows).sort_values("mean", ascending=False).reset_index(drop=True) if rows else pd.DataFrame()


@dataclass(frozen=True)
class Recommendation:
    text: str
    status: str  # "recommended" | "practically equivalent" | "premature" | "uninformative" | "nothing to rank"
    choice: str | None = None
    withheld: tuple[str, ...] = ()  # premature arms whose comparisons were withheld without blocking


def _separate(diff: np.ndarray, compared: Comparison, design: Design) -> str:
    """How many seeds would separate two arms by more than the ROPE, or why none would."""
    needed = stats.seeds_needed(diff, overlap=design.overlap, test_variance=compared.test.variance, margin=design.rope)
    if needed is None:
        return (f" No number of seeds up to {stats.MAX_SEEDS} would separate them by more than the ROPE at the "
                "observed difference, seed spread and test-set error (overlapping folds and a fixed test set do not shrink with "
                "seeds): more test images, or a wider study.rope, would decide whether they are equivalent.")
    return (f" At the observed difference and spread about {needed} seeds would separate them "
            f"({compared.interval.n} run).")


def _cost(a: str, b: str, seconds: pd.Series) -> str:
    cheap, dear = sorted((a, b), key=lambda arm: seconds[arm])
    return f" Both learned; if cost decides, {cheap} trains in {seconds[cheap]:.0f}s instead of {seconds[dear]:.0f}s."


def _among_finished(finished: list[str], rows: dict, intervals: dict, ranking: pd.DataFrame, metric: str, unit: str,
                    chance: float, sizes: pd.DataFrame | None, design: Design) -> Recommendation:
    """The recommendation among arms that finished learning (best mean first)."""
    best = finished[0]
    if not learned(intervals[best], chance):
        near = [described(arm, intervals[arm]) for arm in finished if not learned(intervals[arm], chance)]
        who = ("every strategy is near chance" if len(near) == len(finished)
               else f"the best strategy, {best}, is not clearly above chance")
        return Recommendation(f"No recommendation: the study is uninformative — {who} ({'; '.join(near)}; "
                              f"{learned_rule(chance, unit)}). {budget(sizes, chance, unit)}", "uninformative")
    seconds = ranking.set_index("strategy")["train_seconds"]
    compared = {arm: compare_rows(rows[best], rows[arm], metric, design) for arm in finished[1:]}
    open_ = [arm for arm in finished[1:] if compared[arm][1].decision not in ("better", "equivalent")]
    if open_:
        runner, (diff, c) = open_[0], compared[open_[0]]
        text = (f"No recommendation: the study is uninformative — the best strategy, {best}, and "
                f"{'the runner-up, ' if runner == finished[1] else ''}{runner}, are not distinguishable nor shown "
                f"practically equivalent ({best} − {runner} = {c.interval.format(unit=unit)}; "
                f"{c.probabilities(best, runner)}).")
        text += _separate(diff, c, design)
        text += _cost(best, runner, seconds) if learned(intervals[runner], chance) else ""
        return Recommendation(text, "uninformative")
    ties = [best] + [arm for arm in finished[1:] if compared[arm][1].decision == "equivalent"
                     and learned(intervals[arm], chance)]
    choice = min(ties, key=lambda arm: seconds[arm])
    text = f"**Recommended: {choice}.** "
    mean = ranking.set_index("strategy")["mean"][best]
    if len(ties) == 1:
        text += f"It has the highest mean {unit} ({mean:.3f}) and is practically better than every other strategy."
    else:
        others, verb = ", ".join(t for t in ties if t != best), "is" if len(ties) == 2 else "are"
        text += (f"{best} has the highest mean {unit} ({mean:.3f}); {others} {verb} practically equivalent to it "
                 f"(within ±{design.rope:g})")
        text += (f", and {choice} trains cheapest ({seconds[choice]:.0f}s instead of {seconds[best]:.0f}s)."
                 if choice != best else ", but not cheaper.")
    lines = [f"{best} − {arm} = {c.interval.format(unit=unit)}, {c.decision} ({c.probabilities(best, arm)})"
             for arm, (_, c) in compared.items()]
    if lines:
        text += " Evidence: " + "; ".join(lines) + "."
    return Recommendation(text, "recommended" if len(ties) == 1 else "practically equivalent", choice)


def recommendation(frame: pd.DataFrame, ranking: pd.DataFrame, metric: str, unit: str, chance: float,
                   sizes: pd.DataFrame | None = None, design: Design = Design()) -> Recommendation:
    """The best strategy (among those practically equivalent to it, the cheapest one), or why none."""
    if ranking.empty:
        return Recommendation("No strategy was run without augmentation: nothing to recommend.", "nothing to rank")
    same = ranked_rows(frame)
    arms = list(ranking["strategy"])
    rows = {arm: same[same["arm"] == arm] for arm in arms}
    intervals = {arm: arm_interval(rows[arm], metric, design) for arm in arms}
    finished = [arm for arm in arms if (rows[arm]["premature"] == "").all()]
    if not finished:
        return Recommendation(f"No recommendation: premature — {premature_text(same)}.", "premature")
    leader = intervals[finished[0]].estimate
    judged = {arm: could_still_win(rows[arm], intervals[arm], leader, design.rope)
              for arm in arms if arm not in finished}
    blocking = [arm for arm, (could, _) in judged.items() if could]
    if blocking:
        why = premature_text(pd.concat([rows[arm] for arm in blocking]))
        reach = "; ".join(f"{arm}: {judged[arm][1]}" for arm in blocking)
        return Recommendation(f"No recommendation: premature — {why}. It could still win ({reach}).", "premature")
    found = _among_finished(finished, rows, intervals, ranking, metric, unit, chance, sizes, design)
    if not judged:
        return found
    withheld = (f" Withheld: the comparisons with {', '.join(judged)} — "
                f"{premature_text(pd.concat([rows[arm] for arm in judged]))}; it cannot plausibly win ("
                + "; ".join(f"{arm}: {why}" for arm, (_, why) in judged.items()) + ").")
    return Recommendation(found.text + withheld, found.status, found.choice, tuple(judged))
