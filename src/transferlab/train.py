"""Stage ``train``: one transfer-learning variant, trained reproducibly and recorded in MLflow.

Strategies (``train.strategy``), what practitioners actually do:
- ``scratch``: random initial weights, everything trainable;
- ``frozen``: feature extraction; the backbone is frozen and only the new head learns;
- ``finetune``: the head first with the backbone frozen (a random head trained jointly
  with an unfrozen backbone wrecks the pretrained features), then the top
  ``unfreeze_depth`` blocks at ``finetune_lr_factor`` x the rate;
- ``full``: everything trainable from the start.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from transferlab.backbones import build_backbone
from transferlab.config import Params
from transferlab.errors import TransferlabError
from transferlab.io import atomic_output_dir, read_stage_json, write_json
from transferlab.models import (
    CharAccuracy,
    PlateAccuracy,
    build_model,
    count_trainable,
    monitored_metric,
    set_backbone_trainable,
)
from transferlab.plots import save_training_curves
from transferlab.predict import LABELS_FILE, METADATA_KEY, MODEL_FILE, Labels, log_pyfunc_model
from transferlab.split import load_split, read_meta

RUN_FILE = "run.json"
METRICS_FILE = "metrics/train.json"
HISTORY_FILE = "metrics/train_history.csv"
TRAIN_METRICS_SAMPLE = 2000  # training images scored after training
BACKUP_DIR = ".backup"  # beside train.output: survives an interrupted run, removed at the end


@dataclass
class TrainingData:
    """Training (augmented, from the augment stage) and validation arrays, one-hot labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: str
    classes: list[str]
    fingerprint: str
    slots: int = field(default=1)


def backup_root(params: Params, fingerprint: str) -> Path:
    """Epoch checkpoints of an interrupted run, keyed by its configuration and data.

    A later run with other parameters must never resume from them, so the folder name
    carries a hash of everything that shapes the training.
    """
    key = json.dumps([params.train.model_dump(), params.data.model_dump(), params.task, fingerprint], sort_keys=True)
    output = Path(params.train.output)
    return output.parent / f".{output.name}{BACKUP_DIR}" / hashlib.sha256(key.encode()).hexdigest()[:12]


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


def load_training_data(params: Params) -> TrainingData:
    meta = read_meta(params.split.output)
    augmented = Path(params.augment.output)
    if not (augmented / "train_images.npy").is_file():
        raise TransferlabError(f"{augmented}: augmented training set not found: run `dvc repro augment` first")
    x_train = np.load(augmented / "train_images.npy")
    labels = np.load(augmented / "train_labels.npy")
    val = load_split(params.split.output, "val")
    classes = meta["classes"]
    return TrainingData(
        x_train=x_train, y_train=one_hot(labels, len(classes)),
        x_val=np.asarray(val.images), y_val=one_hot(val.labels, len(classes)),
        task=meta["task"], classes=classes, fingerprint=meta["fingerprints"]["train"],
        slots=labels.shape[1] if labels.ndim == 2 else 1,
    )


def seed_everything(seed: int) -> None:
    """Same params and seed -> same weights, batches and metrics on the CPU.

    Op determinism makes TensorFlow pick deterministic kernels; on a GPU a few ops have
    none and raise instead, and results still differ between CPU models and library versions.
    """
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def learning_rate_for(cfg, base_rate: float, epochs: int, train_size: int):
    """A constant rate, or a cosine decay to zero over the phase (no tuning of a decay step)."""
    if cfg.lr_schedule == "constant":
        return base_rate
    steps = epochs * max(1, -(-train_size // cfg.batch_size))
    return keras.optimizers.schedules.CosineDecay(base_rate, decay_steps=steps)


def compile_model(model: keras.Model, task: str, learning_rate, label_smoothing: float) -> None:
    """Per-slot categorical cross-entropy (the mean over slots) and per-image metrics."""
    metrics = [PlateAccuracy(), CharAccuracy()] if task == "plates" else ["accuracy"]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=metrics,
        jit_compile=False,  # XLA is about 6x slower than plain TensorFlow on the CPU
    )


class EpochReporter(keras.callbacks.Callback):
    """One line per epoch (with ETA) for the terminal and per-epoch metrics for MLflow/DVC."""

    def __init__(self, phase: str, first_epoch: int, total_epochs: int, history: list[dict], log_metric):
        super().__init__()
        self.phase, self.first_epoch, self.total_epochs = phase, first_epoch, total_epochs
        self.history, self.log_metric = history, log_metric
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        step = self.first_epoch + epoch + 1
        elapsed = time.monotonic() - self.started
        remaining = elapsed / (epoch + 1) * (self.total_epochs - step)
        self.history.append({"epoch": step, "phase": self.phase, **logs})
        self.log_metric(logs, step)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if "accuracy" in k or k.endswith("loss"))
        print(f"train: epoch {step}/{self.total_epochs} [{self.phase}] {shown}  ETA {remaining:.0f}s", flush=True)


class Trainer:
    """Runs the phases of one strategy on one model, sharing callbacks and history."""

    def __init__(self, params: Params, data: TrainingData, model: keras.Model, log_metric, backup_root: Path | None,
                 extra_callbacks: list[keras.callbacks.Callback] | None = None):
        """``backup_root``: where epoch checkpoints let an interrupted run resume (None: no
        checkpoints, e.g. tuning trials); ``extra_callbacks`` join every phase (e.g. pruning)."""
        self.params, self.data, self.model, self.log_metric = params, data, model, log_metric
        self.backup_root, self.extra_callbacks = backup_root, list(extra_callbacks or [])
        self.history: list[dict] = []
        self.epochs_done = 0
        cfg = params.train
        finetuning = cfg.strategy == "finetune" and cfg.unfreeze_depth > 0
        self.total_epochs = cfg.epochs + (cfg.finetune_epochs if finetuning else 0)

    def callbacks(self, phase: str, epochs: int, monitor: str) -> list[keras.callbacks.Callback]:
        cfg = self.params.train
        found = [EpochReporter(phase, self.epochs_done, self.total_epochs, self.history, self.log_metric),
                 *self.extra_callbacks]
        if self.backup_root is not None:
            found.append(keras.callbacks.BackupAndRestore(str(self.backup_root / phase), delete_checkpoint=True))
        if cfg.early_stopping_patience:
            found.append(keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=cfg.early_stopping_patience,
                                                       restore_best_weights=True))
        return found

    def fit(self, model: keras.Model, phase: str, epochs: int, learning_rate: float, x_train, x_val, monitor: str) -> None:
        rate = learning_rate_for(self.params.train, learning_rate, epochs, len(x_train))
        compile_model(model, self.data.task, rate, self.params.train.label_smoothing)
        print(f"train: phase {phase}: {count_trainable(model):,} trainable weights, learning rate {learning_rate:g}")
        before = len(self.history)
        model.fit(x_train, self.data.y_train, validation_data=(x_val, self.data.y_val), epochs=epochs,
                  batch_size=self.params.train.batch_size, shuffle=True, verbose=0,
                  callbacks=self.callbacks(phase, epochs, monitor))
        self.epochs_done += len(self.history) - before

    def fit_head_on_cached_features(self, backbone, epochs: int) -> None:
        """Frozen backbone, no per-epoch augmentation: features once, then only the head trains.

        The backbone's output cannot change while it is frozen, so running it every epoch
        only repeats work; the head sees exactly the same inputs either way.
        """
        extractor = backbone.model  # the head starts at the backbone's feature map
        started = time.monotonic()
        batch = self.params.train.batch_size
        f_train = extractor.predict(self.data.x_train, batch_size=batch, verbose=0)
        f_val = extractor.predict(self.data.x_val, batch_size=batch, verbose=0)
        print(f"train: cached backbone features of {len(f_train) + len(f_val)} images in {time.monotonic() - started:.1f}s")
        head = self.model.get_layer("head")
        self.fit(head, "head", epochs, self.params.train.learning_rate, f_train, f_val, monitored_metric(self.data.task))

    def run(self, backbone) -> None:
        cfg = self.params.train
        monitor = monitored_metric(self.data.task)
        x_train, x_val = self.data.x_train, self.data.x_val
        if cfg.strategy in ("scratch", "full"):
            self.fit(self.model, "all", cfg.epochs, cfg.learning_rate, x_train, x_val, monitor)
            return
        set_backbone_trainable(backbone, 0, bn_trainable=False)
        if cfg.cache_features:
            self.fit_head_on_cached_features(backbone, cfg.epochs)
        else:
            self.fit(self.model, "head", cfg.epochs, cfg.learning_rate, x_train, x_val, monitor)
        if cfg.strategy == "finetune" and cfg.unfreeze_depth > 0 and cfg.finetune_epochs > 0:
            set_backbone_trainable(backbone, cfg.unfreeze_depth, cfg.bn_trainable)
            self.fit(self.model, "finetune", cfg.finetune_epochs, cfg.learning_rate * cfg.finetune_lr_factor,
                     x_train, x_val, monitor)


def initialise_from(model: keras.Model, path: str) -> int:
    """Copy weights from an earlier run's model wherever layer names and shapes match.

    In-domain transfer (e.g. synthetic plates -> the user's real plates) reuses the whole
    backbone and, when the alphabet and slots match, the head too.
    """
    source_path = Path(path)
    if not source_path.is_file():
        raise TransferlabError(f"train.init_from: {path}: model file not found")
    source = keras.models.load_model(source_path, compile=False)
    source_layers = {layer.name: layer for layer in source._flatten_layers(include_self=False)}
    copied = 0
    for layer in model._flatten_layers(include_self=False):
        match = source_layers.get(layer.name)
        if match is None or not layer.weights or isinstance(layer, keras.Model):
            continue
        if [w.shape for w in match.weights] == [w.shape for w in layer.weights]:
            layer.set_weights(match.get_weights())
            copied += 1
    if not copied:
        raise TransferlabError(f"train.init_from: {path}: no layer matches this model (different backbone?)")
    print(f"train: initialised {copied} layers from {path}")
    return copied


def evaluate_split(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int) -> dict[str, float]:
    results = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    return {k: float(v) for k, v in results.items()}


def run(params: Params) -> dict:
    """Train the configured variant; write the model, metrics, history and the MLflow run."""
    from transferlab import tracking  # MLflow loads slowly; only this entry point needs it

    cfg = params.train
    data = load_training_data(params)
    seed_everything(cfg.seed)
    input_shape = (params.data.image_height, params.data.image_width, 3)
    backbone = build_backbone(cfg.backbone, input_shape, cfg.pretrained)
    model = build_model(backbone, data.task, data.slots, len(data.classes), cfg.head_units, cfg.dropout,
                        cfg.head_pooling)
    if cfg.init_from:
        initialise_from(model, cfg.init_from)
    output = Path(cfg.output)
    tracking.configure()
    tags = tracking.run_tags(fingerprint=data.fingerprint)
    tags.update({"stage": "train", "backbone": cfg.backbone, "strategy": cfg.strategy, "pretrained": str(cfg.pretrained)})
    started = time.monotonic()
    with tracking.tracked_run(params.mlflow.experiment, run_name=run_name(params), params=params.model_dump(),
                              tags=tags) as run:
        import mlflow

        def log_metric(logs: dict, step: int) -> None:
            mlflow.log_metrics({k: v for k, v in logs.items()}, step=step)

        trainer = Trainer(params, data, model, log_metric, backup_root=backup_root(params, data.fingerprint))
        print(f"train: {cfg.backbone} (pretrained={cfg.pretrained}), strategy {cfg.strategy}, "
              f"{len(data.x_train)} training / {len(data.x_val)} validation images")
        trainer.run(backbone)
        seconds = time.monotonic() - started
        compile_model(model, data.task, cfg.learning_rate, cfg.label_smoothing)  # the head may have trained alone
        # Training-set metrics of the final weights (for the over-fitting gap) on an evenly spaced
        # sample: the whole set would cost a large share of an epoch and says nothing more.
        sample = np.linspace(0, len(data.x_train) - 1, min(len(data.x_train), TRAIN_METRICS_SAMPLE)).astype(int)
        final = {f"train_{k}": v
                 for k, v in evaluate_split(model, data.x_train[sample], data.y_train[sample], cfg.batch_size).items()}
        final.update({f"val_{k}": v for k, v in evaluate_split(model, data.x_val, data.y_val, cfg.batch_size).items()})
        summary = {**final, "epochs": trainer.epochs_done, "train_seconds": round(seconds, 1),
                   "trainable_weights": count_trainable(model), "total_weights": int(model.count_params())}
        # "best_" keeps these apart from the per-epoch curves of the same names.
        mlflow.log_metrics({f"best_{k}" if k.startswith("val_") else k: v for k, v in summary.items()})
        history = pd.DataFrame(trainer.history)
        with atomic_output_dir(output) as out:
            model.save(out / MODEL_FILE)
            history.to_csv(out / "history.csv", index=False)
            save_training_curves(history, data.task, out / "curves.png")
            write_json(out / RUN_FILE, {"run_id": run.info.run_id, "experiment": params.mlflow.experiment,
                                        "tracking_uri": tracking.tracking_uri()})
            mlflow.log_artifact(str(out / "curves.png"), "plots")
            preview = Path(params.augment.output) / "preview.png"
            if preview.is_file():
                mlflow.log_artifact(str(preview), "plots")
            labels = Labels.from_params(params, data.classes)
            labels.save(out / LABELS_FILE)
            mlflow.log_artifact(str(out / LABELS_FILE))  # runs:/<id>/model can then be decoded
            log_keras_model(model, data.x_val[:2], labels)
            log_pyfunc_model(out / MODEL_FILE, out / LABELS_FILE, data.x_val[:2])  # runs:/<id>/reader
        history.to_csv(_ensure_parent(HISTORY_FILE), index=False)
        write_json(METRICS_FILE, summary)
    print(f"train: done in {seconds:.0f}s; validation {monitored_metric(data.task)} "
          f"{summary['val_' + monitored_metric(data.task).removeprefix('val_')]:.4f}")
    return summary


def run_name(params: Params) -> str:
    """The DVC experiment's name when there is one, else the variant's settings.

    Never MLflow's random name: training seeds Python's random module, so every run with
    the same seed would get the same "random" name.
    """
    cfg = params.train
    arm = "imagenet" if cfg.pretrained else "random-init"
    variant = f"{cfg.backbone}-{cfg.strategy}-{arm}-aug{params.augment.strength:g}-seed{cfg.seed}"
    experiment = os.environ.get("DVC_EXP_NAME")
    return f"{experiment} ({variant})" if experiment else variant


def log_keras_model(model: keras.Model, example: np.ndarray, labels: Labels) -> None:
    """The model in Keras format with a signature (0-255 float images in, per-slot softmax out)."""
    import mlflow
    from mlflow.models import infer_signature

    example = example.astype(np.float32)
    signature = infer_signature(example, np.asarray(model.predict(example, verbose=0)))
    # Explicit requirements: inferring them would load the model again in a subprocess.
    requirements = [f"keras=={keras.__version__}", "tensorflow-cpu==2.21.0"]
    # No input_example: mlflow.keras 3.17 writes it before creating the model folder (and
    # one image is ~37,000 JSON numbers); the signature already states shapes and dtypes.
    mlflow.keras.log_model(model, name="model", signature=signature, pip_requirements=requirements,
                           metadata={METADATA_KEY: labels.to_dict()})


def _ensure_parent(path: str) -> str:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return path


def load_run_info(models_dir: str | Path) -> dict:
    return read_stage_json(Path(models_dir) / RUN_FILE, "train")
