"""The training batches of each epoch, in an order that depends on the epoch's number alone.

Keras' own ``shuffle=True`` draws every epoch's order from a random state that lives in the
running process (a TensorFlow kernel's, or NumPy's on JAX) and no checkpoint holds, so a run
resumed after epoch 2 trained its epoch 3 on another order than an uninterrupted run did, and
ended with other weights. Here epoch ``e``'s order is a permutation seeded by ``(seed, e)``:
a resumed run draws exactly the orders the uninterrupted one would have.

One generator serves all the epochs of a ``fit`` call in sequence (with ``steps_per_epoch``
Keras keeps reading it across epochs): the order cannot depend on when Keras' per-epoch hooks
run, which its input pipeline's read-ahead does not wait for.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def steps_per_epoch(count: int, batch_size: int) -> int:
    return max(1, -(-count // batch_size))


def epoch_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, first_epoch: int,
                  epochs: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(x, y)`` batches of epochs ``first_epoch`` to ``epochs - 1`` (0-based, counted over all
    phases), each epoch in the order seeded by ``(seed, epoch)``. Pass it to ``fit`` with
    ``steps_per_epoch=steps_per_epoch(len(x), batch_size)``."""
    for epoch in range(first_epoch, epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(x))
        for start in range(0, steps_per_epoch(len(x), batch_size) * batch_size, batch_size):
            rows = np.sort(order[start:start + batch_size])  # sorted: reads memory in sequence
            yield x[rows], y[rows]
