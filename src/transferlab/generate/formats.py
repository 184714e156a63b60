"""What a dataset's plate labels look like, and synthetic labels that look the same.

``infer_label_model(labels)`` reads plate texts (the ``plate_text`` column of a plate CSV)
and keeps what a generator needs to imitate them: the symbols used, the slot count (the
longest label), the lengths, and one *pattern* per layout of letters, digits and
separators (``AB-1234`` -> ``@@-####``) with its frequency and per-position character counts.

Rules, so that the inferred formats are predictable:

- ``#`` is a digit, ``@`` a letter (whatever ``str.isalpha`` accepts: province glyphs too),
  ``*`` any other symbol. Space and ``-`` are separators: they shape the pattern (and the
  rendered plate) but are never label characters, unless an explicit alphabet holds ``-``.
- Symbols are sorted digits, then letters, then the rest, each by code point, so the same
  labels always give the same alphabet (and the same class indices).
- A pattern's format shows a position as a literal character when one character fills it in
  at least 95 % of the pattern's labels and the pattern has at least 20 labels: the position
  does not vary in practice. Less regular positions stay placeholders ('A' in 89.5 % of the
  plates stays ``@``); the sampler still draws 'A' there 89.5 % of the time.
- Sampling draws a pattern by its frequency, then every character from the pattern's counts
  at that position, smoothed towards the same position of all labels (same kind of
  character) with the weight of 4 labels: a pattern seen twice does not just replay its two
  labels, one seen 1,000 times is not changed visibly, and only symbols of the labels occur.
  Literal positions are not smoothed: they draw only what the pattern shows there.
- ``sample_uniform_plate`` keeps a pattern's layout and literals but draws every other
  character uniformly from the symbols of the kinds the labels show at that position (over
  the labels of its length). Real sets are skewed (886 of 1,000 Chinese plates start 'A'):
  a share of such plates lets pretraining see every symbol everywhere it can occur.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from transferlab.config import (
    AUTO,
    FORMAT_ANY,
    FORMAT_DIGIT,
    FORMAT_LETTER,
    FORMAT_SEPARATORS,
    Params,
    parse_params,
)
from transferlab.data.datasets import plate_csv_path
from transferlab.errors import TransferlabError

LITERAL_SHARE = 0.95  # a position is shown as a literal when one character fills this share of it ...
LITERAL_MIN_LABELS = 20  # ... in a pattern seen at least this often (3 of 3 is chance, not a rule)
PRIOR_LABELS = 4.0  # weight, in labels, of the all-labels distribution a pattern's counts are smoothed towards
PLACEHOLDERS = FORMAT_DIGIT + FORMAT_LETTER + FORMAT_ANY


def symbol_key(c: str) -> tuple[int, str]:
    """Sort key of the alphabet: digits, letters, other symbols; each by code point."""
    return (0 if c.isdigit() else 1 if c.isalpha() else 2, c)


def char_class(c: str) -> str:
    """The format placeholder of one label character."""
    return FORMAT_DIGIT if c.isdigit() else FORMAT_LETTER if c.isalpha() else FORMAT_ANY


@dataclass(frozen=True)
class PlatePattern:
    """Labels of one layout: ``skeleton`` holds placeholders and separators (``@@-####``)."""

    skeleton: str
    count: int
    positions: tuple[dict[str, int], ...]  # per label character: {character: labels}

    def literal(self, position: int) -> str | None:
        """The character that fills ``position`` in practice (see the module's rules), else None."""
        counts = self.positions[position]
        top = _most_common(counts)
        fixed = self.count >= LITERAL_MIN_LABELS and counts[top] >= LITERAL_SHARE * self.count
        return top if fixed and top not in PLACEHOLDERS + FORMAT_SEPARATORS else None

    @property
    def format(self) -> str:
        """The skeleton with the literal characters of the positions that do not vary."""
        return _fill(self.skeleton, [self.literal(i) for i in range(len(self.positions))])

    @property
    def example(self) -> str:
        """The most common character at every position, with the separators."""
        return _fill(self.skeleton, [_most_common(c) for c in self.positions])


def _sorted_counts(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: symbol_key(kv[0])))


def _most_common(counts: dict[str, int]) -> str:
    return max(sorted(counts, key=symbol_key), key=counts.__getitem__)


def _fill(skeleton: str, chars: list[str | None]) -> str:
    """``skeleton`` with its label positions replaced by ``chars`` (None keeps the placeholder)."""
    it = iter(chars)
    return "".join(c if c in FORMAT_SEPARATORS else (next(it) or c) for c in skeleton)


@dataclass(frozen=True)
class LabelModel:
    """The plate labels of a dataset, summarised; ``to_dict`` is what gets recorded."""

    patterns: tuple[PlatePattern, ...]  # most frequent first

    @property
    def labels(self) -> int:
        return sum(p.count for p in self.patterns)

    @property
    def alphabet(self) -> str:
        return "".join(sorted({c for p in self.patterns for counts in p.positions for c in counts}, key=symbol_key))

    @property
    def lengths(self) -> dict[int, int]:
        lengths: Counter[int] = Counter()
        for p in self.patterns:
            lengths[len(p.positions)] += p.count
        return dict(sorted(lengths.items()))

    @property
    def slots(self) -> int:
        return max(self.lengths)

    @property
    def variable_length(self) -> bool:
        return len(self.lengths) > 1

    @property
    def formats(self) -> list[str]:
        return [p.format for p in self.patterns]

    @property
    def weights(self) -> list[float]:
        return [p.count / self.labels for p in self.patterns]

    def position_counts(self) -> list[dict[str, int]]:
        """{character: labels} per label position over all labels (e.g. position 1: {'A': 895, ...})."""
        totals: list[Counter[str]] = [Counter() for _ in range(self.slots)]
        for p in self.patterns:
            for i, counts in enumerate(p.positions):
                totals[i].update(counts)
        return [_sorted_counts(t) for t in totals]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the summary first, then every pattern with its counts."""
        return {
            "labels": self.labels, "alphabet": self.alphabet, "slots": self.slots,
            "variable_length": self.variable_length, "lengths": {str(k): v for k, v in self.lengths.items()},
            "patterns": [{"format": p.format, "skeleton": p.skeleton, "count": p.count,
                          "weight": round(p.count / self.labels, 6), "positions": [dict(c) for c in p.positions]}
                         for p in self.patterns],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelModel:
        return cls(tuple(PlatePattern(p["skeleton"], int(p["count"]), tuple(dict(c) for c in p["positions"]))
                         for p in data["patterns"]))

    @functools.cached_property
    def _tables(self) -> tuple[np.ndarray, list[list[tuple[str, np.ndarray]]]]:
        """Cumulative probabilities: of the patterns, and of the symbols at every pattern position."""
        at: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)  # (position, class) over all labels
        anywhere: dict[str, Counter[str]] = defaultdict(Counter)
        for p in self.patterns:
            for i, counts in enumerate(p.positions):
                for c, n in counts.items():
                    at[i, char_class(c)][c] += n
                    anywhere[char_class(c)][c] += n
        tables = []
        for p in self.patterns:
            placeholders = [c for c in p.skeleton if c not in FORMAT_SEPARATORS]
            rows = []
            for i, (counts, cls) in enumerate(zip(p.positions, placeholders)):
                prior = Counter() if p.literal(i) else at[i, cls] or anywhere[cls]  # a literal is a rule: not smoothed
                total = sum(prior.values()) or 1
                symbols = sorted(set(counts) | set(prior), key=symbol_key)
                weight = np.array([counts.get(s, 0) + PRIOR_LABELS * prior[s] / total for s in symbols])
                rows.append(("".join(symbols), _cumulative(weight)))
            tables.append(rows)
        return _cumulative(np.array([p.count for p in self.patterns], float)), tables


    @functools.cached_property
    def _uniform_symbols(self) -> list[list[str | None]]:
        """Per pattern and position: the literal, or every symbol of the kinds seen at that position."""
        kinds: dict[tuple[int, int], set[str]] = defaultdict(set)  # (length, position) -> placeholders seen
        for p in self.patterns:
            for i, counts in enumerate(p.positions):
                kinds[len(p.positions), i].update(char_class(c) for c in counts)
        by_kind: dict[str, str] = defaultdict(str)
        for c in self.alphabet:
            by_kind[char_class(c)] += c
        return [[p.literal(i) or "".join(by_kind[k] for k in sorted(kinds[len(p.positions), i]))
                 for i in range(len(p.positions))] for p in self.patterns]


def _cumulative(weights: np.ndarray) -> np.ndarray:
    cum = np.cumsum(weights / weights.sum())
    cum[-1] = 1.0  # rng.random() < 1: the last entry is always reachable, never overrun
    return cum


def label_skeleton(text: str, separators: str = FORMAT_SEPARATORS) -> tuple[str, str]:
    """(label characters, skeleton) of one label: ``'AB-12'`` -> ``('AB12', '@@-##')``."""
    text = text.strip()
    chars = "".join(c for c in text if c not in separators)
    skeleton = "".join(c if c in separators else char_class(c) for c in text)
    return chars, skeleton


def infer_label_model(labels: Iterable[str], separators: str = FORMAT_SEPARATORS) -> LabelModel:
    """Summarise plate labels (empty ones are ignored); ``separators`` are never label characters."""
    groups: dict[str, list[str]] = defaultdict(list)
    for text in labels:
        chars, skeleton = label_skeleton(text, separators)
        if chars:
            groups[skeleton].append(chars)
    if not groups:
        raise TransferlabError("no plate label to learn the format from (every label is empty)")
    patterns = [PlatePattern(skeleton, len(texts), tuple(_sorted_counts(Counter(column)) for column in zip(*texts)))
                for skeleton, texts in groups.items()]
    patterns.sort(key=lambda p: (-p.count, p.skeleton))
    return LabelModel(tuple(patterns))


def _draw_pattern(model: LabelModel, rng: np.random.Generator) -> int:
    """The index of one pattern, drawn by how often the labels follow it."""
    return int(np.searchsorted(model._tables[0], rng.random(), side="right"))


def sample_plate(model: LabelModel, rng: np.random.Generator) -> tuple[str, str]:
    """One synthetic plate like the model's labels: (label characters, text with separators)."""
    k = _draw_pattern(model, rng)
    chars = [symbols[int(np.searchsorted(cum, rng.random(), side="right"))] for symbols, cum in model._tables[1][k]]
    return "".join(chars), _fill(model.patterns[k].skeleton, chars)


def sample_uniform_plate(model: LabelModel, rng: np.random.Generator) -> tuple[str, str]:
    """One plate in a pattern of the labels (drawn by frequency) with uniformly drawn characters."""
    k = _draw_pattern(model, rng)
    chars = [symbols[int(rng.integers(len(symbols)))] for symbols in model._uniform_symbols[k]]
    return "".join(chars), _fill(model.patterns[k].skeleton, chars)


def sample_labels(model: LabelModel, n: int, seed: int, separators: bool = True) -> list[str]:
    """``n`` seeded synthetic labels, written like the input labels (``separators=False``: characters only)."""
    rng = np.random.default_rng(seed)
    return [sample_plate(model, rng)[1 if separators else 0] for _ in range(n)]


# --------------------------------------------------------------------------------------
# params.yaml: plates.alphabet / plates.slots / generate.formats set to auto


def read_plate_labels(source: str, key: str) -> list[str]:
    """The plate_text column of the plate CSV ``source``; errors name ``key`` (the auto that needs it)."""
    csv = plate_csv_path(source)
    why = f"{key}: auto reads the plate_text column of data.source, but {csv}"
    if not csv.is_file():
        raise TransferlabError(f"{why} is not a file")
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TransferlabError(f"{why} is not a readable CSV: {exc}") from None
    if "plate_text" not in frame.columns:
        raise TransferlabError(f"{why} has none (columns: {', '.join(frame.columns) or 'none'})")
    return frame["plate_text"].tolist()


def _separators(alphabet: str) -> str:
    """Separators of labels: space and '-', unless an explicit alphabet makes '-' a character."""
    return FORMAT_SEPARATORS if alphabet == AUTO else "".join(c for c in FORMAT_SEPARATORS if c not in alphabet)


def _model_of_source(params: Params, key: str) -> LabelModel:
    labels = read_plate_labels(params.data.source, key)
    try:
        return infer_label_model(labels, _separators(params.plates.alphabet))
    except TransferlabError as exc:
        raise TransferlabError(f"{key}: auto: {plate_csv_path(params.data.source)}: {exc}") from None


def resolve_plates(params: Params) -> Params:
    """``params`` with ``plates.alphabet`` / ``plates.slots`` ``auto`` replaced by what data.source's labels show.

    The alphabet becomes the symbols of the labels, the slots the longest label; with
    ``slots: auto`` and labels of different lengths ``variable_length`` becomes true (a
    model reading them needs the pad class). Idempotent: params without auto come back as they are.
    """
    plates = params.plates
    autos = [name for name in ("alphabet", "slots") if getattr(plates, name) == AUTO]
    if not autos:
        return params
    key = f"plates.{autos[0]}"
    model = _model_of_source(params, key)
    resolved = plates.model_dump()
    if plates.alphabet == AUTO:
        if plates.pad_char in model.alphabet:
            raise TransferlabError(f"plates.alphabet: auto: the labels of data.source use the pad character "
                                   f"{plates.pad_char!r}: set plates.pad_char to a symbol they do not use")
        resolved["alphabet"] = model.alphabet
    if plates.slots == AUTO:
        resolved["slots"] = model.slots
        resolved["variable_length"] = plates.variable_length or model.variable_length
    raw = params.model_dump()
    raw["plates"] = resolved
    return parse_params(raw, f"{key}: auto (from the labels of {plate_csv_path(params.data.source)})")


def plates_record(params: Params) -> dict[str, Any]:
    """The resolved plate settings a run depends on (for metrics, meta.json and MLflow)."""
    plates = resolve_plates(params).plates
    return {"alphabet": plates.alphabet, "slots": plates.slots, "variable_length": plates.variable_length}


def generator_label_model(params: Params) -> LabelModel | None:
    """The labels ``generate.formats: auto`` imitates: data.source's; None where the explicit formats
    (or, with nothing to imitate, the built-in ones) are used."""
    if params.generate.formats != AUTO or not params.kind.plate_strings or params.reads_generator_output:
        return None
    return _model_of_source(params, "generate.formats")
