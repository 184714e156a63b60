"""One trial: its data (seeded subsets of the training and validation splits), its training
through the training engine with a pruning callback, and its result."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from transferlab.config import Params, TuneConfig
from transferlab.errors import TransferlabError
from transferlab.tune.interrupts import raise_lost_interrupt
from transferlab.tune.space import config_of


def load_tune_data(params: Params, cfg: TuneConfig | None = None):
    """The training and validation splits (the study's seeded subsets of them); never the test split."""
    from transferlab.data.arrays import load_prepared, seeded_subset

    cfg = config_of(params, cfg)
    data = load_prepared(params).subset(cfg.train_images, cfg.seed)
    picked_val = seeded_subset(len(data.y_val), cfg.val_images, cfg.seed + 1)
    return data.replace(x_val=data.x_val[picked_val], y_val=data.y_val[picked_val])


def data_fingerprints(params: Params) -> dict[str, str]:
    """Content hashes of the training and validation splits: a study is tied to its data."""
    from transferlab.data.prepared import read_meta

    fingerprints = read_meta(params.split.output)["fingerprints"]
    return {name: fingerprints[name] for name in ("train", "val")}


class TrialDiverged(Exception):
    """The metric became NaN or infinite: the trial fails (a bad point, not a broken study)."""


def pruning_callback(trial, metric: str):
    """A Keras callback reporting ``metric`` to the trial after every epoch (step: epochs done so
    far); it raises ``optuna.TrialPruned`` when the pruner says so, and a pending interrupt
    between two batches. Set its ``trainer`` (the engine's) before training."""
    import keras
    import optuna

    class PruningCallback(keras.callbacks.Callback):
        """Report the validation metric after every epoch; stop the trial when the pruner says so."""

        def __init__(self):
            super().__init__()
            self.trainer = None

        def on_train_batch_end(self, batch, logs=None):
            raise_lost_interrupt()

        def on_epoch_end(self, epoch, logs=None):
            raise_lost_interrupt()
            logs = logs or {}
            if metric not in logs:
                raise TransferlabError(f"tune.metric: {metric} is not among the epoch metrics ({', '.join(logs)})")
            value = float(logs[metric])
            step = self.trainer.epochs_done + epoch + 1  # epochs so far, across the head/finetune phases
            if not math.isfinite(value):
                raise TrialDiverged(f"{metric} is {value} at epoch {step}")
            trial.report(value, step)
            if step < self.trainer.total_epochs and trial.should_prune():  # the last epoch saves nothing
                trial.set_user_attr("pruned_at_epoch", step)
                raise optuna.TrialPruned(f"pruned at epoch {step} ({metric} {value:.4f})")

    return PruningCallback()


@dataclass
class TrialResult:
    """A trained trial: its value (the study's metric), final validation metrics, epochs and time."""

    value: float
    metrics: dict[str, float]
    epochs: int
    seconds: float


def train_trial(params: Params, data, trial, metric: str, log_metric: Callable[[dict, int], None]) -> TrialResult:
    """Train one trial through the training engine, on its training set augmented in memory;
    its value is the validation metric of the kept weights."""
    import keras

    from transferlab.training import engine

    pruning = pruning_callback(trial, metric)
    try:
        result = engine.fit(params, data.augmented(params.augment), log_metric, extra_callbacks=[pruning],
                            on_trainer=lambda trainer: setattr(pruning, "trainer", trainer))
        final = {f"val_{k}": v for k, v in
                 engine.score_model(result.model, data, data.x_val, data.y_val, params.train.batch_size).items()}
    finally:
        keras.backend.clear_session()  # the next trial builds its own graph; free this one
    value = final[metric]
    if not math.isfinite(value):
        raise TrialDiverged(f"final {metric} is {value}")
    final["kept_epoch"] = result.selection.kept_epoch
    return TrialResult(value=value, metrics=final, epochs=result.epochs, seconds=result.seconds)
