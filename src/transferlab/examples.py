"""A small, realistic classification example: wallpapers vs photo-like scenes.

The original question's second case: does ImageNet pretraining help to tell desktop
wallpapers (repeating patterns, flat colour fields, gradients) from photographs? This
module renders such a dataset deterministically from a seed, one folder per class, so the
pipeline and the study (``task: classification``) can run on it without a download:

    from transferlab.examples import make_classification_example
    make_classification_example("data/wallpapers", per_class=60, size=(64, 96), seed=0)

``wallpaper``: tiled motifs (stripes, checks, polka dots, damask-like waves) in a small
palette, sometimes with a soft gradient and print noise. ``photo``: outdoor scenes (sky
gradient, sun, hills, trees, houses with window grids) with sensor noise, vignetting and
slight blur. Both share colours and regular structure in places, so it is not trivial.

:func:`make_digits_folders` writes real data instead: scikit-learn's 1,797 handwritten
digits (shipped with scikit-learn, no download), one folder per digit, upscaled to RGB.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CLASSES = ("photo", "wallpaper")


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    hue = rng.uniform(0, 180)
    hues = (hue + rng.uniform(-40, 40, n)) % 180
    hsv = np.stack([hues, rng.uniform(60, 220, n), rng.uniform(90, 250, n)], axis=1).astype(np.uint8)
    return cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def _wallpaper(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    colors = _palette(rng, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(6, 18)
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    kind = rng.integers(4)
    if kind == 0:  # stripes
        mask = (np.floor(u / period) % 2).astype(np.float32)
    elif kind == 1:  # checks
        mask = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    elif kind == 2:  # polka dots
        du = (u % period) - period / 2
        dv = (v % period) - period / 2
        mask = (du**2 + dv**2 < (period * rng.uniform(0.2, 0.35)) ** 2).astype(np.float32)
    else:  # damask-like waves
        mask = 0.5 + 0.5 * np.sin(u / period * 2 * np.pi + 2 * np.sin(v / period * np.pi))
    image = colors[0] * (1 - mask[..., None]) + colors[1] * mask[..., None]
    if rng.random() < 0.5:  # a soft gradient over the pattern
        ramp = (yy / h)[..., None] if rng.random() < 0.5 else (xx / w)[..., None]
        image = image * (1 - 0.35 * ramp) + colors[2] * 0.35 * ramp
    image += rng.normal(0, rng.uniform(0, 6), image.shape)
    return image


def _photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    top = np.array([rng.uniform(60, 140), rng.uniform(120, 190), rng.uniform(190, 255)], np.float32)
    bottom = np.array([rng.uniform(180, 240), rng.uniform(190, 235), rng.uniform(200, 250)], np.float32)
    t = (yy / h)[..., None]
    image = top * (1 - t) + bottom * t
    sun = (rng.uniform(0, w), rng.uniform(0, h * 0.4))
    glow = np.exp(-((xx - sun[0]) ** 2 + (yy - sun[1]) ** 2) / (2 * (h * rng.uniform(0.05, 0.15)) ** 2))
    image += glow[..., None] * np.array([80, 70, 30], np.float32)
    horizon = h * rng.uniform(0.45, 0.7)
    for layer in range(rng.integers(1, 4)):  # hills, darker in front
        phase, freq, amp = rng.uniform(0, 6), rng.uniform(0.5, 3) / w * 2 * np.pi, h * rng.uniform(0.05, 0.2)
        line = horizon + layer * h * 0.08 + amp * np.sin(xx[0] * freq + phase) + rng.normal(0, 0.8, w).cumsum() * 0.3
        green = np.array([rng.uniform(30, 90), rng.uniform(80, 150), rng.uniform(20, 70)], np.float32) * (1 - 0.2 * layer)
        below = yy > line[None, :]
        image[below] = green + rng.normal(0, 12, (int(below.sum()), 3))
    image = image.clip(0, 255).astype(np.uint8)
    for _ in range(rng.integers(0, 3)):  # houses with a window grid
        bw, bh = int(w * rng.uniform(0.1, 0.25)), int(h * rng.uniform(0.15, 0.35))
        x0, y0 = int(rng.uniform(0, w - bw)), int(horizon - bh * rng.uniform(0.3, 0.9))
        wall = tuple(int(c) for c in rng.uniform(90, 230, 3))
        cv2.rectangle(image, (x0, y0), (x0 + bw, y0 + bh), wall, -1)
        for wy in range(y0 + 3, y0 + bh - 3, 6):
            for wx in range(x0 + 3, x0 + bw - 3, 6):
                cv2.rectangle(image, (wx, wy), (wx + 2, wy + 2), (40, 50, 70), -1)
    for _ in range(rng.integers(0, 4)):  # trees
        cx, cy = int(rng.uniform(0, w)), int(horizon + rng.uniform(-0.05, 0.2) * h)
        radius = max(2, int(h * rng.uniform(0.05, 0.12)))
        cv2.line(image, (cx, cy), (cx, cy + radius * 2), (70, 50, 30), max(1, radius // 3))
        cv2.circle(image, (cx, cy), radius, tuple(int(c) for c in (rng.uniform(20, 60), rng.uniform(70, 130), 30)), -1)
    image = image.astype(np.float32)
    vignette = 1 - 0.35 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2) * 2
    image *= vignette[..., None]
    image += rng.normal(0, rng.uniform(3, 10), image.shape)
    return cv2.GaussianBlur(image, (3, 3), rng.uniform(0.3, 1.0))


def render(class_name: str, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """One RGB uint8 image (height, width, 3) of ``class_name``."""
    h, w = size
    image = _wallpaper(rng, h, w) if class_name == "wallpaper" else _photo(rng, h, w)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_classification_example(folder: str | Path, per_class: int = 60, size: int | tuple[int, int] = (64, 96),
                                seed: int = 0) -> Path:
    """Write ``folder/<class>/NNNN.png`` (classes ``photo`` and ``wallpaper``); same seed, same files."""
    folder = Path(folder)
    height, width = (size, size) if isinstance(size, int) else size
    for c, name in enumerate(CLASSES):
        rng = np.random.default_rng([seed, c])
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = render(name, rng, (height, width))
            cv2.imwrite(str(folder / name / f"{i:04d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return folder


def make_digits_folders(root: str | Path, size: int = 64) -> Path:
    """Write scikit-learn's handwritten digits as ``root/<digit>/<index>.png`` (RGB uint8, ``size`` square).

    The 8x8 scans (ink 0..16) are stretched to 0..255 and upscaled with bicubic interpolation,
    so strokes stay smooth rather than blocky; no randomness, so the same files every time.
    ``index`` is the sample's position in ``load_digits()`` (1,797 images, about 180 per digit).
    """
    from sklearn.datasets import load_digits  # scikit-learn imports slowly; only this needs it

    root = Path(root)
    digits = load_digits()
    for index, (scan, digit) in enumerate(zip(digits.images, digits.target)):
        gray = cv2.resize((scan * (255.0 / 16.0)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)  # bicubic overshoots a little at strokes
        folder = root / str(int(digit))
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{index:04d}.png"), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    return root
