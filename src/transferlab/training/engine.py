"""The training engine: the one place where a model is built, trained, its kept weights chosen
and scored. The ``train`` stage, tuning trials and study variants all call :func:`fit` and
:func:`score`, so a fix made here holds on every path and the paths cannot disagree.

Strategies (``train.strategy``), what practitioners actually do:
- ``scratch``: random initial weights, everything trainable;
- ``frozen``: feature extraction; the backbone is frozen and only the new head learns;
- ``finetune``: the head first with the backbone frozen (a random head trained jointly
  with an unfrozen backbone wrecks the pretrained features), then the top
  ``unfreeze_depth`` blocks at ``finetune_lr_factor`` x the rate;
- ``full``: everything trainable from the start.

With ``augment.mode: per_epoch`` the training data carries the originals only
(:attr:`ArrayData.epoch_augment`) and :class:`Trainer` draws every epoch's augmented variants
before that epoch's ``fit``, seeded by ``(augment.seed, epoch)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np

from transferlab.training import backend
from transferlab.training.backbones import build_backbone
from transferlab.config import Params
from transferlab.data.arrays import ArrayData
from transferlab.errors import TransferlabError
from transferlab.training.models import build_model, count_trainable, set_backbone_trainable
from transferlab.training.normalization import adapt_batchnorm_momentum
from transferlab.training.batches import epoch_order, steps_per_epoch
from transferlab.training.checkpoint import EpochCheckpoint
from transferlab.training.selection import EpochSelector, Selection

LogMetric = Callable[[dict, int], None]


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]


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
    steps = epochs * steps_per_epoch(train_size, cfg.batch_size)
    return keras.optimizers.schedules.CosineDecay(base_rate, decay_steps=steps)


def compile_model(model: keras.Model, data: ArrayData, learning_rate, label_smoothing: float) -> None:
    """Per-slot categorical cross-entropy (the mean over slots) and per-image metrics."""
    metrics = data.kind.keras_metrics(data.pad_index)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=metrics,
        jit_compile=backend.JIT_COMPILE,  # XLA off on a TensorFlow CPU (measured ~6x slower), jit on JAX
    )


def check_init_from(path: str) -> Path:
    """``train.init_from`` as a path; one clear error when it names no file."""
    source_path = Path(path)
    if not source_path.is_file():
        raise TransferlabError(f"train.init_from: {path}: model file not found")
    return source_path


def initialise_from(model: keras.Model, path: str) -> int:
    """Copy weights from an earlier run's model wherever layer names and shapes match.

    In-domain transfer (e.g. synthetic plates -> the user's real plates) reuses the whole
    backbone and, when the alphabet and slots match, the head too.
    """
    source_path = check_init_from(path)
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


def build(params: Params, data: ArrayData):
    """Backbone (ImageNet or random weights) + the task's head, optionally from an earlier model."""
    cfg = params.train
    backbone = build_backbone(cfg.backbone, tuple(data.x_train.shape[1:]), cfg.pretrained)
    model = build_model(backbone, data.task, data.slots, data.num_classes, cfg.head_units, cfg.dropout,
                        cfg.head_pooling)
    if cfg.init_from:
        initialise_from(model, cfg.init_from)
    return backbone, model


class EpochReporter(keras.callbacks.Callback):
    """Per epoch: the history row, MLflow/DVC metrics, one terminal line with ETA, the
    kept-epoch bookkeeping (weights snapshot when the epoch is the best so far, early stop)
    and the checkpoint a killed run resumes from."""

    PROGRESS_EVERY_S = 60.0  # a line within an epoch at most this often (a pretraining epoch lasts minutes)

    def __init__(self, trainer: Trainer, phase: str, initial_epoch: int):
        super().__init__()
        self.trainer, self.phase, self.initial_epoch = trainer, phase, initial_epoch
        self.started = time.monotonic()
        self.epoch_started = self.last_line = self.started
        self.epoch = initial_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.epoch_started = epoch, time.monotonic()
        self.last_line = self.epoch_started

    def on_train_batch_end(self, batch, logs=None):
        """Long epochs say how far they are, so a quiet terminal is never a hung one."""
        now = time.monotonic()
        steps = (self.params or {}).get("steps")
        if not self.trainer.verbose or not steps or now - self.last_line < self.PROGRESS_EVERY_S:
            return
        self.last_line = now
        done = batch + 1
        left = (now - self.epoch_started) / done * (steps - done)
        step = self.trainer.epochs_done + self.epoch + 1
        print(f"train: epoch {step}/{self.trainer.total_epochs} [{self.phase}]: {done}/{steps} batches, "
              f"{left / 60:.1f} min left in this epoch", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        t = self.trainer
        logs = {k: float(v) for k, v in (logs or {}).items()}
        step = t.epochs_done + epoch + 1
        t.history.append({"epoch": step, "phase": self.phase, **logs})
        t.log_metric(logs, step)
        if t.selector.update(logs):
            t.kept_weights = t.model.get_weights()
        if t.checkpoint is not None:
            t.checkpoint.save(self.model, t.model, self.phase, epoch + 1, t.history, t.selector.best_epoch,
                              t.kept_weights)
        elapsed = time.monotonic() - self.started
        remaining = elapsed / (epoch + 1 - self.initial_epoch) * (t.total_epochs - step)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if "accuracy" in k or k.endswith("loss"))
        if t.verbose:
            print(f"train: epoch {step}/{t.total_epochs} [{self.phase}] {shown}  ETA {remaining:.0f}s", flush=True)
        if t.selector.should_stop():
            if t.verbose:
                print(f"train: early stop: no better {t.selector.monitor} for {t.selector.patience} epochs")
            self.model.stop_training = True


class Trainer:
    """Runs the phases of one strategy on one model, sharing the history and the kept-epoch choice."""

    def __init__(self, params: Params, data: ArrayData, model: keras.Model, backbone, log_metric: LogMetric,
                 backup_root: Path | None = None, extra_callbacks: list | None = None, verbose: bool = True):
        """``backup_root``: where epoch checkpoints let an interrupted run resume (None: no
        checkpoints, e.g. tuning trials); ``extra_callbacks`` join every phase (e.g. pruning)."""
        self.params, self.data, self.model, self.backbone = params, data, model, backbone
        self.log_metric = log_metric
        self.extra_callbacks, self.verbose = list(extra_callbacks or []), verbose
        cfg = params.train
        self.history: list[dict] = []
        self.epochs_done = 0  # before the phase being trained
        self.selector = EpochSelector(data.kind.monitored_metric, patience=cfg.early_stopping_patience)
        self.kept_weights: list | None = None
        # augment.mode per_epoch: each epoch's variants are drawn before its fit (in this process,
        # imgaug's batch call), seeded by (augment.seed, epoch) alone, so a resumed run draws the same.
        self.epoch_augment = data.epoch_augment if data.epoch_augment is not None and \
            data.epoch_augment.per_epoch else None
        self.augment_seconds, self.augmented_epochs = 0.0, 0  # spent drawing them, and epochs drawn, in this process
        self.phases = ["all"] if cfg.strategy in ("scratch", "full") else ["head"]
        if cfg.strategy == "finetune" and cfg.unfreeze_depth > 0 and cfg.finetune_epochs > 0:
            self.phases.append("finetune")
        self.total_epochs = cfg.epochs + (cfg.finetune_epochs if "finetune" in self.phases else 0)
        self.checkpoint = EpochCheckpoint(backup_root) if backup_root is not None else None
        self.resumed = self.checkpoint.load() if self.checkpoint is not None else None
        if self.resumed is not None and self.resumed.phase not in self.phases:  # the folder's key should prevent it
            raise TransferlabError(f"{self.checkpoint.state_path}: a checkpoint of phase {self.resumed.phase}, "
                                   f"not one of {self.phases}; delete {self.checkpoint.root} to train from the start")

    def callbacks(self, phase: str, initial_epoch: int) -> list[keras.callbacks.Callback]:
        """The callbacks of one phase's ``fit`` (benchmarks/bench_train.py adds its timer here)."""
        return [EpochReporter(self, phase, initial_epoch), *self.extra_callbacks]

    def resumes_later(self, phase: str) -> bool:
        """True when the checkpoint is of a later phase: ``phase`` is done and its weights restored with it."""
        return self.resumed is not None and self.phases.index(self.resumed.phase) > self.phases.index(phase)

    def resume(self, model: keras.Model, phase: str) -> int:
        """Restore the checkpoint when it is of ``phase``; returns the phase's epochs already done.

        The history and its MLflow metrics (into this process's run, one value per epoch),
        the selector and the kept weights come back as they were at the checkpointed epoch.
        """
        resumed = self.resumed
        if resumed is None or resumed.phase != phase:
            self.selector.new_phase()
            return 0
        self.resumed = None
        kept = self.checkpoint.restore(resumed, model, self.model)
        self.history = [dict(row) for row in resumed.history]
        self.selector.replay(self.history)
        self.kept_weights = kept if kept is not None else self.model.get_weights()
        for row in self.history:
            self.log_metric({k: v for k, v in row.items() if k not in ("epoch", "phase")}, row["epoch"])
        if self.verbose:
            print(f"train: resumed after epoch {len(self.history)}/{self.total_epochs} from {self.checkpoint.root} "
                  f"(kept epoch so far: {self.selector.best_epoch})")
        return resumed.phase_epochs

    @property
    def images_per_original(self) -> int:
        """Training images an epoch holds per image of ``x_train`` (1 + copies with per-epoch augmentation)."""
        return self.epoch_augment.images_per_original if self.epoch_augment is not None else 1

    def epoch_images(self, x_train: np.ndarray, epoch: int) -> np.ndarray:
        """Epoch ``epoch``'s training images (0-based over all phases): ``x_train``, or with
        per-epoch augmentation the originals followed by that epoch's fresh variants."""
        if self.epoch_augment is None:
            return x_train
        from transferlab.augment import epoch_images  # imgaug imports slowly: only when used

        started = time.monotonic()
        images = epoch_images(x_train, self.epoch_augment, epoch)
        seconds = time.monotonic() - started
        if self.verbose and not self.augmented_epochs:
            cfg = self.epoch_augment
            print(f"train: per-epoch augmentation: {len(images) - len(x_train)} fresh variants ({cfg.copies} of each "
                  f"of {len(x_train)} images at strength {cfg.strength:g}) drawn in {seconds:.1f}s before each epoch",
                  flush=True)
        self.augment_seconds, self.augmented_epochs = self.augment_seconds + seconds, self.augmented_epochs + 1
        return images

    def fit(self, model: keras.Model, phase: str, epochs: int, learning_rate: float, x_train, x_val) -> None:
        cfg = self.params.train
        train_size = len(x_train) * self.images_per_original
        compile_model(model, self.data, learning_rate_for(cfg, learning_rate, epochs, train_size),
                      cfg.label_smoothing)
        if self.verbose:
            print(f"train: phase {phase}: {count_trainable(model):,} trainable weights, learning rate {learning_rate:g}")
        # Built here, not inside the first traced step: on TensorFlow a step that creates
        # variables is traced twice (measured: the head's first epoch 0.7-3 s shorter).
        # A checkpoint's optimizer state also loads only into a built optimizer.
        model.optimizer.build(model.trainable_variables)
        initial_epoch = self.resume(model, phase)
        self.epochs_done = len(self.history) - initial_epoch
        if initial_epoch < epochs and not (initial_epoch and self.selector.should_stop()):
            k = self.data.num_classes
            labels = np.concatenate([self.data.y_train] * self.images_per_original)  # the layout of epoch_images
            y_train, validation = one_hot(labels, k), (x_val, one_hot(self.data.y_val, k))
            callbacks = self.callbacks(phase, initial_epoch)
            for epoch in range(initial_epoch, epochs):  # one fit per epoch: each in its seeded order
                step = self.epochs_done + epoch
                images = self.epoch_images(x_train, step)
                order = epoch_order(len(images), cfg.seed, step)
                model.fit(images[order], y_train[order], batch_size=cfg.batch_size, validation_data=validation,
                          epochs=epoch + 1, initial_epoch=epoch, shuffle=False, verbose=0, callbacks=callbacks)
                if model.stop_training:
                    break
        self.epochs_done = len(self.history)

    def fit_head_on_cached_features(self, epochs: int) -> None:
        """Frozen backbone, no per-epoch augmentation (:meth:`run` checks): features once, then only the head trains.

        The backbone's output cannot change while it is frozen, so running it every epoch
        only repeats work; the head sees exactly the same inputs either way.
        """
        extractor = self.backbone.model  # the head starts at the backbone's feature map
        started = time.monotonic()
        batch = self.params.train.batch_size
        f_train = feature_pass(extractor, self.data.x_train, batch)
        f_val = feature_pass(extractor, self.data.x_val, batch)
        if self.verbose:
            print(f"train: cached backbone features of {len(f_train) + len(f_val)} images "
                  f"in {time.monotonic() - started:.1f}s")
        self.fit(self.model.get_layer("head"), "head", epochs, self.params.train.learning_rate, f_train, f_val)

    def run(self) -> Selection:
        """Train every phase of the strategy (from the checkpoint on, if one is left); put back
        the kept epoch's weights; say which and why."""
        cfg = self.params.train
        x_train, x_val = self.data.x_train, self.data.x_val
        adapt_batchnorm_momentum(self.model, steps_per_epoch(len(x_train) * self.images_per_original, cfg.batch_size))
        if self.phases == ["all"]:
            self.fit(self.model, "all", cfg.epochs, cfg.learning_rate, x_train, x_val)
        else:
            set_backbone_trainable(self.backbone, 0, bn_trainable=False)
            if cfg.cache_features and self.epoch_augment is not None and self.verbose:
                print("train: backbone features not cached (train.cache_features): every epoch's images are new "
                      "(augment.mode: per_epoch)")
            if self.resumes_later("head"):
                pass  # the finetune checkpoint holds the whole model, head included
            elif cfg.cache_features and self.epoch_augment is None:
                self.fit_head_on_cached_features(cfg.epochs)
            else:
                self.fit(self.model, "head", cfg.epochs, cfg.learning_rate, x_train, x_val)
            if "finetune" in self.phases:
                set_backbone_trainable(self.backbone, cfg.unfreeze_depth, cfg.bn_trainable)
                self.fit(self.model, "finetune", cfg.finetune_epochs, cfg.learning_rate * cfg.finetune_lr_factor,
                         x_train, x_val)
        selection = self.selector.selection()
        if selection.restored and self.kept_weights is not None:
            self.model.set_weights(self.kept_weights)
        self.kept_weights = None
        if self.checkpoint is not None:
            self.checkpoint.clear()
        if self.verbose:
            print(f"train: kept epoch {selection.kept_epoch} of {selection.epochs}: {selection.reason}")
        return selection


@dataclass
class FitResult:
    model: keras.Model
    backbone: object
    history: list[dict]
    selection: Selection
    seconds: float
    augment_seconds: float = 0.0  # of ``seconds``: drawing per-epoch augmentations

    @property
    def epochs(self) -> int:
        return self.selection.epochs


def fit(params: Params, data: ArrayData, log_metric: LogMetric | None = None, backup_root: Path | None = None,
        extra_callbacks: list | None = None, verbose: bool = True, on_trainer=None) -> FitResult:
    """Build the configured variant, train it, keep the selected epoch's weights.

    ``on_trainer`` receives the :class:`Trainer` before training (e.g. for a pruning callback
    that needs its epoch count).
    """
    seed_everything(params.train.seed)
    backbone, model = build(params, data)
    trainer = Trainer(params, data, model, backbone, log_metric or (lambda logs, step: None), backup_root,
                      extra_callbacks, verbose)
    if on_trainer is not None:
        on_trainer(trainer)
    started = time.monotonic()
    selection = trainer.run()
    seconds = time.monotonic() - started
    compile_model(model, data, params.train.learning_rate, params.train.label_smoothing)  # the head may have trained alone
    return FitResult(model, backbone, trainer.history, selection, seconds, trainer.augment_seconds)


def feature_pass(extractor: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    """The compiled forward pass of ``extractor`` over ``images``, every call one batch of the same
    shape (the last padded, its padding dropped), so it is traced once: ``predict`` traces a
    last, shorter batch again (seconds for a backbone). Each image's output does not depend on
    the batch (inference mode), so the features equal ``predict``'s bit for bit."""
    images = np.asarray(images, np.float32)
    parts = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        short = batch_size - len(chunk)
        if short:
            chunk = np.concatenate([chunk, np.zeros((short, *chunk.shape[1:]), chunk.dtype)])
        parts.append(np.asarray(extractor.predict_on_batch(chunk))[:batch_size - short])
    if not parts:
        return np.zeros((0, *extractor.output.shape[1:]), np.float32)
    return np.concatenate(parts)


def predict(model: keras.Model, images: np.ndarray, batch_size: int) -> np.ndarray:
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0))


SCORED = ("plate_accuracy", "char_accuracy", "slot_accuracy", "accuracy", "macro_f1", "loss")


def score(data: ArrayData, labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The headline metrics of predicted probabilities, per image over the whole set.

    Adds ``majority_fraction``: the share of images given the single most frequent
    prediction (1.0 = one class, or one plate string, for every image).
    """
    from transferlab.evaluation import metrics
    from transferlab.evaluation.diagnostics import majority_fraction

    task = data.kind
    values = task.report_scalars(task.report(labels, probs, data.classes, data.pad_char, 0), "", data.classes)
    found = {k: float(v) for k, v in values.items() if k in SCORED}
    if len(labels):
        found["majority_fraction"] = majority_fraction(metrics.predicted_indices(probs))
    return found


def score_model(model: keras.Model, data: ArrayData, images: np.ndarray, labels: np.ndarray,
                batch_size: int) -> dict[str, float]:
    return score(data, labels, predict(model, images, batch_size))


def image_scores(data: ArrayData, labels: np.ndarray, probs: np.ndarray, prefix: str = "images_",
                 digits: int = 4) -> dict[str, list[float]]:
    """Per-image accuracies (:func:`transferlab.evaluation.metrics.per_image_scores`) as
    ``<prefix><metric>`` lists, rounded to keep a result file small."""
    from transferlab.evaluation import metrics

    found = metrics.per_image_scores(labels, metrics.predicted_indices(probs), data.pad_index)
    return {f"{prefix}{k}": np.round(v, digits).tolist() for k, v in found.items()}
