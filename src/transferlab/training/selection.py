"""Which epoch's weights are kept, and when training stops: the rules of the low-data regime.

With a few hundred images the usual recipe (early stopping on validation plate accuracy,
``restore_best_weights``) keeps the wrong weights: plate accuracy (every character right)
stays exactly 0.0 for many epochs while the model improves, so the "best" epoch is the
first one and training stops after ``patience`` epochs of a metric that cannot move.
The rules here, pure Python so they can be tested on constructed histories:

- The monitored metric is one that moves early: character accuracy for plates (over the
  real characters, pads excluded), accuracy for classification; validation loss breaks ties.
- Patience only counts once the monitored metric has moved from its first value: a metric
  flat since epoch 1 never stops training (a scratch network's flat phase can last many epochs).
- The kept epoch is the best one by (monitored metric, then lower loss), the latest on a
  full tie, and never one that is not better than the last epoch: when the metric was flat
  all along, the last weights are kept and the reason says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

TIE_BREAKER = "val_loss"


@dataclass
class Selection:
    """The outcome, recorded in metrics/train.json and the MLflow run."""

    monitor: str
    kept_epoch: int  # 1-based, counted over all phases
    epochs: int  # epochs trained
    value: float  # the monitored metric at the kept epoch
    last_value: float
    restored: bool  # the kept weights are not the last ones
    flat: bool  # the monitored metric never moved from its first value
    reason: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class EpochSelector:
    """Follows the monitored metric epoch by epoch; says when to stop and which epoch to keep."""

    monitor: str
    patience: int = 0  # 0: never stop early
    tie_breaker: str = TIE_BREAKER
    values: list[float] = field(default_factory=list)
    best_epoch: int = 0  # 1-based; 0 before the first epoch
    best_key: tuple[float, float] | None = None
    stale: int = 0  # epochs without improvement in the current phase, once the metric has moved

    def _key(self, logs: dict) -> tuple[float, float]:
        if self.monitor not in logs:
            raise KeyError(f"{self.monitor} is not among the epoch metrics ({', '.join(sorted(logs))})")
        value = float(logs[self.monitor])
        if not math.isfinite(value):
            value = -math.inf
        tie = float(logs.get(self.tie_breaker, math.nan))
        # Higher is better for both parts: the metric, then the negated loss (a loss that is
        # missing or NaN never wins a tie).
        return value, -tie if math.isfinite(tie) else -math.inf

    @property
    def moved(self) -> bool:
        return any(v != self.values[0] for v in self.values[1:])

    def new_phase(self) -> None:
        """A new phase (e.g. fine-tuning after the head) gets its own patience."""
        self.stale = 0

    def update(self, logs: dict) -> bool:
        """Record one epoch; True when this epoch is the new kept epoch (snapshot its weights)."""
        key = self._key(logs)
        self.values.append(key[0])
        epoch = len(self.values)
        if self.best_key is None or key >= self.best_key:  # a full tie goes to the later epoch
            self.best_key, self.best_epoch = key, epoch
            self.stale = 0
            return True
        if self.moved:
            self.stale += 1
        return False

    def replay(self, history: list[dict]) -> None:
        """Record the epochs of a resumed run's history rows, each phase with its own patience,
        so that the choice goes on as if the run had never stopped."""
        phase = None
        for row in history:
            if row["phase"] != phase:
                self.new_phase()
                phase = row["phase"]
            self.update(row)

    def should_stop(self) -> bool:
        return bool(self.patience) and self.moved and self.stale >= self.patience

    def selection(self) -> Selection:
        """The kept epoch and why. Call after the last epoch."""
        if not self.values:
            raise ValueError("no epoch was recorded")
        epochs, last = len(self.values), self.values[-1]
        name = self.monitor.removeprefix("val_").replace("_", " ")
        if not self.moved:
            return Selection(self.monitor, epochs, epochs, last, last, False, True,
                             f"validation {name} stayed at {last:.4f} since epoch 1: kept the last weights "
                             "(a flat metric cannot pick an epoch)")
        best = self.values[self.best_epoch - 1]
        if self.best_epoch == epochs:
            reason = f"the last epoch has the best validation {name} ({best:.4f})"
        else:
            reason = (f"best validation {name} {best:.4f} at epoch {self.best_epoch} "
                      f"(last epoch {epochs}: {last:.4f}); restored those weights")
        return Selection(self.monitor, self.best_epoch, epochs, best, last, self.best_epoch != epochs, False, reason)
