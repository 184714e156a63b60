import cv2
import numpy as np
from sklearn.datasets import load_digits

from transferlab.examples import make_digits_folders
from transferlab.data.images import read_rgb

# scikit-learn's digits: images per digit 0..9 (1,797 in all).
DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_folders_hold_every_digit_as_smooth_rgb_and_are_deterministic(tmp_path):
    root = make_digits_folders(tmp_path / "a", size=32)
    assert sorted(p.name for p in root.iterdir()) == [str(d) for d in range(10)]
    assert [len(list((root / str(d)).glob("*.png"))) for d in range(10)] == DIGIT_COUNTS

    raw = cv2.imread(str(root / "0" / "0000.png"), cv2.IMREAD_UNCHANGED)  # sample 0 of load_digits is a 0
    assert raw.shape == (32, 32, 3) and raw.dtype == np.uint8
    assert (raw[..., 0] == raw[..., 1]).all() and (raw[..., 1] == raw[..., 2]).all()
    assert raw.max() > 200 and raw.min() < 20  # ink stretched to the full range
    # Smooth upscaling: neighbouring pixels differ far less than the 8x8 blocks would.
    assert np.abs(np.diff(raw[..., 0].astype(int), axis=1)).max() < 120
    # Shrunk back to 8x8 it is the original scan again (up to rounding and interpolation).
    scan = load_digits().images[0] * 255 / 16
    assert np.abs(read_rgb(root / "0" / "0000.png", 8, 8)[..., 0] - scan).mean() < 15

    again = make_digits_folders(tmp_path / "b", size=32)
    files = sorted(p.relative_to(root) for p in root.rglob("*.png"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.png"))
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
