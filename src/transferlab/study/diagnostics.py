"""The diagnostics of :mod:`transferlab.evaluation.diagnostics` run on a study's own variants.

The per-variant learning checks (flat monitored metric, one predicted class, memorisation,
still improving) fire per cell when any seed fires, with the count of seeds; a check silent
in every variant is listed once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transferlab.evaluation import diagnostics as d
from transferlab.config import Params, StudyConfig
from transferlab.study.evidence import number_field
from transferlab.tasks import task_for


def variant_learning_checks(result: pd.Series, history: pd.DataFrame, metric: str, chance: float,
                            monitor: str) -> list[d.Diagnostic]:
    """The learning checks one variant's result and history allow (none for a probe).

    Reads ``val_majority_fraction``, ``val_images``, ``monitor`` and ``kept_epoch`` from the
    result; training and validation curves (``<metric>``, ``val_<metric>``) from the history.
    """
    found = []
    fraction = number_field(result.get("val_majority_fraction"))
    if np.isfinite(fraction):
        found.append(d.check_one_class(fraction, result.get("val_images")))
    monitor = result.get("monitor") if isinstance(result.get("monitor"), str) else monitor
    kept = number_field(result.get("kept_epoch"))
    if monitor in history:
        found.append(d.check_flat_metric(history[monitor], monitor.replace("_", " "),
                                         kept_epoch=int(kept) if np.isfinite(kept) else None))
    val = "val_" + metric
    if val in history and len(history):
        if metric in history:
            found.append(d.check_memorisation(float(history[metric].iloc[-1]), float(history[val].iloc[-1]), chance))
        found.append(d.check_still_improving(history[val], val.replace("_", " ")))
    return found


def learning_diagnostics(frame: pd.DataFrame, histories: dict[str, pd.DataFrame], metric: str, chance: float,
                         monitor: str) -> list[d.Diagnostic]:
    """One fired entry per (check, cell) where any seed fired; one silent entry per check otherwise."""
    checked: dict[str, list[tuple[str, int, d.Diagnostic]]] = {}
    compared = frame[frame["group"].isin(["factorial", "strategies"])]
    for (arm, aug), part in compared.groupby(["arm", "augment"], sort=False):
        for _, row in part.iterrows():
            history = histories.get(f"{row['group']}/{row['key']}", pd.DataFrame())
            for check in variant_learning_checks(row, history, metric, chance, monitor):
                checked.setdefault(check.name, []).append((f"{arm}, augment {aug:g}", int(row["seed"]), check))
    found = []
    for name, entries in checked.items():
        fired = [e for e in entries if e[2].fired]
        if not fired:
            found.append(d.Diagnostic(name, False, f"silent in all {len(entries)} variants checked",
                                      {"variants": len(entries)}))
        for cell in dict.fromkeys(e[0] for e in fired):
            mine = [e for e in fired if e[0] == cell]
            seeds = sum(1 for e in entries if e[0] == cell)
            first = mine[0][2]
            found.append(d.Diagnostic(f"{name} ({cell})", True,
                                      f"{first.message} (seed {mine[0][1]}; {len(mine)} of {seeds} seeds)", first.evidence))
    return found


def samples_per_class(frame: pd.DataFrame, task: str, classes: int, slots: int) -> d.Diagnostic:
    """Training images per class (per character for plates) at the study's training size.

    Uses the results' ``train_class_counts`` when the runner wrote them, else estimates
    train_size × slots / classes (balanced classes assumed) and says so.
    """
    fact = frame[frame["group"] == "factorial"]
    size = int((fact if len(fact) else frame)["train_size"].max())
    unit = task_for(task).unit
    counts = [c for c in frame.loc[frame["train_size"] == size].get("train_class_counts", pd.Series(dtype=object))
              if isinstance(c, (list, tuple, np.ndarray)) and len(c)]
    if counts:
        return d.check_samples_per_class(np.min(np.asarray(counts, float), axis=0), unit)
    check = d.check_samples_per_class(np.full(classes, size * slots / classes), unit)
    return d.Diagnostic("samples per class (estimated)", check.fired,
                        f"{check.message} (estimated as {size} images × {slots} slot(s) / {classes} classes, "
                        "balanced classes assumed)", check.evidence)


def run_diagnostics(params: Params, study: StudyConfig, frame: pd.DataFrame, histories: dict[str, pd.DataFrame],
                    curves: dict, metric: str, chance: float, classes: int) -> list[d.Diagnostic]:
    """Every diagnostic on the study's own variants."""

    found = []
    first = frame.iloc[0]
    found.append(d.check_preprocessing(np.array([[first["input_min"], first["input_max"]]]), study.backbone))
    pretrained = frame[frame["pretrained"] & (frame["arm"] != "probe")]
    if len(pretrained):
        worst = pretrained.loc[pretrained["trainable_bn"].idxmax()]
        found.append(d.check_batchnorm(int(worst["trainable_bn"]), int(worst["total_bn"]), int(worst["batch_size"]),
                                       True))
    strengths = sorted(s for s in study.augment_strengths if s > 0)
    reference = frame[(frame["group"] == "factorial") & (frame["arm"] == study.transfer_arm) & (frame["augment"] == 0)]
    if strengths and len(reference) and f"test_aug{strengths[-1]:g}_{metric}" in reference:
        column = f"test_aug{strengths[-1]:g}_{metric}"
        found.append(d.check_augmentation(float(reference["test_" + metric].mean()), float(reference[column].mean()),
                                          strengths[-1]))
    for (arm, aug), curve in curves.items():
        check = d.check_overfitting(curve["train"], curve["val"])
        found.append(d.Diagnostic(f"overfitting ({arm}, augment {aug:g})", check.fired, check.message, check.evidence))
    found += learning_diagnostics(frame, histories, metric, chance, params.kind.monitored_metric)
    slots = params.kind.slots(params)
    found.append(samples_per_class(frame, params.task, classes, slots))
    probes = frame[frame["arm"] == "probe"]
    if len(probes) and "random_test_" + metric in probes:
        per = probes.groupby("seed")[["test_" + metric, "random_test_" + metric]].mean()
        if len(per) >= 2:
            found.append(d.check_domain_gap(per["test_" + metric], per["random_test_" + metric]))
    return found
