"""Decoding images from disk: one function for every stage and for prediction."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class UnreadableImageError(ValueError):
    """The file is missing or is not an image OpenCV can decode."""


def read_rgb(path: str | Path, height: int | None, width: int | None) -> np.ndarray:
    """Decode any image (RGB, grayscale, with alpha) to uint8 RGB of shape (height, width, 3)
    (at its own size when ``height`` is None).

    Plates are crops, so the image is stretched to the model's size rather than letterboxed
    (the convention of plate-OCR trainers). INTER_AREA avoids aliasing when shrinking.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)  # fromfile + imdecode also handles non-ASCII paths
    except OSError as exc:
        reason = "file not found" if not path.exists() else f"cannot read file ({exc.strerror})"
        raise UnreadableImageError(reason) from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR_RGB) if data.size else None
    if image is None:
        raise UnreadableImageError("not a readable image (empty, truncated or unknown format)")
    return image if height is None else resize_to(image, height, width)


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Stretch a crop to (height, width) as every stage does; INTER_AREA when shrinking."""
    interpolation = cv2.INTER_AREA if image.shape[0] >= height else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)
