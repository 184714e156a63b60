"""The train stage in a process of its own, for the resume tests (tests/test_train.py).

The monitored metric is scripted, so that the best epoch is known whatever the tiny model
learns, and the process can kill itself with SIGKILL in the middle of an epoch (between two batches), as ``kill -9``
would: nothing of it runs any cleanup.

    python train_worker.py PARAMS_FILE KILL_EPOCH    (KILL_EPOCH 0: never)
"""

from __future__ import annotations

import os
import signal
import sys

from transferlab.training import engine

MONITORED = [0.10, 0.40, 0.30, 0.20]  # epoch 2 is the best: its weights are not the last ones


def scripted_on_epoch_end(original=engine.EpochReporter.on_epoch_end):
    """``EpochReporter.on_epoch_end`` with the validation char accuracy of epoch n = MONITORED[n - 1]."""

    def on_epoch_end(self, epoch, logs=None):
        original(self, epoch, {**logs, "val_char_accuracy": MONITORED[self.trainer.epochs_done + epoch]})

    return on_epoch_end


def kill_in_epoch(kill_epoch: int) -> None:
    """Make the trainer's reporter kill the process after the second batch of ``kill_epoch`` (1-based)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = self.trainer.epochs_done + epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.current_epoch == kill_epoch and batch == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    engine.EpochReporter.on_epoch_begin = on_epoch_begin
    engine.EpochReporter.on_train_batch_end = on_train_batch_end


if __name__ == "__main__":
    from transferlab import train
    from transferlab.config import load_params

    params_file, kill_epoch = sys.argv[1], int(sys.argv[2])
    engine.EpochReporter.on_epoch_end = scripted_on_epoch_end()
    if kill_epoch:
        kill_in_epoch(kill_epoch)
    train.run(load_params(params_file))
