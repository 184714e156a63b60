"""Stage ``evaluate``: the trained model on the held-out test split, and why it scores what it does.

One batched prediction over the test images gives every metric of :mod:`transferlab.evaluation.metrics`
(per image over the whole split). Around it, the diagnostics that explain a result:

- the train / validation / test gap (from ``metrics/train.json``): over-fitting, or a test
  set unlike the validation set beyond sampling noise;
- a confusion matrix figure (characters over the alphabet for plates, classes otherwise)
  and the most frequent confusions (8 read as B ...);
- a grid of the worst mistakes with predicted vs true text;
- accuracy on the test images augmented in memory at the training strength (and harsher
  ones): does augmentation at this strength leave plates readable?
- inference speed: batched images/s and single-image latency.

Metrics go to ``metrics/evaluate.json`` (DVC) and, prefixed ``test_``, into the training
run's MLflow run (resumed by the id in ``models/run.json``) -- or, when that run was already
evaluated, into a run of their own linked to it (:mod:`transferlab.evaluation.run_record`) --
figures to ``evaluate.output``.
Everything is computed and written before the MLflow run is reopened: a failure here must
never mark the training run FAILED.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.config import EvaluateConfig, Params
from transferlab.evaluation import metrics
from transferlab.evaluation.outputs import (breakdown_frame, confusion_pairs, predictions_frame, save_figures,
                                          write_report)
from transferlab.errors import TransferlabError
from transferlab.inference import export
from transferlab.io import atomic_output_dir, read_json, write_json
from transferlab.data.prepared import load_split, read_meta, with_recipe
from transferlab.tasks import task_for

METRICS_FILE = "metrics/evaluate.json"
BREAKDOWN_FILE = "metrics/evaluate_breakdown.csv"  # per slot (plates) / per class (classification)
CONFUSIONS_FILE = "metrics/evaluate_confusions.csv"  # the most frequent confusions, a table
CONFUSION_PAIRS_FILE = "metrics/evaluate_confusion_pairs.csv"  # DVC's confusion plot
AUGMENTED_FILE = "metrics/evaluate_augmented.csv"
TRAIN_METRICS_FILE = "metrics/train.json"  # train.METRICS_FILE (not imported: train loads Keras eagerly)
TRAIN_HISTORY_FILE = "metrics/train_history.csv"  # train.HISTORY_FILE
PREFIX = "test_"

PREDICTIONS_FILE = "predictions.csv"
REPORT_FILE = "report.md"

# Heuristic thresholds of the written diagnosis (the numbers themselves are always reported).
OVERFIT_GAP = 0.10
READABLE_RETENTION = 0.9
UNREADABLE_RETENTION = 0.5
MIN_CLEAN_ACCURACY = 0.05  # below it, "share of the clean accuracy kept" means nothing


@dataclass
class Evaluation:
    """The result of one model on one set of images."""

    report: metrics.PlateReport | metrics.ClassificationReport
    probs: np.ndarray
    texts: list[str] = field(default_factory=list)  # predicted text / class name per image


def augmented_row(strength: float, scalars: dict[str, float], task: str) -> dict[str, float]:
    """One row of metrics/evaluate_augmented.csv: ``accuracy`` is the main metric of either task,
    followed by the task's other compared metrics."""
    kind = task_for(task)
    row = {"strength": strength, "accuracy": scalars[kind.main_metric]}
    row.update({name: scalars[name] for name in kind.compared_metrics if name != kind.main_metric})
    return row


def strength_key(strength: float) -> str:
    """0.3 -> "aug30", 0.125 -> "aug12p5": metric-key friendly."""
    return "aug" + f"{strength * 100:g}".replace(".", "p")


class Evaluator:
    """Predicts and scores images of one task with one model."""

    def __init__(self, model, params: Params, classes: list[str], cfg: EvaluateConfig):
        self.model, self.params, self.classes, self.cfg = model, params, classes, cfg
        self.task, self.kind = params.task, params.kind
        self.batch_size = params.train.batch_size
        self.pad_char = self.kind.pad_char(params)

    def predict(self, images: np.ndarray) -> np.ndarray:
        if not len(images):
            return self.kind.empty_output(self.kind.slots(self.params), len(self.classes))
        return np.asarray(self.model.predict(np.asarray(images), batch_size=self.batch_size, verbose=0))

    def score(self, labels: np.ndarray, probs: np.ndarray) -> Evaluation:
        report = self.kind.report(labels, probs, self.classes, self.pad_char, self.cfg.top_confusions)
        return Evaluation(report=report, probs=probs, texts=self.kind.texts(report.predicted, self.classes,
                                                                            self.pad_char))

    def true_texts(self, labels: np.ndarray) -> list[str]:
        return self.kind.texts(labels, self.classes, self.pad_char)

    def scalars(self, evaluation: Evaluation, prefix: str = PREFIX) -> dict[str, float]:
        return self.kind.report_scalars(evaluation.report, prefix, self.classes)


# --------------------------------------------------------------------------- timing


def timed_predict(evaluator: Evaluator, images: np.ndarray) -> tuple[np.ndarray, float]:
    """The one batched prediction of the test set, timed after a warm-up batch (graph tracing)."""
    if len(images):
        evaluator.predict(images[: evaluator.batch_size])
    started = time.perf_counter()
    probs = evaluator.predict(images)
    return probs, time.perf_counter() - started


def single_image_latency(model, image: np.ndarray, calls: int, warmup: int = 3) -> np.ndarray:
    """Seconds per ``model(x[None])`` call, after ``warmup`` untimed calls."""
    x = np.asarray(image, np.float32)[None]
    for _ in range(warmup):
        np.asarray(model(x, training=False))
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        np.asarray(model(x, training=False))  # np.asarray waits for the result
        seconds.append(time.perf_counter() - started)
    return np.asarray(seconds)


# --------------------------------------------------------------------------- diagnostics


def generalisation_gaps(train_metrics: dict, test_scalars: dict, task: str) -> dict[str, float]:
    """train - val, val - test and train - test of each accuracy reported by train and evaluate."""
    gaps: dict[str, float] = {}
    for name in task_for(task).compared_metrics:
        train, val, test = (train_metrics.get(f"train_{name}"), train_metrics.get(f"val_{name}"),
                            test_scalars.get(f"{PREFIX}{name}"))
        if train is not None and val is not None:
            gaps[f"{PREFIX}gap_train_val_{name}"] = float(train) - float(val)
        if val is not None and test is not None:
            gaps[f"{PREFIX}gap_val_test_{name}"] = float(val) - float(test)
        if train is not None and test is not None:
            gaps[f"{PREFIX}gap_train_test_{name}"] = float(train) - float(test)
    return gaps


def sampling_error(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n images (binomial)."""
    return float(np.sqrt(max(accuracy * (1 - accuracy), 0.0) / n)) if n else 0.0


def diagnosis(task: str, train_metrics: dict, scalars: dict, n_test: int, n_val: int | None,
              augmented: list[tuple[float, float]], train_strength: float | None) -> list[str]:
    """Plain-language findings; thresholds are heuristics, the numbers are in the metrics.

    ``train_strength`` is the augmentation the model was trained with, None when it was
    trained without (``augment.copies: 0`` or strength 0): ``augment.strength`` then names
    no training condition, and no strength is called the training strength.
    """
    name = task_for(task).main_metric
    test = scalars[f"{PREFIX}{name}"]
    train, val = train_metrics.get(f"train_{name}"), train_metrics.get(f"val_{name}")
    lines = [f"test {name.replace('_', ' ')}: {test:.3f} on {n_test} images (± {sampling_error(test, n_test):.3f} standard error)"]
    if "kept_epoch" in train_metrics:
        lines.append(f"kept epoch {train_metrics['kept_epoch']} of {train_metrics.get('epochs', '?')} "
                     f"(selected on {train_metrics.get('monitor', '?')}): {train_metrics.get('selection', '')}")
    if train is None or val is None:
        lines.append(f"no training metrics ({TRAIN_METRICS_FILE}): gaps not computed")
    else:
        lines.append(f"train {train:.3f} (training set, as trained on) / validation {val:.3f} / test {test:.3f}")
        if train - val > OVERFIT_GAP:
            lines.append(f"over-fitting: training beats validation by {train - val:.3f}; more data, stronger "
                         "augmentation, more dropout or a frozen backbone may help")
        elif train < 0.5:
            lines.append("under-fitting: the model does not even fit its training set; train longer, "
                         "a higher learning rate, weaker augmentation or a stronger backbone may help")
        noise = 2 * np.hypot(sampling_error(val, n_val or n_test), sampling_error(test, n_test))
        if abs(val - test) > noise:
            lines.append(f"validation and test differ by {val - test:+.3f}, more than sampling noise (±{noise:.3f}): "
                         "the validation set (used to pick the best epoch) does not represent the test set well")
    if train_strength is None:
        lines.append("trained without augmentation (augment.copies: 0 or augment.strength: 0): the strengths "
                     "below (augment.strength among them) test robustness, none is a training condition")
    for strength, value in augmented:
        used = train_strength is not None and strength == train_strength
        shown = f"augmented at strength {strength:g}{' (the training strength)' if used else ''}: " \
                f"{name.replace('_', ' ')} {value:.3f}"
        if test < MIN_CLEAN_ACCURACY:
            lines.append(f"{shown}; the clean accuracy is too low to tell what augmentation does")
            continue
        retained = value / test
        if retained >= READABLE_RETENTION:
            verdict = "the augmented images stay readable for the model"
        elif retained >= UNREADABLE_RETENTION:
            verdict = "the augmented images are noticeably harder"
        else:
            verdict = "the augmented images are largely unreadable for the model" + (
                ": it was trained at this strength, which is probably too strong (see the augment preview)"
                if used else "")
        lines.append(f"{shown} ({retained:.0%} of clean): {verdict}")
    return lines


def regime_findings(task: str, train_metrics: dict, history: pd.DataFrame, train_labels: np.ndarray,
                    num_classes: int) -> list[str]:
    """The small-data diagnostics that fired: a monitored metric that never moved, one class for
    every validation image, memorisation, still improving at the last epoch, too few examples."""
    from transferlab.evaluation import diagnostics as d

    kind = task_for(task)
    name = kind.scored_metric
    monitor = train_metrics.get("monitor", kind.monitored_metric)
    found = [d.check_samples_per_class(np.bincount(np.asarray(train_labels).ravel(), minlength=num_classes),
                                       kind.unit)]
    if "val_majority_fraction" in train_metrics:
        found.append(d.check_one_class(train_metrics["val_majority_fraction"]))
    if f"train_{name}" in train_metrics and f"val_{name}" in train_metrics:
        found.append(d.check_memorisation(train_metrics[f"train_{name}"], train_metrics[f"val_{name}"],
                                          1.0 / num_classes))
    if monitor in history:
        found.append(d.check_flat_metric(history[monitor], monitor, kept_epoch=train_metrics.get("kept_epoch")))
        found.append(d.check_still_improving(history[monitor], monitor))
    return [f"diagnostic {x.name}: {x.message}" for x in found if x.fired]


# --------------------------------------------------------------------------- the stage


def run(params: Params, cfg: EvaluateConfig | None = None) -> dict:
    """Evaluate ``train.output``/model.keras on the test split; write metrics, figures, MLflow.

    ``cfg`` (tests, studies) overrides ``params.evaluate``.
    """
    from transferlab import tracking  # MLflow, Keras and imgaug load slowly: only run() needs them
    from transferlab.augment import augment_images
    from transferlab.evaluation.run_record import check_training_run, log_evaluation
    from transferlab.inference.predict import MODEL_FILE, load_keras_model
    from transferlab.train import load_run_info

    cfg = cfg or params.evaluate  # an explicit cfg wins
    meta = read_meta(params.split.output)
    params, _ = with_recipe(params)  # augment.copies as train saw it
    if meta["task"] != params.task:
        raise TransferlabError(f"{params.split.output} holds a {meta['task']} split but task is {params.task}: "
                               "run the split stage again")
    model_path = Path(params.train.output) / MODEL_FILE
    if not model_path.is_file():
        raise TransferlabError(f"{model_path}: not found: run the train stage first (dvc repro train)")
    run_info = load_run_info(params.train.output)
    check_training_run(tracking, run_info, params)  # before any work: the results must have a run to go to
    test = load_split(params.split.output, "test")
    images = np.asarray(test.images)
    print(f"evaluate: {model_path} on {len(images)} test images (run {run_info['run_id']})", flush=True)

    model = load_keras_model(model_path)
    evaluator = Evaluator(model, params, list(meta["classes"]), cfg)
    probs, seconds = timed_predict(evaluator, images)
    evaluation = evaluator.score(test.labels, probs)
    scalars = evaluator.scalars(evaluation)
    name = params.kind.main_metric
    print(f"evaluate: test {name} {scalars[PREFIX + name]:.4f} ({evaluation.report.wrong} wrong of "
          f"{evaluation.report.images})", flush=True)

    scalars[f"{PREFIX}images_per_s"] = len(images) / seconds if seconds > 0 and len(images) else 0.0
    if len(images):
        latency = single_image_latency(model, images[0], cfg.latency_calls)
        scalars[f"{PREFIX}latency_ms_median"] = float(np.median(latency) * 1000)
        scalars[f"{PREFIX}latency_ms_p90"] = float(np.percentile(latency, 90) * 1000)
        print(f"evaluate: {scalars[f'{PREFIX}images_per_s']:.0f} images/s batched (batch {evaluator.batch_size}), "
              f"{scalars[f'{PREFIX}latency_ms_median']:.1f} ms per single image", flush=True)

    trained_at = params.augment.strength if params.augment.augments else None  # None: not augmented (either mode)
    strengths = sorted({s for s in [params.augment.strength, *cfg.augmented_strengths] if s > 0})
    augmented_rows = [augmented_row(0.0, evaluation.report.scalars(), params.task)]
    augmented_views = [(0.0, images, evaluation.texts)]
    augmented_main: list[tuple[float, float]] = []
    for strength in strengths:
        view = augment_images(images, strength, cfg.augment_seed)
        aug = evaluator.score(test.labels, evaluator.predict(view))
        aug_scalars = aug.report.scalars()
        for m in params.kind.compared_metrics:
            scalars[f"{PREFIX}{strength_key(strength)}_{m}"] = aug_scalars[m]
        augmented_rows.append(augmented_row(strength, aug_scalars, params.task))
        augmented_views.append((strength, view, aug.texts))
        augmented_main.append((strength, aug_scalars[name]))
        print(f"evaluate: augmented at strength {strength:g}: {name} {aug_scalars[name]:.4f}", flush=True)

    train_metrics = read_json(TRAIN_METRICS_FILE) if Path(TRAIN_METRICS_FILE).is_file() else {}
    scalars.update(generalisation_gaps(train_metrics, scalars, params.task))
    n_val = _split_size(params.split.output, "val")
    findings = diagnosis(params.task, train_metrics, scalars, len(images), n_val, augmented_main, trained_at)
    history = pd.read_csv(TRAIN_HISTORY_FILE) if Path(TRAIN_HISTORY_FILE).is_file() else pd.DataFrame()
    findings += regime_findings(params.task, train_metrics, history,
                                load_split(params.split.output, "train").labels, len(meta["classes"]))
    for line in findings:
        print(f"evaluate: {line}", flush=True)

    output = Path(cfg.output)
    with atomic_output_dir(output) as out:
        if cfg.export:  # a deployable reader per run (transferlab.inference.export), checked against these predictions
            scalars.update(export.evaluate_export(model, params, list(meta["classes"]), images, probs, out, cfg))
        predictions_frame(test, evaluator, evaluation).to_csv(out / PREDICTIONS_FILE, index=False)
        save_figures(out, evaluator, test, evaluation, augmented_views, cfg)
        write_report(out / REPORT_FILE, findings, scalars, evaluation.report.confusions)
    breakdown_frame(evaluator, evaluation).to_csv(_parent(BREAKDOWN_FILE), index=False)
    pd.DataFrame(evaluation.report.confusions, columns=["actual", "predicted", "count"]).to_csv(
        _parent(CONFUSIONS_FILE), index=False)
    confusion_pairs(evaluator, test.labels, evaluation).to_csv(CONFUSION_PAIRS_FILE, index=False)
    pd.DataFrame(augmented_rows).to_csv(_parent(AUGMENTED_FILE), index=False)
    write_json(METRICS_FILE, scalars)
    print(f"evaluate: wrote {METRICS_FILE} and {output}/", flush=True)

    log_evaluation(tracking, run_info, params, cfg, scalars, output,
                   [BREAKDOWN_FILE, CONFUSIONS_FILE, CONFUSION_PAIRS_FILE, AUGMENTED_FILE, METRICS_FILE], images[:2])
    return scalars


def _split_size(prepared: str, name: str) -> int | None:
    path = Path(prepared) / f"{name}_labels.npy"
    return int(np.load(path, mmap_mode="r").shape[0]) if path.is_file() else None


def _parent(path: str) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path
