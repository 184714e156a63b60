"""Plate text <-> per-slot class indices.

A plate is read by one softmax head per character slot. Plates shorter than the
number of slots are right-padded with the pad symbol, which is then one more class
of every head; when every plate fills all slots the pad class is never used and the
heads keep exactly ``len(alphabet)`` classes (7 heads x 35 classes by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transferlab.config import AUTO, FORMAT_SEPARATORS, PlatesConfig
from transferlab.errors import TransferlabError


class LabelError(ValueError):
    """A plate label that the configured alphabet and slots cannot represent."""


@dataclass(frozen=True)
class PlateCodec:
    alphabet: str
    slots: int
    pad_char: str
    variable_length: bool

    @classmethod
    def from_config(cls, cfg: PlatesConfig) -> PlateCodec:
        if AUTO in (cfg.alphabet, cfg.slots):
            raise TransferlabError("plates.alphabet / plates.slots auto is not resolved: "
                                   "load the params with load_params or transferlab.generate.formats.resolve_plates")
        return cls(cfg.alphabet, cfg.slots, cfg.pad_char, cfg.variable_length)

    def label_of(self, text: str) -> str:
        """The label characters of a plate text as written: separators (space, '-') that are
        not alphabet symbols only shape the plate, like in the generator's formats."""
        return "".join(c for c in text.strip() if c not in FORMAT_SEPARATORS or c in self.alphabet)

    @property
    def symbols(self) -> str:
        """Class index -> character, for every head."""
        return self.alphabet + self.pad_char if self.variable_length else self.alphabet

    @property
    def num_classes(self) -> int:
        return len(self.symbols)

    def check(self, text: str) -> None:
        """Raise LabelError saying what is wrong with ``text``."""
        if not text:
            raise LabelError("empty plate text")
        unknown = sorted({c for c in text if c not in self.alphabet})
        if unknown:
            raise LabelError(f"characters {''.join(unknown)!r} are not in the alphabet {self.alphabet!r}")
        if len(text) > self.slots:
            raise LabelError(f"{len(text)} characters but the model reads at most {self.slots} (plates.slots)")
        if len(text) < self.slots and not self.variable_length:
            raise LabelError(
                f"{len(text)} characters but every plate must have {self.slots} (or set plates.variable_length: true)"
            )

    def encode(self, text: str) -> np.ndarray:
        """Plate text -> int array of shape (slots,)."""
        self.check(text)
        padded = text.ljust(self.slots, self.pad_char)
        return np.array([self.symbols.index(c) for c in padded], dtype=np.int64)

    def encode_many(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.encode(t) for t in texts]) if texts else np.zeros((0, self.slots), np.int64)

    def decode(self, indices: np.ndarray) -> str:
        """Class indices of one plate -> text, pad symbols removed."""
        return "".join(self.symbols[int(i)] for i in indices).replace(self.pad_char, "")
