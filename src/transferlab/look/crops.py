"""The two sides the look stage compares: real training crops and renders of a look."""

from __future__ import annotations

import numpy as np

from transferlab.config import Params
from transferlab.data.images import read_rgb, resize_to


def training_crops(params: Params) -> tuple[np.ndarray, tuple[int, int]]:
    """Up to ``look.samples`` crops of the training split (the split stage's own seeded assignment,
    so no validation or test crop shapes the look) at the working size, and the render size:
    the crops' median height (at most the working height) and their median aspect."""
    from transferlab.data.datasets import load_dataset

    dataset = load_dataset(params)
    fractions = (params.split.val_fraction, 0.0 if params.data.test_source else params.split.test_fraction)
    assignment, _ = params.kind.assign_splits(dataset.frame["label"], *fractions,
                                              np.random.default_rng(params.split.seed))
    train = np.flatnonzero(assignment == 0)
    pick = np.sort(np.random.default_rng(params.look.seed).permutation(train)[:params.look.samples])
    shapes = np.array([read_rgb(path, None, None).shape[:2] for path in dataset.frame["file"].iloc[pick]])
    height, width = np.median(shapes, axis=0)
    render_height = int(min(params.data.image_height, max(16, round(height))))
    render_width = int(max(16, round(render_height * width / height)))
    return dataset.images[pick], (render_height, render_width)


def render_look(params: Params, count: int, seed: int) -> np.ndarray:
    """``count`` plates in ``params.generate``'s look with the labels' formats, at the working size.

    The same ``seed`` gives every look the same plate texts and random draws where the looks
    agree, so two looks' distances differ by their look, not by their luck.
    """
    from transferlab.generate.formats import generator_label_model
    from transferlab.generate.render import render_sample

    generate = params.generate.model_copy(update={"seed": seed})
    labels = generator_label_model(params)
    height, width = params.data.image_height, params.data.image_width
    return np.stack([resize_to(render_sample(generate, params.plates.alphabet, i, labels)[1], height, width)
                     for i in range(count)])
