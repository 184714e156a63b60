"""Stage ``augment``: an imgaug pipeline whose every component scales with one strength.

One knob (``augment.strength`` in [0, 1]) instead of a dozen makes "is augmentation too
strong?" a one-dimensional question that a preview grid and a tuning study can answer.
Strength 0 returns the images untouched; strength 1 is deliberately harsh (characters
start to become illegible), which is the regime the original question probably hit.

``augment.mode`` says when the ``copies`` variants per image are drawn: ``offline``, once, by
this stage (every epoch trains on the same ones), or ``per_epoch``, afresh for every epoch
by the training engine (:func:`epoch_images`; this stage then writes no copy, only the
pointer to the split and the preview). An epoch holds as many images either way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.config import AugmentConfig, Params
from transferlab.data.arrays import IMAGES_FILE, LABELS_FILE, POINTER_FILE
from transferlab.augment.imgaug_compat import iaa
from transferlab.io import atomic_output_dir, write_json
from transferlab.data.prepared import load_split, read_meta, with_recipe

PREVIEW_FILE = "preview.png"

# Each component's range at strength 1; strength s multiplies every range by s.
MAX_NOISE_SCALE = 0.12 * 255  # AdditiveGaussianNoise, as in the original question
MAX_BLUR_SIGMA = 1.6
MAX_ROTATE_DEGREES = 12.0
MAX_SHEAR_DEGREES = 12.0
MAX_SCALE_CHANGE = 0.15
MAX_TRANSLATE = 0.08  # fraction of the image size
MAX_PERSPECTIVE = 0.08
MAX_CONTRAST_CHANGE = 0.6
MAX_BRIGHTNESS_CHANGE = 0.5
MAX_DROPOUT = 0.12  # fraction of pixels in coarse rectangles


def build_pipeline(strength: float, seed: int) -> iaa.Sequential:
    """The augmenter at ``strength`` (> 0), seeded so the same call gives the same images."""
    s = float(strength)
    pipeline = iaa.Sequential(
        [
            iaa.Affine(
                rotate=(-MAX_ROTATE_DEGREES * s, MAX_ROTATE_DEGREES * s),
                shear=(-MAX_SHEAR_DEGREES * s, MAX_SHEAR_DEGREES * s),
                scale=(1 - MAX_SCALE_CHANGE * s, 1 + MAX_SCALE_CHANGE * s),
                translate_percent=(-MAX_TRANSLATE * s, MAX_TRANSLATE * s),
                mode="edge",  # replicate the border: black wedges would be an artefact no camera makes
            ),
            iaa.PerspectiveTransform(scale=(0.0, MAX_PERSPECTIVE * s), keep_size=True),
            iaa.LinearContrast((1 - MAX_CONTRAST_CHANGE * s, 1 + MAX_CONTRAST_CHANGE * s)),
            iaa.Multiply((1 - MAX_BRIGHTNESS_CHANGE * s, 1 + MAX_BRIGHTNESS_CHANGE * s)),
            iaa.GaussianBlur(sigma=(0.0, MAX_BLUR_SIGMA * s)),
            iaa.AdditiveGaussianNoise(scale=(0.0, MAX_NOISE_SCALE * s)),
            iaa.CoarseDropout(p=(0.0, MAX_DROPOUT * s), size_percent=(0.05, 0.2)),
        ]
    )
    # seed_ reseeds every child; a seed given to Sequential alone would leave the
    # children drawing from imgaug's global generator (not reproducible).
    pipeline.seed_(seed)
    return pipeline


def augment_images(images: np.ndarray, strength: float, seed: int) -> np.ndarray:
    """Augment a uint8 batch (N, H, W, 3) in memory; strength 0 returns the input unchanged.

    This is the function the tuning stage calls per trial and epoch, without writing files.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if strength == 0.0 or len(images) == 0:
        return images
    return np.asarray(build_pipeline(strength, seed)(images=np.ascontiguousarray(images)), dtype=np.uint8)


def epoch_seed(seed: int, epoch: int, copy: int) -> int:
    """imgaug's seed for variant ``copy`` (1-based) of epoch ``epoch`` (0-based, counted over all
    phases): a function of these alone, so a resumed run draws what an uninterrupted one did."""
    return int(np.random.SeedSequence([seed, epoch, copy]).generate_state(1)[0] >> 1)


def epoch_images(images: np.ndarray, cfg: AugmentConfig, epoch: int) -> np.ndarray:
    """Per-epoch augmentation: epoch ``epoch``'s training images, the originals followed by
    ``cfg.copies`` fresh variants of each (the layout of :func:`augmented_training_set`, whose
    labels, the originals' repeated, fit them), seeded by ``(cfg.seed, epoch, copy)``."""
    images = np.asarray(images)
    if not cfg.augments:
        return images
    return np.concatenate([images, *(augment_images(images, cfg.strength, epoch_seed(cfg.seed, epoch, copy))
                                     for copy in range(1, cfg.copies + 1))])


def augmented_training_set(images: np.ndarray, labels: np.ndarray, cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """The originals followed by ``cfg.copies`` augmented variants of each, with provenance
    (offline copies; see :func:`epoch_images` for ``augment.mode: per_epoch``)."""
    parts, label_parts, rows = [np.asarray(images)], [labels], []
    rows.append(pd.DataFrame({"source_index": np.arange(len(images)), "copy": 0}))
    for copy in range(1, cfg.copies + 1 if cfg.strength > 0 else 1):
        parts.append(augment_images(np.asarray(images), cfg.strength, seed=cfg.seed + copy))
        label_parts.append(labels)
        rows.append(pd.DataFrame({"source_index": np.arange(len(images)), "copy": copy}))
        print(f"augment: copy {copy}/{cfg.copies} done ({len(images)} images)")
    return np.concatenate(parts), np.concatenate(label_parts), pd.concat(rows, ignore_index=True)


def save_preview(images: np.ndarray, cfg: AugmentConfig, path: str | Path) -> None:
    """A grid: the same training images (rows) at every preview strength (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = np.asarray(images[: cfg.preview_images])
    strengths = cfg.preview_strengths
    height, width = picks.shape[1:3]
    cell_width = 2.2  # inches; the cell height follows the images' aspect ratio
    fig, axes = plt.subplots(len(picks), len(strengths), squeeze=False,
                             figsize=(len(strengths) * cell_width, len(picks) * (cell_width * height / width + 0.1) + 0.6))
    for col, strength in enumerate(strengths):
        variants = augment_images(picks, strength, seed=cfg.seed)
        for row, image in enumerate(variants):
            ax = axes[row][col]
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                marker = " (used)" if strength == cfg.strength else ""
                ax.set_title(f"strength {strength:g}{marker}", fontsize=9)
    fig.suptitle(f"Augmentation preview; this run uses strength {cfg.strength:g}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def writes_copies(cfg: AugmentConfig) -> bool:
    """Whether this stage writes augmented copies (``copies`` > 0 at a strength above 0, mode offline)."""
    return cfg.augments and not cfg.per_epoch


def run(params: Params) -> dict:
    """Write the augmented training set (or, with nothing to augment, a pointer) and the preview grid.

    Without copies the training set is the prepared split itself: a second copy of its
    arrays would only double the disk and DVC cache, so :data:`POINTER_FILE` names the split
    (and its fingerprint) and :func:`transferlab.data.arrays.load_prepared` follows it. So
    does ``augment.mode: per_epoch``, whose variants the training engine draws every epoch.
    """
    params, _ = with_recipe(params)  # in-domain transfer: augment.copies from the real training set's size
    cfg = params.augment
    train = load_split(params.split.output, "train")
    drawn_here = cfg.model_copy(update={"copies": 0}) if cfg.per_epoch else cfg  # per_epoch: the originals only
    images, labels, provenance = augmented_training_set(train.images, train.labels, drawn_here)
    with atomic_output_dir(cfg.output) as out:
        if writes_copies(cfg):
            np.save(out / IMAGES_FILE, images)
            np.save(out / LABELS_FILE, labels)
        else:
            fingerprint = read_meta(params.split.output)["fingerprints"]["train"]
            write_json(out / POINTER_FILE, {"split": str(params.split.output), "fingerprint": fingerprint})
        provenance.to_csv(out / "train.csv", index=False)
        save_preview(train.images, cfg, out / PREVIEW_FILE)
        summary = {"strength": cfg.strength, "copies": cfg.copies, "mode": cfg.mode, "seed": cfg.seed,
                   "train_images": len(images), "images_per_epoch": len(train.images) * cfg.images_per_original}
        write_json(out / "summary.json", summary)
    if cfg.per_epoch:
        print(f"augment: per_epoch: train draws {cfg.copies} fresh variants of each of the {len(images)} training "
              f"images every epoch at strength {cfg.strength:g} ({summary['images_per_epoch']} images an epoch); "
              f"no copy written, {cfg.output}/{POINTER_FILE} points to the originals")
    elif writes_copies(cfg):
        print(f"augment: wrote {len(images)} training images to {cfg.output} ({len(train.images)} originals and "
              f"{cfg.copies} augmented copies of each at strength {cfg.strength:g})")
    else:  # a pointer, not images: saying "wrote N images" would send users looking for a copy
        print(f"augment: nothing to augment (copies {cfg.copies}, strength {cfg.strength:g}): train reads the "
              f"{len(images)} training images of {params.split.output} as they are (no copy written, "
              f"{cfg.output}/{POINTER_FILE} points to them)")
    return summary
