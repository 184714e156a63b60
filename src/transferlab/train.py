"""Stage ``train``: one transfer-learning variant, trained reproducibly and recorded in MLflow.

The training itself (strategies, phases, the kept epoch) is the engine's
(:mod:`transferlab.training.engine`), shared with tuning and the study; this stage loads the
augmented training set, records the run and writes the model and metrics.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd

from transferlab.training import backend

from transferlab.training import engine
from transferlab.config import Params
from transferlab.data.arrays import ArrayData, load_prepared
from transferlab.data.prepared import with_recipe
from transferlab.io import atomic_output_dir, read_stage_json, write_json
from transferlab.training.checkpoint import checkpoint_root
from transferlab.training.models import count_trainable
from transferlab.evaluation.plots import save_training_curves
from transferlab.tracking.records import augmentation_label, log_dataset, variant_name
from transferlab.tracking.stage_params import log_full_params, stage_params
from transferlab.inference.predict import LABELS_FILE, MODEL_FILE, Labels
from transferlab.inference.reader_pyfunc import log_pyfunc_model

RUN_FILE = "run.json"
METRICS_FILE = "metrics/train.json"
HISTORY_FILE = "metrics/train_history.csv"
TRAIN_METRICS_SAMPLE = 2000  # training images scored after training


def backup_root(params: Params, fingerprint: str) -> Path:
    """Epoch checkpoints of an interrupted run, keyed by its configuration and data (the
    augmentation too: with ``augment.mode: per_epoch`` the fingerprint's images are the originals)."""
    augment = params.augment.model_dump(include={"strength", "copies", "mode", "seed"})
    return checkpoint_root(params.train.output, params.train.model_dump(), params.data.model_dump(), params.task,
                           fingerprint, params.pretrain.model_dump(), augment)


def load_training_data(params: Params) -> ArrayData:
    """The validation split and the augment stage's training set (originals + augmented copies;
    with ``augment.mode: per_epoch`` the originals, which the engine augments every epoch)."""
    return load_prepared(params, augmented=True)


def final_metrics(model: keras.Model, data: ArrayData, batch_size: int) -> dict[str, float]:
    """Training-set metrics of the kept weights (for the over-fitting gap) on an evenly spaced
    sample (the whole set would cost a large share of an epoch and says nothing more), and
    validation metrics on the whole split."""
    sample = np.linspace(0, len(data.x_train) - 1, min(len(data.x_train), TRAIN_METRICS_SAMPLE)).astype(int)
    found = {f"train_{k}": v for k, v in
             engine.score_model(model, data, data.x_train[sample], data.y_train[sample], batch_size).items()}
    found.update({f"val_{k}": v for k, v in engine.score_model(model, data, data.x_val, data.y_val, batch_size).items()})
    return found


def run(params: Params) -> dict:
    """Train the configured variant; write the model, metrics, history and the MLflow run."""
    from transferlab import tracking  # MLflow loads slowly; only this entry point needs it

    from transferlab.pretrain import initial_model

    params, recipe = with_recipe(params)  # in-domain transfer: the fine-tuning recipe for this data's size
    init_from, pretrain_run = initial_model(params)
    if init_from:  # checked before the MLflow run starts: a run that cannot train leaves no run behind
        engine.check_init_from(init_from)
    params = params.model_copy(update={"train": params.train.model_copy(update={"init_from": init_from})})
    cfg = params.train
    data = load_training_data(params)
    output = Path(cfg.output)
    tracking.configure()
    tags = tracking.run_tags(fingerprint=data.fingerprint)
    tags.update({"stage": "train", "backbone": cfg.backbone, "strategy": cfg.strategy, "pretrained": str(cfg.pretrained),
                 "keras_backend": backend.name()})
    if pretrain_run:  # in-domain transfer: the synthetic pretraining this run starts from
        tags.update({"pretrain_run_id": pretrain_run,
                     "mlflow.note.content": f"Starts from the synthetic pretraining run {pretrain_run} ({init_from})."})
    with tracking.tracked_run(params.mlflow.experiment, run_name=variant_name(params),
                              params=stage_params(params, "train"), tags=tags) as run:
        import mlflow

        log_full_params(params)
        log_training_inputs(params, data)

        def log_metric(logs: dict, step: int) -> None:
            mlflow.log_metrics({k: v for k, v in logs.items()}, step=step)

        per_epoch = f" ({len(data.x_train)} originals augmented afresh every epoch)" if data.epoch_augment else ""
        print(f"train: {cfg.backbone} (pretrained={cfg.pretrained}), strategy {cfg.strategy}, "
              f"{data.train_images_per_epoch} training{per_epoch} / {len(data.x_val)} validation images")
        result = engine.fit(params, data, log_metric, backup_root=backup_root(params, data.fingerprint))
        model, selection = result.model, result.selection
        summary = {**final_metrics(model, data, cfg.batch_size), "epochs": selection.epochs,
                   "kept_epoch": selection.kept_epoch, "monitor": selection.monitor,
                   "monitor_flat": selection.flat, "selection": selection.reason,
                   "train_seconds": round(result.seconds, 1), "trainable_weights": count_trainable(model),
                   "total_weights": int(model.count_params())}
        if recipe:  # what the in-domain recipe chose, and why (transferlab.config.recipe)
            summary["recipe"] = recipe
            mlflow.log_dict(recipe, "recipe.json")
        mlflow.set_tags({"kept_epoch": selection.kept_epoch, "monitor": selection.monitor,
                         "selection": selection.reason})
        # "best_" keeps these apart from the per-epoch curves of the same names.
        mlflow.log_metrics({f"best_{k}" if k.startswith("val_") else k: v for k, v in summary.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
        history = pd.DataFrame(result.history)
        with atomic_output_dir(output) as out:
            model.save(out / MODEL_FILE)
            history.to_csv(out / "history.csv", index=False)
            save_training_curves(history, data.task, out / "curves.png")
            mlflow.log_artifact(str(out / "curves.png"), "plots")
            preview = Path(params.augment.output) / "preview.png"
            if preview.is_file():
                mlflow.log_artifact(str(preview), "plots")
            labels = Labels.from_params(params, data.classes)
            labels.save(out / LABELS_FILE)
            mlflow.log_artifact(str(out / LABELS_FILE))
            # The run's one copy of the Keras model: the reader's (runs:/<id>/reader, a logged
            # model whose id evaluate links its metrics to and registers).
            reader = log_pyfunc_model(out / MODEL_FILE, out / LABELS_FILE, data.x_val[:2])
            write_json(out / RUN_FILE, {"run_id": run.info.run_id, "experiment": params.mlflow.experiment,
                                        "tracking_uri": mlflow.get_tracking_uri(), "model_id": reader.model_id})
        write_history(history, selection.monitor)
        write_json(METRICS_FILE, summary)
    print(f"train: done in {result.seconds:.0f}s; validation {selection.monitor} {summary[selection.monitor]:.4f} "
          f"(kept epoch {selection.kept_epoch} of {selection.epochs})")
    return summary


def log_training_inputs(params: Params, data: ArrayData) -> None:
    """The training and validation sets as the run's MLflow dataset inputs (digests: the split's
    fingerprints; the training digest also names its augmentation, which changes its images)."""
    from transferlab.data.prepared import read_meta

    label = augmentation_label(params)
    digest = data.fingerprint if label == "aug0" else f"{data.fingerprint}-{label}"
    log_dataset(data.x_train, data.y_train, digest, params.split.output, f"train-{label}", "training")
    val_fingerprint = read_meta(params.split.output)["fingerprints"]["val"]
    log_dataset(data.x_val, data.y_val, val_fingerprint, params.split.output, "validation", "validation")


def write_history(history: pd.DataFrame, monitor: str) -> None:
    """``metrics/train_history.csv``: the per-epoch curves, plus the kept-epoch metric as
    ``val_monitored`` -- one column name for both tasks, so that dvc.yaml can plot it."""
    history.assign(val_monitored=history[monitor]).to_csv(_ensure_parent(HISTORY_FILE), index=False)


def _ensure_parent(path: str) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path


def load_run_info(models_dir: str | Path) -> dict:
    return read_stage_json(Path(models_dir) / RUN_FILE, "train")
