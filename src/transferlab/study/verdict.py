"""The study's report: hypotheses H1-H4, strategy ranking, verdict, data-size curve, diagnostics.

Reads the variants' results (:func:`transferlab.study.load_results`), marks the variants
that had not finished learning (:func:`transferlab.study_evidence.assess_variants`) and
states only what the evidence carries: an effect is reported when both compared cells
finished learning and at least one of them clearly learned (above
:func:`transferlab.evaluation.stats.learned_level`); the study recommends a strategy only when the best
one learned and is distinguishable from the runner-up. Otherwise it says "premature" or
"uninformative", why, and what budget would help. Writes ``<study.report>/report.md``,
``results.csv`` and the figures, also logged to MLflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.evaluation import stats
from transferlab.config import Params, StudyConfig
from transferlab.io import write_json
from transferlab.tasks import task_for
from transferlab.study.grid import FIGURES, REPORT_FILE, RESULTS_TABLE, metric_name
from transferlab.study.runner import load_results
from transferlab.study.curves import budget, curve_summary, size_curve
from transferlab.study.diagnostics import run_diagnostics
from transferlab.study.evidence import (arm_interval, assess_variants, companions, described, difference, learned,
                                        learned_rule, per_seed, premature_text, summary_row)

def cell_table(frame: pd.DataFrame, metric: str, chance: float) -> pd.DataFrame:
    """One row per (group, arm, augment, train_size) cell."""
    keys = ["group", "arm", "augment", "train_size"]
    rows = []
    for values, part in frame.groupby(keys, sort=False):
        row = {**dict(zip(keys, values)), "pretrained": bool(part["pretrained"].iloc[0])}
        row.update(summary_row(part, metric, chance))
        row["sd"] = float(per_seed(part, metric).std(ddof=1)) if row["seeds"] > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def compare(key: str, claim: str, what: str, cells: dict, first: tuple, second: tuple, metric: str,
            chance: float, unit: str) -> stats.Finding:
    """``first − second`` as a finding, or withheld: premature, or both cells near chance."""
    rows = {k: cells[k] for k in (first, second)}
    why = premature_text(pd.concat(rows.values()))
    if why:
        return stats.withheld(key, claim, "premature", why)
    intervals = {k: arm_interval(v, metric) for k, v in rows.items()}
    if not any(learned(i, chance) for i in intervals.values()):
        shown = " nor ".join(described(f"{k[0]} (augment {k[1]:g})", i) for k, i in intervals.items())
        return stats.withheld(key, claim, "uninformative",
                              f"neither {shown} is clearly above chance ({learned_rule(chance, unit)})")
    _, interval = difference(per_seed(rows[first], metric), per_seed(rows[second], metric))
    return stats.finding(key, claim, what, interval, unit)


def _h1(cells: dict, metric: str, chance: float, unit: str) -> stats.Finding:
    claim = "the backbone architecture is applicable: accuracy well above chance"
    best = max(cells, key=lambda k: per_seed(cells[k], metric).mean())
    interval = stats.t_interval(per_seed(cells[best], metric) - chance)
    what = f"{unit} of {best[0]} (augment {best[1]:g}) − chance {chance:.3g}"
    margin = stats.learned_level(chance) - chance  # H1 is itself the "learned" gate
    if (np.isfinite(interval.low) and interval.low >= margin) or interval.high < 0:
        return stats.finding("H1", claim, what, interval, "")
    why = premature_text(cells[best])
    if why:
        return stats.withheld("H1", claim, "premature", why)
    return stats.Finding("H1", claim, interval, "uninformative",
                         f"H1 ({claim}): {what} = {interval.format()}: uninformative — not clearly above chance "
                         f"({learned_rule(chance, unit)}).")


def hypotheses(frame: pd.DataFrame, study: StudyConfig, metric: str, chance: float, unit: str) -> list:
    """H1-H4 as :class:`transferlab.evaluation.stats.Finding` sentences (``frame`` marked by assess_variants)."""
    fact = frame[frame["group"] == "factorial"]
    strengths = sorted(fact["augment"].unique())
    none, augmented = 0.0, [s for s in strengths if s > 0]
    transfer = study.transfer_arm
    cells = {(arm, a): part for (arm, a), part in fact.groupby(["arm", "augment"], sort=False)}
    findings = [_h1(cells, metric, chance, unit) if cells else
                stats.not_run("H1", "the backbone is applicable", "no factorial variant")]

    if ("scratch", none) in cells and (transfer, none) in cells:
        findings.append(compare("H2", "transfer learning (ImageNet weights) improves accuracy over scratch",
                                f"{transfer} − scratch without augmentation", cells, (transfer, none),
                                ("scratch", none), metric, chance, unit))
        findings += [compare(f"H2 @ augment {s:g}", "transfer improves accuracy, with augmentation",
                             f"{transfer} − scratch", cells, (transfer, s), ("scratch", s), metric, chance, unit)
                     for s in augmented if ("scratch", s) in cells and (transfer, s) in cells]
    else:
        findings.append(stats.not_run("H2", "transfer learning improves accuracy",
                                      f"the factorial needs the arms scratch and {transfer} at augment 0"))

    if augmented:
        for arm in sorted({k[0] for k in cells}, key=lambda x: x != transfer):
            findings += [compare("H3" if arm == transfer and s == augmented[-1] else f"H3 ({arm})",
                                 f"augmentation (strength {s:g}) improves accuracy of {arm}", f"augment {s:g} − none",
                                 cells, (arm, s), (arm, none), metric, chance, unit)
                         for s in augmented if (arm, s) in cells and (arm, none) in cells]
    else:
        findings.append(stats.not_run("H3", "augmentation improves accuracy", "study.augment_strengths has no level > 0"))

    findings += source_findings(frame, metric, chance, unit)
    best_aug = [(transfer, s) for s in augmented if (transfer, s) in cells]
    if best_aug and len(cells) > 1:
        mean = {k: per_seed(v, metric).mean() for k, v in cells.items()}
        candidate = max(best_aug, key=mean.get)
        rival = max((k for k in cells if k != candidate), key=mean.get)
        findings.append(compare(
            "H4", "transfer + augmentation is the best combination",
            f"{candidate[0]} + augment {candidate[1]:g} − the best other cell ({rival[0]}, augment {rival[1]:g})",
            cells, candidate, rival, metric, chance, unit))
    else:
        findings.append(stats.not_run("H4", "transfer + augmentation is the best combination",
                                      "the factorial needs the transfer arm with augmentation and another cell"))
    return findings


def source_findings(frame: pd.DataFrame, metric: str, chance: float, unit: str) -> list:
    """H2 for each source of initial weights: its best strategy against random initial weights."""
    rows = frame[frame["group"] == "sources"]
    if rows.empty or "source" not in rows:
        return []
    cells = {(arm, 0.0): part for arm, part in rows.groupby("arm", sort=False)}
    mean = {key: per_seed(part, metric).mean() for key, part in cells.items()}
    baseline = [key for key in cells if key[0].startswith("none/")]
    if not baseline:
        return [stats.not_run("H2 (sources)", "the source of the initial weights matters",
                              "study.sources has no none (random initial weights) to compare with")]
    base = max(baseline, key=mean.get)
    found = []
    for source in [s for s in rows["source"].unique() if s != "none"]:
        best = max((key for key in cells if key[0].startswith(f"{source}/")), key=mean.get)
        found.append(compare(f"H2 ({source})", f"initial weights from {source} improve accuracy over random ones",
                             f"{best[0]} − {base[0]}", cells, best, base, metric, chance, unit))
    return found


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
    rows = [{"strategy": arm, **summary_row(part, metric, chance), "pretrained": arm != "scratch"}
            for arm, part in ranked_rows(frame).groupby("arm")]
    return pd.DataFrame(rows).sort_values("mean", ascending=False).reset_index(drop=True) if rows else pd.DataFrame()


@dataclass(frozen=True)
class Recommendation:
    text: str
    status: str  # "recommended" | "premature" | "uninformative" | "nothing to rank"
    choice: str | None = None


def _separate(diff: np.ndarray, interval: stats.Interval) -> str:
    needed = stats.seeds_needed(diff)
    if needed is None:
        return (f" No number of seeds up to {stats.MAX_SEEDS} would separate them at the observed difference and "
                "seed spread: a difference this small may not matter.")
    return f" At the observed difference and seed spread about {needed} seeds would separate them ({interval.n} run)."


def recommendation(frame: pd.DataFrame, ranking: pd.DataFrame, metric: str, unit: str, chance: float,
                   sizes: pd.DataFrame | None = None) -> Recommendation:
    """The best strategy (among those not distinguishable from it, the cheapest one), or why none."""
    if ranking.empty:
        return Recommendation("No strategy was run without augmentation: nothing to recommend.", "nothing to rank")
    same = ranked_rows(frame)
    why = premature_text(same)
    if why:
        return Recommendation(f"No recommendation: premature — {why}.", "premature")
    arms = list(ranking["strategy"])
    rows = {arm: same[same["arm"] == arm] for arm in arms}
    intervals = {arm: arm_interval(rows[arm], metric) for arm in arms}
    best = arms[0]
    if not learned(intervals[best], chance):
        near = [described(arm, intervals[arm]) for arm in arms if not learned(intervals[arm], chance)]
        who = ("every strategy is near chance" if len(near) == len(arms)
               else f"the best strategy, {best}, is not clearly above chance")
        return Recommendation(f"No recommendation: the study is uninformative — {who} ({'; '.join(near)}; "
                              f"{learned_rule(chance, unit)}). {budget(sizes, chance, unit)}", "uninformative")
    seconds = ranking.set_index("strategy")["train_seconds"]
    diffs = {arm: difference(per_seed(rows[best], metric), per_seed(rows[arm], metric)) for arm in arms[1:]}
    if len(arms) > 1 and diffs[arms[1]][1].low <= 0:
        runner = arms[1]
        diff, interval = diffs[runner]
        text = (f"No recommendation: the study is uninformative — the best strategy, {best}, and the runner-up, "
                f"{runner}, are not distinguishable ({best} − {runner} = {interval.format(unit=unit)}).")
        text += _separate(diff, interval)
        if learned(intervals[runner], chance):
            cheap, dear = sorted((best, runner), key=lambda arm: seconds[arm])
            text += (f" Both learned; if cost decides, {cheap} trains in {seconds[cheap]:.0f}s instead of "
                     f"{seconds[dear]:.0f}s.")
        return Recommendation(text, "uninformative")
    ties = [best] + [arm for arm in arms[1:] if diffs[arm][1].low <= 0 and learned(intervals[arm], chance)]
    choice = min(ties, key=lambda arm: seconds[arm])
    text = f"**Recommended: {choice}.** "
    if choice == best:
        text += f"It has the highest mean {unit} ({ranking.iloc[0]['mean']:.3f})"
        text += (" and is clearly ahead of every other strategy." if len(ties) == 1
                 else f"; {', '.join(t for t in ties if t != best)} are not distinguishable from it, but not cheaper.")
    else:
        text += (f"{best} has the highest mean {unit} ({ranking.iloc[0]['mean']:.3f}), but {choice} is not "
                 f"distinguishable from it and trains in {seconds[choice]:.0f}s instead of {seconds[best]:.0f}s.")
    lines = [f"{best} − {arm} = {interval.format(unit=unit)}" for arm, (_, interval) in diffs.items()]
    if lines:
        text += " Evidence: " + "; ".join(lines) + "."
    return Recommendation(text, "recommended", choice)


def chance_level(task: str, metric: str, classes: int, slots: int) -> float:
    if metric == "plate_accuracy":
        return stats.plate_chance(classes, slots)
    return 1.0 / classes


def _markdown_table(frame: pd.DataFrame, columns: dict[str, str], digits: int = 3) -> str:
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for _, row in frame.iterrows():
        cells = []
        for column in columns:
            value = row.get(column, "")
            if isinstance(value, (float, np.floating)):
                cells.append("–" if not np.isfinite(value) else f"{value:.{digits}f}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _metric_columns(frame: pd.DataFrame, metric: str, unit: str) -> dict[str, str]:
    return {"seeds": "seeds", "mean": f"mean {unit}", "ci_low": "95 % CI low", "ci_high": "95 % CI high",
            **{m: m.replace("_", " ") for m in companions(frame, metric)}, "status": "status"}


def report(params: Params, cfg: StudyConfig | None = None, log_to_mlflow: bool = True) -> dict:
    """Answer H1-H4, rank the strategies, give the verdict, run the diagnostics; write the report."""
    from transferlab.evaluation import plots
    from transferlab.io import atomic_output_dir
    from transferlab.data.prepared import read_meta

    study = cfg or params.study
    meta = read_meta(params.split.output)
    task, classes = meta["task"], list(meta["classes"])
    metric = metric_name(task, study)
    unit = metric.replace("_", " ")
    frame, histories = load_results(study, params, meta.get("fingerprints", {}).get("train"))
    frame = assess_variants(frame, histories, metric)
    slots = task_for(task).slots(params)
    chance = chance_level(task, metric, len(classes), slots)
    cells = cell_table(frame, metric, chance)
    findings = hypotheses(frame, study, metric, chance, unit)
    ranking = strategy_ranking(frame, study, metric, chance)
    curves, curve_lines = curve_summary(histories, frame, metric)
    sizes, size_text = size_curve(frame, study, metric, chance)
    verdict = recommendation(frame, ranking, metric, unit, chance, sizes)
    found = run_diagnostics(params, study, frame, histories, curves, metric, chance, len(classes))
    fired = [x for x in found if x.fired]
    columns = _metric_columns(frame, metric, unit)

    lines = [f"# Study `{study.name}`: does transfer learning help here, and with which strategy?", "",
             f"Task **{task}**, backbone **{study.backbone}**, {study.image_height}×{study.image_width} images, "
             f"{study.train_size or 'all'} training images per variant (seeded subsets), {len(study.seeds)} seeds, "
             f"compared on test **{unit}** ({int(frame['test_' + metric].count())} results, chance level {chance:.3g}). "
             f"{len(frame)} variants, {frame['train_seconds'].sum() / 60:.1f} min of training. Intervals are 95 % "
             "t-intervals over seeds, paired by seed (same training subset and augmentation seed).", "",
             "## Verdict", "", verdict.text, "",
             "Verdicts compare only cells that had finished learning (a variant still improving at its last epoch, "
             "or predicting one class for every validation image, is premature) and of which at least one "
             f"{learned_rule(chance, unit)}.", "",
             "## Hypotheses", ""]
    lines += [f"- {f.sentence}" for f in findings]
    shown = len(lines)  # printed: everything down to the hypotheses
    lines += ["", "## Factorial cells", "", _markdown_table(
        cells[cells["group"] == "factorial"], {"arm": "arm", "augment": "augment", **columns, "train_seconds": "train s"}),
        "", f"![factorial]({FIGURES['factorial']})", "", "## Learning curves (does pretraining only converge faster?)", ""]
    lines += [f"- {line}" for line in curve_lines] + ["", f"![learning curves]({FIGURES['curves']})", "",
                                                     "## Data-size curve", "", size_text, ""]
    if not sizes.empty:
        lines += [_markdown_table(sizes, {"arm": "arm", "train_size": "training images", **columns}), "",
                  f"![data size]({FIGURES['sizes']})", ""]
    lines += ["## Sources of the initial weights × strategies (source/strategy)" if (frame["group"] == "sources").any()
              else "## Strategies (no augmentation)", ""]
    if not ranking.empty:
        lines += [_markdown_table(ranking, {"strategy": "strategy", **columns, "train_seconds": "train s"}), ""]
    lines += ["See the verdict above.", "", f"![strategies]({FIGURES['strategies']})", "", "## Diagnostics", ""]
    lines += [f"- **{x.name}**: {x.message}" for x in fired] or ["- None fired."]
    silent = [x for x in found if not x.fired]
    if silent:
        lines += ["", "Checked and silent: " + "; ".join(f"{x.name} ({x.message})" for x in silent) + "."]
    lines += ["", f"Every variant is an MLflow run in experiment `{study.experiment}` with tag `study = {study.name}`; "
              f"the table of all runs is `{RESULTS_TABLE}`.", ""]

    output = Path(study.report)
    with atomic_output_dir(output) as out:
        frame.sort_values(["group", "arm", "augment", "train_size", "seed"]).to_csv(out / RESULTS_TABLE, index=False)
        plots.save_study_factorial(frame, metric, out / FIGURES["factorial"], chance)
        plots.save_study_curves(curves, metric, out / FIGURES["curves"])
        plots.save_study_sizes(sizes, metric, out / FIGURES["sizes"])
        plots.save_study_strategies(ranking, frame, metric, out / FIGURES["strategies"])
        (out / REPORT_FILE).write_text("\n".join(lines), encoding="utf-8")
    summary = {"findings": {f.key: {"verdict": f.verdict, "sentence": f.sentence,
                                    **({"estimate": f.interval.estimate, "low": f.interval.low, "high": f.interval.high}
                                       if f.interval else {})} for f in findings},
               "verdict": verdict.status, "recommended": verdict.choice, "recommendation": verdict.text,
               "diagnostics_fired": [x.name for x in fired], "variants": len(frame)}
    write_json(Path(study.output) / "report.json", summary)
    print("\n".join(lines[:shown]), flush=True)
    print(f"study: wrote {output}/{REPORT_FILE}", flush=True)
    if log_to_mlflow:
        _log_report(study, output, summary)
    return summary


def _log_report(study: StudyConfig, output: Path, summary: dict) -> None:
    import mlflow

    from transferlab import tracking

    tags = {**tracking.run_tags(), "study": study.name, "study_group": "report", "stage": "study_report",
            "study_verdict": summary["verdict"]}
    with tracking.tracked_run(study.experiment, run_name=f"{study.name}-report", params={"study": study.model_dump()},
                              tags=tags):
        mlflow.log_artifacts(str(output), "study_report")
        metrics = {}
        for key, f in summary["findings"].items():
            if "estimate" in f and np.isfinite(f["estimate"]):
                name = re.sub(r"[^A-Za-z0-9_]+", "_", key).strip("_")
                metrics[f"{name}_effect"] = f["estimate"]
        mlflow.log_metrics(metrics)
