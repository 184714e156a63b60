"""Epoch checkpoints from which a killed training resumes as if it had never stopped.

Keras' ``BackupAndRestore`` brought back the weights, the optimizer and the epoch counter,
but not what the trainer knew about its epochs: a run killed after epoch 2 and started again
chose its kept epoch among epochs 3-4 only, numbered it 1, and could not restore epoch 2's
weights. A checkpoint here holds everything the kept-epoch choice and the next epochs
depend on: the weights and optimizer of the model being fitted, the dropout seeds' states,
the phase and its epochs done, the history rows (the epoch selector is replayed from them)
and the kept weights when they are not the last ones.

One checkpoint per run, rewritten at every epoch end: an epoch's files are written first
under names of their own, then ``state.json`` is replaced atomically to point at them, so a
kill at any moment leaves the previous epoch's checkpoint whole. Deleted once the run is done.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from transferlab.errors import TransferlabError
from transferlab.io import key_hash

STATE_FILE = "state.json"
BACKUP_SUFFIX = ".backup"
FORMAT = 1  # bumped when the state's fields change meaning; another format is not resumed


def checkpoint_root(output: str | Path, *key) -> Path:
    """The checkpoint folder of a run writing ``output``: ``.<output name>.backup/<hash>`` beside it.

    A later run with other parameters or data must never resume from it, so the folder name
    is a hash of ``key``: everything that shapes the training.
    """
    digest = key_hash(key, 12)
    output = Path(output)
    return output.parent / f".{output.name}{BACKUP_SUFFIX}" / digest


@dataclass
class Resumed:
    """What a checkpoint gives back (:meth:`EpochCheckpoint.load`)."""

    phase: str
    phase_epochs: int  # epochs of ``phase`` trained before the interruption
    history: list[dict]  # one row per epoch over all phases, as the trainer records them
    weights: Path  # the fitted model's weights and optimizer after the last of them
    kept: Path | None  # the kept epoch's weights (full model) when they are not the last ones
    seed_states: list[list[int]]


def seed_variables(model: keras.Model) -> list:
    """The model's random-state variables (dropout seed generators): variables that are not
    weights, so ``save_weights`` leaves them out although each step advances them."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


class EpochCheckpoint:
    """The checkpoint folder of one run (``root``, keyed by its configuration by the caller)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.state_path = self.root / STATE_FILE

    def save(self, fitted: keras.Model, full: keras.Model, phase: str, phase_epochs: int, history: list[dict],
             kept_epoch: int, kept_weights: list[np.ndarray] | None) -> None:
        """Checkpoint the end of epoch ``len(history)``. ``fitted`` is the model ``fit`` trains
        (the head alone on cached features), ``full`` the whole model; ``kept_weights`` (of
        ``full``) are written only when ``kept_epoch`` is not the last epoch."""
        self.root.mkdir(parents=True, exist_ok=True)
        epoch = len(history)
        weights = f"{phase}-{epoch:04d}.weights.h5"
        fitted.save_weights(self.root / weights)
        kept = None
        if kept_epoch != epoch:
            kept = f"kept-{kept_epoch:04d}.npz"
            if not (self.root / kept).is_file():  # the same epoch's weights stay kept for many epochs
                np.savez(self.root / f"{kept}.tmp.npz", *kept_weights)
                (self.root / f"{kept}.tmp.npz").replace(self.root / kept)
        seeds = [keras.ops.convert_to_numpy(v).tolist() for v in seed_variables(full)]
        self._write_state({"format": FORMAT, "phase": phase, "phase_epochs": phase_epochs, "history": history,
                           "weights": weights, "kept": kept, "seed_states": seeds})
        for path in self.root.iterdir():  # the previous epoch's files, and any a kill left half-written
            if path.name not in (STATE_FILE, weights, kept):
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def _write_state(self, state: dict) -> None:
        """Replace ``state.json`` atomically; keys keep their order (the history's columns)."""
        tmp = self.root / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state), encoding="utf-8")
        tmp.replace(self.state_path)

    def load(self) -> Resumed | None:
        """The last checkpointed epoch, or None when there is none."""
        if not self.state_path.is_file():
            return None
        try:
            state = json.loads(self.state_path.read_text())
            if state.get("format") != FORMAT:
                raise ValueError(f"format {state.get('format')}, expected {FORMAT}")
            resumed = Resumed(state["phase"], int(state["phase_epochs"]), list(state["history"]),
                              self.root / state["weights"], self.root / state["kept"] if state["kept"] else None,
                              state["seed_states"])
            missing = [p for p in (resumed.weights, resumed.kept) if p is not None and not p.is_file()]
            if missing:
                raise ValueError(f"{missing[0].name} is missing")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TransferlabError(f"{self.state_path}: unreadable training checkpoint ({exc}); delete {self.root} "
                                   "to train from the first epoch") from None
        return resumed

    def restore(self, resumed: Resumed, fitted: keras.Model, full: keras.Model) -> list[np.ndarray] | None:
        """Put the checkpoint's weights, optimizer and seeds back; returns the kept weights
        stored apart (None: the restored weights are the kept ones). The optimizer must be built."""
        fitted.load_weights(resumed.weights)
        states = seed_variables(full)
        if len(states) != len(resumed.seed_states):
            raise TransferlabError(f"{self.state_path}: {len(resumed.seed_states)} seed states for a model with "
                                   f"{len(states)}; delete {self.root} to train from the first epoch")
        for variable, value in zip(states, resumed.seed_states):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        if resumed.kept is None:
            return None
        with np.load(resumed.kept) as stored:
            return [stored[f"arr_{i}"] for i in range(len(stored.files))]

    def clear(self) -> None:
        """Delete the checkpoint (the run finished: nothing is left to resume)."""
        shutil.rmtree(self.root, ignore_errors=True)
        try:  # the .<output>.backup folder too, once no other run's checkpoint is in it
            self.root.parent.rmdir()
        except OSError:
            pass
