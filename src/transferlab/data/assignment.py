"""Which split each row goes to: seeded, stratified by class, or leakage-free by plate string.

The task object (:mod:`transferlab.tasks`) picks one; the split stage writes the result.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from transferlab.errors import TransferlabError


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """Image counts of (train, val, test) for n images; validation and test get at least one,
    except a test fraction of 0 (the test split comes from data.test_source)."""
    n_val = max(1, round(n * val_fraction))
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    return n - n_val - n_test, n_val, n_test


def min_images_for_split(val_fraction: float, test_fraction: float) -> int:
    """Smallest group size that leaves at least one image in every split drawn from it."""
    n = 2
    while split_sizes(n, val_fraction, test_fraction)[0] < 1:
        n += 1
    return n


def stratified_assignment(labels: pd.Series, val_fraction: float, test_fraction: float,
                          rng: np.random.Generator) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per image, the same fractions within every class."""
    needed = min_images_for_split(val_fraction, test_fraction)
    counts = labels.value_counts().sort_index()
    too_small = counts[counts < needed]
    if not too_small.empty:
        listed = ", ".join(f"{name!r} has {count}" for name, count in too_small.items())
        fractions = f"split.val_fraction={val_fraction}"
        if test_fraction:
            fractions += f" and split.test_fraction={test_fraction}"
        raise TransferlabError(
            f"class(es) with too few images for the split: {listed}; each class needs at least {needed} images for {fractions}"
        )
    assignment = np.zeros(len(labels), dtype=np.int64)
    for name in counts.index:  # sorted class order keeps the rng sequence reproducible
        members = rng.permutation(np.flatnonzero(labels.to_numpy() == name))
        _, n_val, n_test = split_sizes(len(members), val_fraction, test_fraction)
        assignment[members[:n_val]] = 1
        assignment[members[n_val:n_val + n_test]] = 2
    return assignment


def leakage_free_assignment(texts: pd.Series, val_fraction: float, test_fraction: float,
                            rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Random split, then every plate string moved to the split holding most of its copies.

    Returns the assignment and how many images were moved to remove the leakage.
    """
    n = len(texts)
    needed = min_images_for_split(val_fraction, test_fraction)
    if n < needed:
        raise TransferlabError(f"the dataset has {n} images; at least {needed} are needed for the split fractions")
    _, n_val, n_test = split_sizes(n, val_fraction, test_fraction)
    order = rng.permutation(n)
    assignment = np.zeros(n, dtype=np.int64)
    assignment[order[:n_val]] = 1
    assignment[order[n_val:n_val + n_test]] = 2
    moved = 0
    for _, members in pd.Series(np.arange(n)).groupby(texts.to_numpy()):
        where = assignment[members.to_numpy()]
        if len(set(where)) > 1:
            target = Counter(where.tolist()).most_common(1)[0][0]  # ties: the first seen split
            moved += int((where != target).sum())
            assignment[members.to_numpy()] = target
    if len(set(assignment)) < (3 if n_test else 2):
        filled = "train, validation and test" if n_test else "train and validation"
        raise TransferlabError(f"too few distinct plate strings to fill {filled} without leakage")
    return assignment, moved
