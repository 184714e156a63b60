"""The study's report: hypotheses H1-H4, strategy ranking, verdict, data-size curve, diagnostics.

Reads the variants' results (:func:`transferlab.study.load_results`), marks the variants
that had not finished learning (:func:`transferlab.study_evidence.assess_variants`) and
states only what the evidence carries: an effect is reported when both compared cells
finished learning and at least one of them clearly learned (above
:func:`transferlab.evaluation.stats.learned_level`), as supported, contradicted, practically
equivalent or undecided (:mod:`transferlab.evaluation.comparison`); the recommendation
(:mod:`transferlab.study.recommend`) names a strategy only when the best one learned and is
practically better than, or equivalent to, the others. Otherwise it says "premature" or
"uninformative", why, and what budget would help. Writes ``<study.report>/report.md``,
``results.csv`` and the figures (the main comparison as ``verdict.png``), also logged to MLflow.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.evaluation import comparison as cmp
from transferlab.evaluation import stats
from transferlab.config import Params, StudyConfig
from transferlab.io import write_json
from transferlab.tasks import task_for
from transferlab.study.grid import FIGURES, IMAGE_SCORES, REPORT_FILE, RESULTS_TABLE, metric_name
from transferlab.study.runner import load_results
from transferlab.study.curves import curve_summary, size_curve
from transferlab.study.diagnostics import run_diagnostics
from transferlab.study.evidence import (Design, arm_interval, assess_variants, companions, compare_rows, described,
                                        learned, learned_rule, per_seed, premature_text, summary_row, test_basis)
from transferlab.study.recommend import (Recommendation, ranked_rows, recommendation,  # noqa: F401 - the report's API
                                         strategy_ranking)


def cell_table(frame: pd.DataFrame, metric: str, chance: float, design: Design = Design()) -> pd.DataFrame:
    """One row per (group, arm, augment, train_size) cell."""
    keys = ["group", "arm", "augment", "train_size"]
    rows = []
    for values, part in frame.groupby(keys, sort=False):
        row = {**dict(zip(keys, values)), "pretrained": bool(part["pretrained"].iloc[0])}
        row.update(summary_row(part, metric, chance, design))
        row["sd"] = float(per_seed(part, metric).std(ddof=1)) if row["seeds"] > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _names(first: tuple, second: tuple) -> tuple[str, str]:
    """How the two compared cells are called in P(… better): by what differs between them."""
    if first[0] == second[0]:
        return f"augment {first[1]:g}", f"augment {second[1]:g}"
    if first[1] == second[1]:
        return first[0], second[0]
    return f"{first[0]} (augment {first[1]:g})", f"{second[0]} (augment {second[1]:g})"


def compare(key: str, claim: str, what: str, cells: dict, first: tuple, second: tuple, metric: str,
            chance: float, unit: str, design: Design = Design()) -> stats.Finding:
    """``first − second`` as a finding, or withheld: premature, or both cells near chance."""
    rows = {k: cells[k] for k in (first, second)}
    why = premature_text(pd.concat(rows.values()))
    if why:
        return stats.withheld(key, claim, "premature", why)
    intervals = {k: arm_interval(v, metric, design) for k, v in rows.items()}
    if not any(learned(i, chance) for i in intervals.values()):
        shown = " nor ".join(described(f"{k[0]} (augment {k[1]:g})", i) for k, i in intervals.items())
        return stats.withheld(key, claim, "uninformative",
                              f"neither {shown} is clearly above chance ({learned_rule(chance, unit)})")
    _, compared = compare_rows(rows[first], rows[second], metric, design)
    return cmp.finding(key, claim, what, compared, unit, _names(first, second))


def _h1(cells: dict, metric: str, chance: float, unit: str, design: Design) -> stats.Finding:
    claim = "the backbone architecture is applicable: accuracy well above chance"
    best = max(cells, key=lambda k: per_seed(cells[k], metric).mean())
    level = arm_interval(cells[best], metric, design)
    interval = replace(level, estimate=level.estimate - chance, low=level.low - chance, high=level.high - chance)
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
    transfer, design = study.transfer_arm, Design.of(study)
    cells = {(arm, a): part for (arm, a), part in fact.groupby(["arm", "augment"], sort=False)}
    findings = [_h1(cells, metric, chance, unit, design) if cells else
                stats.not_run("H1", "the backbone is applicable", "no factorial variant")]

    if ("scratch", none) in cells and (transfer, none) in cells:
        findings.append(compare("H2", "transfer learning (ImageNet weights) improves accuracy over scratch",
                                f"{transfer} − scratch without augmentation", cells, (transfer, none),
                                ("scratch", none), metric, chance, unit, design))
        findings += [compare(f"H2 @ augment {s:g}", "transfer improves accuracy, with augmentation",
                             f"{transfer} − scratch", cells, (transfer, s), ("scratch", s), metric, chance, unit,
                             design)
                     for s in augmented if ("scratch", s) in cells and (transfer, s) in cells]
    else:
        findings.append(stats.not_run("H2", "transfer learning improves accuracy",
                                      f"the factorial needs the arms scratch and {transfer} at augment 0"))

    if augmented:
        for arm in sorted({k[0] for k in cells}, key=lambda x: x != transfer):
            findings += [compare("H3" if arm == transfer and s == augmented[-1] else f"H3 ({arm})",
                                 f"augmentation (strength {s:g}) improves accuracy of {arm}", f"augment {s:g} − none",
                                 cells, (arm, s), (arm, none), metric, chance, unit, design)
                         for s in augmented if (arm, s) in cells and (arm, none) in cells]
    else:
        findings.append(stats.not_run("H3", "augmentation improves accuracy", "study.augment_strengths has no level > 0"))

    findings += source_findings(frame, metric, chance, unit, design)
    best_aug = [(transfer, s) for s in augmented if (transfer, s) in cells]
    if best_aug and len(cells) > 1:
        mean = {k: per_seed(v, metric).mean() for k, v in cells.items()}
        candidate = max(best_aug, key=mean.get)
        rival = max((k for k in cells if k != candidate), key=mean.get)
        findings.append(compare(
            "H4", "transfer + augmentation is the best combination",
            f"{candidate[0]} + augment {candidate[1]:g} − the best other cell ({rival[0]}, augment {rival[1]:g})",
            cells, candidate, rival, metric, chance, unit, design))
    else:
        findings.append(stats.not_run("H4", "transfer + augmentation is the best combination",
                                      "the factorial needs the transfer arm with augmentation and another cell"))
    return findings


def source_findings(frame: pd.DataFrame, metric: str, chance: float, unit: str, design: Design = Design()) -> list:
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
                             f"{best[0]} − {base[0]}", cells, best, base, metric, chance, unit, design))
    return found


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
    design = Design.of(study)
    cells = cell_table(frame, metric, chance, design)
    findings = hypotheses(frame, study, metric, chance, unit)
    ranking = strategy_ranking(frame, study, metric, chance)
    curves, curve_lines = curve_summary(histories, frame, metric)
    sizes, size_text = size_curve(frame, study, metric, chance)
    verdict = recommendation(frame, ranking, metric, unit, chance, sizes, design)
    found = run_diagnostics(params, study, frame, histories, curves, metric, chance, len(classes))
    fired = [x for x in found if x.fired]
    columns = _metric_columns(frame, metric, unit)

    lines = [f"# Study `{study.name}`: does transfer learning help here, and with which strategy?", "",
             f"{_data_sentence(meta, study)} Task **{task}**, backbone **{study.backbone}**, "
             f"{study.image_height}×{study.image_width} images, "
             f"{study.train_size or 'all'} training images per variant (seeded subsets), {len(study.seeds)} seeds, "
             f"compared on test **{unit}** ({int(frame['test_' + metric].count())} results, chance level {chance:.3g}). "
             f"{len(frame)} variants, {frame['train_seconds'].sum() / 60:.1f} min of training. "
             f"{design.described(unit)} Test-set error here: {test_basis(frame, metric, design)}.", "",
             "## Verdict", "", verdict.text, "", f"![verdict]({FIGURES['verdict']})", "",
             "Verdicts compare only cells that had finished learning (a variant still improving at its last epoch, "
             "or predicting one class for every validation image, is premature) and of which at least one "
             f"{learned_rule(chance, unit)}. A premature arm withholds the comparisons it is part of; it blocks the "
             "recommendation only when it could still win: the high end of its interval plus its recent rise, "
             "continued for the longer budget, reaches the leader's mean minus the ROPE.", "",
             "## Hypotheses", ""]
    lines += [f"- {f.sentence}" for f in findings]
    shown = len(lines)  # printed: everything down to the hypotheses
    # Sections (and figures) of the groups the study ran: an empty table or a placeholder figure says nothing.
    factorial, sized = (frame["group"] == "factorial").any(), bool(study.train_sizes) or not sizes.empty
    lines += [""]
    if factorial:
        lines += ["## Factorial cells", "", _markdown_table(
            cells[cells["group"] == "factorial"], {"arm": "arm", "augment": "augment", **columns,
                                                  "train_seconds": "train s"}),
            "", f"![factorial]({FIGURES['factorial']})", "", "## Learning curves (does pretraining only converge faster?)",
            ""]
        lines += [f"- {line}" for line in curve_lines] + ["", f"![learning curves]({FIGURES['curves']})", ""]
    if sized:
        lines += ["## Data-size curve", "", size_text, ""]
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
        table = frame.drop(columns=[c for c in frame if c.startswith(IMAGE_SCORES)])  # per-image lists: result.json
        table.sort_values(["group", "arm", "augment", "train_size", "seed"]).to_csv(out / RESULTS_TABLE, index=False)
        _save_verdict_figure(frame, ranking, verdict, design, metric, out / FIGURES["verdict"])
        if factorial:
            plots.save_study_factorial(frame, metric, out / FIGURES["factorial"], chance)
            plots.save_study_curves(curves, metric, out / FIGURES["curves"])
        if not sizes.empty:
            plots.save_study_sizes(sizes, metric, out / FIGURES["sizes"])
        plots.save_study_strategies(ranking, frame, metric, out / FIGURES["strategies"])
        (out / REPORT_FILE).write_text("\n".join(lines), encoding="utf-8")
    summary = {"findings": {f.key: {"verdict": f.verdict, "sentence": f.sentence,
                                    **({"estimate": f.interval.estimate, "low": f.interval.low, "high": f.interval.high}
                                       if f.interval else {}), **(f.probabilities or {})} for f in findings},
               "verdict": verdict.status, "recommended": verdict.choice, "recommendation": verdict.text,
               "withheld": list(verdict.withheld), "rope": design.rope,
               "diagnostics_fired": [x.name for x in fired], "variants": len(frame)}
    write_json(Path(study.output) / "report.json", summary)
    print("\n".join(lines[:shown]), flush=True)
    print(f"study: wrote {output}/{REPORT_FILE}", flush=True)
    if log_to_mlflow:
        _log_report(study, output, summary)
    return summary


def _data_sentence(meta: dict, study: StudyConfig) -> str:
    """Which data the study ran on (its prepared split's meta.json)."""
    test = f", test set `{meta['test_source']}`" if meta.get("test_source") else ""
    whose = "study.source" if study.source else "the pipeline's split"
    return f"Data: `{meta.get('source')}`{test} ({whose})."


def _save_verdict_figure(frame: pd.DataFrame, ranking: pd.DataFrame, verdict: Recommendation, design: Design,
                         metric: str, path: Path) -> None:
    """The main comparison (:func:`transferlab.evaluation.plots.save_study_verdict`): the ROPE band
    sits around the leader, the best arm that finished learning."""
    from transferlab.evaluation import plots

    rows = ranked_rows(frame)
    per = {arm: per_seed(rows[rows["arm"] == arm], metric).to_numpy() for arm in ranking.get("strategy", [])}
    finished = ranking[~ranking["status"].str.startswith("premature")] if not ranking.empty else ranking
    reference = float(finished["mean"].iloc[0]) if len(finished) else None
    head = verdict.text.split(".**")[0].strip("*") if verdict.choice else verdict.text.split(" — ")[0]
    title = head if verdict.status in head.lower() else f"{head} ({verdict.status})"
    plots.save_study_verdict(ranking, per, design.rope, reference, title, metric, path)


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
