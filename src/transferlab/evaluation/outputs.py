"""What the evaluate stage writes besides its metrics: figures, the report, and the files DVC plots.

Split from :mod:`transferlab.evaluate` (which computes the results) so that each stays small.
Every plot file declared in ``dvc.yaml`` is written here, with the columns its template
expects for both tasks: ``metrics/evaluate_breakdown.csv`` (a horizontal bar per slot or
class), ``metrics/evaluate_confusion_pairs.csv`` (one row per true/predicted character or
image, which DVC's ``confusion`` template counts) and ``metrics/evaluate_augmented.csv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from transferlab.config import EvaluateConfig
from transferlab.tasks import task_for

if TYPE_CHECKING:  # evaluate imports this module; the types are only annotations here
    from transferlab.evaluate import Evaluation, Evaluator

CONFUSION_FIGURE = "confusion_matrix.png"
MISTAKES_FIGURE = "worst_mistakes.png"
AUGMENTED_FIGURE = "augmented_examples.png"
PAD_NAME = "pad"  # how a pad slot of a shorter plate is named in figures and plot files


def worst_mistakes(evaluation: Evaluation, count: int, by: str) -> np.ndarray:
    """Indices of the wrong predictions, least (or most) confident first."""
    report = evaluation.report
    wrong = np.flatnonzero(~report.correct)
    order = np.argsort(report.confidence[wrong], kind="stable")
    if by == "highest_confidence":
        order = order[::-1]
    return wrong[order][:count]


def mistake_title(true: str, predicted: str, confidence: float, task: str) -> str:
    return task_for(task).mistake_title(true, predicted, confidence)


def breakdown_frame(evaluator: Evaluator, evaluation: Evaluation) -> pd.DataFrame:
    return pd.DataFrame(evaluator.kind.breakdown(evaluation.report, evaluator.classes))


def predictions_frame(test, evaluator: Evaluator, evaluation: Evaluation) -> pd.DataFrame:
    report = evaluation.report
    frame = pd.DataFrame({
        "actual": evaluator.true_texts(test.labels),
        "predicted": evaluation.texts,
        "confidence": report.confidence,
        "correct": report.correct,
    })
    for column, values in evaluator.kind.prediction_details(evaluation.probs).items():
        frame[column] = values
    if "image_path" in test.frame.columns:
        frame.insert(0, "image_path", test.frame["image_path"].to_numpy())
    return frame


def write_report(path: Path, lines: list[str], scalars: dict[str, float], confusions: list) -> None:
    text = ["# Test evaluation", "", *[f"- {line}" for line in lines], "", "## Most frequent confusions", ""]
    text += [f"- {t} read as {p}: {c}" for t, p, c in confusions] or ["- none"]
    text += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
    text += [f"| {k} | {v:.4g} |" for k, v in sorted(scalars.items())]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")


def save_figures(out: Path, evaluator: Evaluator, test, evaluation: Evaluation, augmented_views: list,
                 cfg: EvaluateConfig) -> None:
    from transferlab.evaluation.plots import save_confusion_matrix, save_image_grid

    task = evaluator.task
    report = evaluation.report
    title = evaluator.kind.confusion_title(report.images)
    save_confusion_matrix(report.confusion_matrix, symbol_names(evaluator), out / CONFUSION_FIGURE, title)

    true_texts = evaluator.true_texts(test.labels)
    picks = worst_mistakes(evaluation, cfg.worst_mistakes, cfg.mistakes_by)
    which = "least confident" if cfg.mistakes_by == "lowest_confidence" else "most confidently wrong"
    save_image_grid([test.images[i] for i in picks],
                    [mistake_title(true_texts[i], evaluation.texts[i], report.confidence[i], task) for i in picks],
                    out / MISTAKES_FIGURE,
                    f"{len(picks)} of {report.wrong} wrong predictions, {which} first", columns=4)

    n = min(cfg.example_images, len(test.images))
    if n and augmented_views:
        images, titles, colors = [], [], []
        for row in range(n):
            for strength, view, texts in augmented_views:
                images.append(view[row])
                titles.append(f"true {true_texts[row]}\nclean: {texts[row]}" if strength == 0
                              else f"\nstrength {strength:g}: {texts[row]}")
                colors.append("green" if texts[row] == true_texts[row] else "red")
        save_image_grid(images, titles, out / AUGMENTED_FIGURE,
                        "Test images and predictions at each augmentation strength (green: right)",
                        columns=len(augmented_views), title_colors=colors)


def symbol_names(evaluator: Evaluator) -> list[str]:
    """The name of each class index: characters (the pad slot as "pad") or class names."""
    return evaluator.kind.symbol_names(evaluator.classes, evaluator.pad_char, PAD_NAME)


def confusion_pairs(evaluator: Evaluator, labels: np.ndarray, evaluation: Evaluation) -> pd.DataFrame:
    """One row per test character (plates: every slot of every plate) or test image: true and predicted.

    DVC's ``confusion`` template counts rows per (actual, predicted) pair, so the file holds
    the raw pairs rather than counts.
    """
    names = np.asarray(symbol_names(evaluator), dtype=object)
    true = np.asarray(labels).ravel().astype(int)
    predicted = np.asarray(evaluation.report.predicted).ravel().astype(int)
    return pd.DataFrame({"actual": names[true], "predicted": names[predicted]})
