"""The study's curves: learning curves per factorial cell, and the data-size curve with the
budget it predicts for an uninformative study."""

from __future__ import annotations

import numpy as np
import pandas as pd

from transferlab.evaluation import stats
from transferlab.config import StudyConfig
from transferlab.study.evidence import (Design, arm_interval, compare_rows, learned, premature_text, size_budget,
                                        summary_row)


def budget(sizes: pd.DataFrame | None, chance: float, unit: str) -> str:
    """What training-set size would make the study informative, from its data-size curve."""
    if sizes is None or sizes.empty:
        return ("No data-size curve was run (study.train_sizes), so this study cannot estimate the budget that "
                "would help.")
    target = stats.learned_level(chance)
    return "What would help: " + "; ".join(size_budget(sizes, arm, target, unit) for arm in sizes["arm"].unique()) + "."


def curve_summary(histories: dict[str, pd.DataFrame], frame: pd.DataFrame, metric: str) -> tuple[dict, list[str]]:
    """Mean validation/training curves per factorial cell, and when each reaches 90 % of its final value."""
    val_col = "val_" + metric
    curves, lines = {}, []
    fact = frame[frame["group"] == "factorial"]
    for (arm, aug), part in fact.groupby(["arm", "augment"], sort=False):
        runs = [histories.get(f"factorial/{key}") for key in part["key"]]
        runs = [h for h in runs if h is not None and not h.empty and val_col in h]
        if not runs:
            continue
        n = min(len(h) for h in runs)
        val = np.mean([h[val_col].to_numpy()[:n] for h in runs], axis=0)
        train = np.mean([h[metric].to_numpy()[:n] for h in runs], axis=0)
        curves[(arm, aug)] = {"epoch": np.arange(1, n + 1), "val": val, "train": train,
                              "val_runs": [h[val_col].to_numpy()[:n] for h in runs]}
        final = val[-1]
        reach = int(np.argmax(val >= 0.9 * final)) + 1 if final > 0 else n
        lines.append(f"{arm}, augment {aug:g}: validation {metric.replace('_', ' ')} "
                     f"{val[0]:.3f} after epoch 1, {final:.3f} after epoch {n}; 90 % of the final value by epoch {reach}")
    return curves, lines


def _size_states(part: pd.DataFrame, arms: tuple[str, str], metric: str, chance: float,
                 design: Design) -> list[tuple]:
    """Per size both arms ran: (size, text, sign): sign 0 unless one arm is practically better."""
    both = set(part[part["arm"] == arms[0]]["train_size"]) & set(part[part["arm"] == arms[1]]["train_size"])
    states = []
    for n in sorted(both):
        cell = {arm: part[(part["arm"] == arm) & (part["train_size"] == n)] for arm in arms}
        why = premature_text(pd.concat(cell.values()))
        if why:
            states.append((n, f"n={n}: premature, {why.split('; train longer')[0]}", 0))
            continue
        if not any(learned(arm_interval(rows, metric, design), chance) for rows in cell.values()):
            states.append((n, f"n={n}: both arms near chance", 0))
            continue
        _, compared = compare_rows(cell[arms[1]], cell[arms[0]], metric, design)
        sign = {"better": 1, "worse": -1}.get(compared.decision, 0)
        states.append((n, f"n={n}: {compared.interval.format()}, {compared.decision}", sign))
    return states


def size_curve(frame: pd.DataFrame, study: StudyConfig, metric: str, chance: float) -> tuple[pd.DataFrame, str]:
    """Metric vs training-set size for scratch and the transfer arm (without augmentation), and the crossing."""
    arms, design = ("scratch", study.transfer_arm), Design.of(study)
    part = frame[(frame["augment"] == 0) & frame["group"].isin(["sizes", "factorial"]) & frame["arm"].isin(arms)]
    table = pd.DataFrame([{"arm": arm, "train_size": int(n), **summary_row(cell, metric, chance, design)}
                          for (arm, n), cell in part.groupby(["arm", "train_size"])])
    if table.empty or table["arm"].nunique() < 2:
        return table, "The data-size curve needs both arms (scratch and the transfer arm) at several sizes."
    states = _size_states(part, arms, metric, chance, design)
    shown = "; ".join(text for _, text, _ in states)
    decided = [(n, sign) for n, _, sign in states if sign]
    if not decided:
        return table, f"No size shows a difference between {arms[1]} and scratch that the evidence carries ({shown})."
    signs = [sign for _, sign in decided]
    where = "every size tried" if len(decided) == len(states) else "every size where they differ"
    if all(s > 0 for s in signs):
        text = f"{arms[1]} is ahead of scratch at {where} ({shown}): the arms do not cross."
    elif all(s < 0 for s in signs):
        text = f"scratch is ahead of {arms[1]} at {where} ({shown}): the arms do not cross."
    else:
        crossings = [f"between n={decided[i][0]} and n={decided[i + 1][0]}" for i in range(len(decided) - 1)
                     if signs[i] != signs[i + 1]]
        text = f"the arms cross {' and '.join(crossings)} ({arms[1]} − scratch: {shown})."
    return table, text[0].upper() + text[1:]
