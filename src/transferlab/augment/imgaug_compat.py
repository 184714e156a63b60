"""Import imgaug 0.4.0 on NumPy 2.

imgaug 0.4.0 (the last release) reads NumPy aliases that NumPy 2 removed: ``np.sctypes``
at import time and ``np.complex`` in a few parameters. Restoring those aliases, before
imgaug is imported, is enough for every augmenter transferlab uses. Import imgaug only
through this module: ``from transferlab.augment.imgaug_compat import iaa``.
"""

import numpy as np

if not hasattr(np, "sctypes"):
    np.sctypes = {
        "int": [np.int8, np.int16, np.int32, np.int64],
        "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
        "float": [np.float16, np.float32, np.float64],
        "complex": [np.complex64, np.complex128],
        "others": [bool, object, bytes, str, np.void],
    }
if not hasattr(np, "complex"):
    np.complex = complex
if not hasattr(np, "bool"):
    np.bool = bool

import imgaug  # noqa: E402  (the aliases above must exist first)
import imgaug.augmenters as iaa  # noqa: E402

__all__ = ["iaa", "imgaug"]
