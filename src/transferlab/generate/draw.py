"""Drawing helpers of the synthetic plates (float32 RGB images in 0..255, masks in 0..1)."""

from __future__ import annotations

import functools

import cv2
import numpy as np


def _jitter(color: tuple[int, ...], rng: np.random.Generator, amount: float) -> np.ndarray:
    return np.clip(np.asarray(color, np.float32) + rng.normal(0, amount, 3), 0, 255).astype(np.float32)


def _rounded_mask(height: int, width: int, box: tuple[float, float, float, float], radius: float) -> np.ndarray:
    """0..1 mask of a filled rounded rectangle ``box`` = (x0, y0, x1, y1), anti-aliased corners."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    mask = np.zeros((height, width), np.uint8)
    r = int(round(max(0.0, min(radius, (x1 - x0) / 2 - 1, (y1 - y0) / 2 - 1))))
    cv2.rectangle(mask, (x0 + r, y0), (x1 - r, y1), 255, -1)
    cv2.rectangle(mask, (x0, y0 + r), (x1, y1 - r), 255, -1)
    if r > 0:
        for cx, cy in ((x0 + r, y0 + r), (x1 - r, y0 + r), (x0 + r, y1 - r), (x1 - r, y1 - r)):
            cv2.circle(mask, (cx, cy), r, 255, -1, cv2.LINE_AA)
    return mask.astype(np.float32) * (1 / 255)


def _rounded_outline(image: np.ndarray, box: tuple[float, float, float, float], radius: float,
                     thickness: float, color: np.ndarray) -> None:
    """Draw the outline of a rounded rectangle (its outer edge on ``box``) straight into ``image``."""
    t = max(1, int(round(thickness)))
    x0, y0, x1, y1 = box[0] + t / 2, box[1] + t / 2, box[2] - t / 2, box[3] - t / 2
    r = max(0.0, min(radius - t / 2, (x1 - x0) / 2, (y1 - y0) / 2))
    c = tuple(float(v) for v in color)
    pt = lambda x, y: (int(round(x)), int(round(y)))  # noqa: E731
    cv2.line(image, pt(x0 + r, y0), pt(x1 - r, y0), c, t)
    cv2.line(image, pt(x0 + r, y1), pt(x1 - r, y1), c, t)
    cv2.line(image, pt(x0, y0 + r), pt(x0, y1 - r), c, t)
    cv2.line(image, pt(x1, y0 + r), pt(x1, y1 - r), c, t)
    if r >= 1:
        axes = pt(r, r)
        for (cx, cy), start in (((x0 + r, y0 + r), 180), ((x1 - r, y0 + r), 270), ((x1 - r, y1 - r), 0),
                                ((x0 + r, y1 - r), 90)):
            cv2.ellipse(image, pt(cx, cy), axes, 0, start, start + 90, c, t)


def _paint(image: np.ndarray, mask: np.ndarray, color: np.ndarray, x: int = 0, y: int = 0,
           opacity: float = 1.0) -> None:
    """Blend ``color`` into ``image`` where ``mask`` (placed with its corner at x, y) is set."""
    height, width = image.shape[:2]
    h, w = mask.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    a = mask[y0 - y:y1 - y, x0 - x:x1 - x, None]
    if opacity != 1.0:
        a = a * opacity
    region = image[y0:y1, x0:x1]
    region += a * (np.asarray(color, np.float32) - region)


def _fit(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 mask resized to (width, height), as 0..1 float."""
    width, height = max(1, int(round(width))), max(1, int(round(height)))
    shrink = width < mask.shape[1] or height < mask.shape[0]
    resized = cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return resized.astype(np.float32) * (1 / 255)


def _low_freq(rng: np.random.Generator, height: int, width: int, cells: tuple[int, int]) -> np.ndarray:
    """Smooth random field in about -1..1 (a small noise grid upsampled)."""
    grid = rng.standard_normal(cells, dtype=np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


@functools.lru_cache(maxsize=16)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates scaled to -1..1 (x across the width, y down the height)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs / max(1, width - 1) * 2 - 1, ys / max(1, height - 1) * 2 - 1

