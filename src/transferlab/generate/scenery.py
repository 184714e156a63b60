"""The busy parts of US-style plates: a scenic background, the state name, a slogan, stickers.

Real US plates print a picture behind the characters (a sky gradient, hills, mountains, a
sun), the state name in small letters at the top or bottom, a slogan on the other edge and
registration stickers in the corners: clutter a reader must learn to ignore.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from transferlab.generate.draw import _fit, _grid, _jitter, _paint
from transferlab.generate.glyphs import _DIN, _small_text

STATES = ("CALIFORNIA", "TEXAS", "FLORIDA", "NEW YORK", "OHIO", "ARIZONA", "NEVADA", "OREGON", "GEORGIA",
          "MICHIGAN", "ILLINOIS", "COLORADO", "UTAH", "VIRGINIA", "MAINE", "IDAHO", "MONTANA", "KANSAS", "IOWA",
          "ALABAMA", "INDIANA", "KENTUCKY", "TENNESSEE", "WASHINGTON", "NEW JERSEY", "MINNESOTA", "OKLAHOMA",
          "NEBRASKA", "WYOMING", "VERMONT", "NEW MEXICO", "ALASKA")
SLOGANS = ("SUNSHINE STATE", "THE EMPIRE STATE", "LAND OF LINCOLN", "GRAND CANYON STATE", "THE SILVER STATE",
           "THE LONE STAR STATE", "PEACH STATE", "PURE MICHIGAN", "LIVE FREE OR DIE", "FAMOUS POTATOES",
           "VACATIONLAND", "GREEN MOUNTAINS", "BIG SKY COUNTRY", "LAND OF ENCHANTMENT", "THE BEEHIVE STATE",
           "THE VOLUNTEER STATE", "GARDEN STATE", "EVERGREEN STATE", "IN GOD WE TRUST", "THE LAST FRONTIER",
           "DEALER", "PASSENGER", "EXPLORE MORE")
_SKIES = ((150, 190, 236), (250, 188, 120), (250, 228, 140), (196, 224, 196), (212, 192, 232), (236, 160, 150))
_LANDS = ((70, 122, 72), (124, 92, 60), (60, 92, 152), (204, 122, 60), (112, 112, 132), (152, 62, 42),
          (40, 60, 100))
_STICKERS = ((236, 204, 40), (204, 44, 44), (40, 142, 72), (44, 92, 192), (244, 244, 244), (240, 124, 32))
_STATE_FONTS = (_DIN, 2)  # OSP-DIN, Routed Gothic


def draw_scenery(plate: np.ndarray, rng: np.random.Generator) -> None:
    """Paint a sky gradient, a few hill / mountain silhouettes and maybe a sun onto ``plate``."""
    ph, pw = plate.shape[:2]
    xs, ys = _grid(ph, pw)
    t = (ys + 1) / 2  # 0 at the top, 1 at the bottom
    sky = _jitter(_SKIES[rng.integers(len(_SKIES))], rng, 10)
    reach = rng.uniform(0.4, 1.0)
    fade = (np.clip(1 - t / reach, 0, 1) ** rng.uniform(0.8, 2.0) * rng.uniform(0.5, 0.95))[..., None]
    plate += fade * (sky - plate)
    if rng.random() < 0.3:  # a sun (or moon) low in the sky
        sun = tuple(float(v) for v in _jitter((252, 214, 120), rng, 15))
        cv2.circle(plate, (int(rng.uniform(0.1, 0.9) * pw), int(rng.uniform(0.25, 0.6) * ph)),
                   max(1, int(ph * rng.uniform(0.12, 0.3))), sun, -1, cv2.LINE_AA)
    u = (xs + 1) / 2  # 0 at the left, 1 at the right
    for _ in range(int(rng.integers(1, 4))):
        level = rng.uniform(0.5, 0.92)
        amp = rng.uniform(0.03, 0.16)
        freq, phase = rng.uniform(0.5, 4), rng.uniform(0, 2 * math.pi)
        ridge = level + amp * np.sin(2 * math.pi * freq * u + phase) + amp / 3 * np.sin(11 * u + 2 * phase)
        land = np.clip((t - ridge) * ph, 0, 1)[..., None] * rng.uniform(0.25, 0.6)  # 1-pixel soft edge
        plate += land * (_jitter(_LANDS[rng.integers(len(_LANDS))], rng, 12) - plate)


def draw_state_lines(plate: np.ndarray, ink: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """The state name on one edge, a slogan on the other, stickers beside the name.

    Returns the (top, bottom) band left between them for the registration.
    """
    ph, pw = plate.shape[:2]
    color = ink if rng.random() < 0.4 else _jitter([(180, 30, 40), (24, 50, 140), (20, 20, 24)][rng.integers(3)],
                                                   rng, 8)
    state = STATES[rng.integers(len(STATES))]
    font = _STATE_FONTS[rng.integers(len(_STATE_FONTS))]
    name = _small_text(state if rng.random() < 0.7 else state.title(), font, int(rng.integers(1, 3)))
    nh = ph * rng.uniform(0.12, 0.18)
    nw = min(name.shape[1] * nh / name.shape[0], pw * 0.6)
    at_top = rng.random() < 0.75
    ny = ph * rng.uniform(0.04, 0.08) if at_top else ph * rng.uniform(0.92, 0.96) - nh
    _paint(plate, _fit(name, nw, nh), color, int(round((pw - nw) / 2)), int(round(ny)))

    slogan = _small_text(SLOGANS[rng.integers(len(SLOGANS))], _DIN, 0)
    sh = ph * rng.uniform(0.07, 0.1)
    sw = min(slogan.shape[1] * sh / slogan.shape[0], pw * 0.7)
    sy = ph * rng.uniform(0.92, 0.95) - sh if at_top else ph * rng.uniform(0.05, 0.08)
    _paint(plate, _fit(slogan, sw, sh), ink if rng.random() < 0.5 else color, int(round((pw - sw) / 2)),
           int(round(sy)))

    _draw_stickers(plate, ny, nh, rng)
    gap = ph * 0.02
    return (ny + nh + gap, sy - gap) if at_top else (sy + sh + gap, ny - gap)


def _draw_stickers(plate: np.ndarray, y: float, height: float, rng: np.random.Generator) -> None:
    """One or two registration stickers in the corners of the band at ``y`` (a year on each)."""
    ph, pw = plate.shape[:2]
    corners = [(0,), (1,), (0, 1)][rng.integers(3)]
    h = height * rng.uniform(1.0, 1.3)
    w = h * rng.uniform(1.3, 1.8)
    top = int(round(max(1.0, y - (h - height) / 2)))
    for right in corners:
        x0 = int(round(pw - ph * 0.06 - w if right else ph * 0.06))
        sticker = tuple(float(v) for v in _jitter(_STICKERS[rng.integers(len(_STICKERS))], rng, 10))
        cv2.rectangle(plate, (x0, top), (int(round(x0 + w)), int(round(top + h))), sticker, -1, cv2.LINE_AA)
        year = _small_text(str(int(rng.integers(19, 30))), _DIN, 1)
        yh = h * 0.62
        yw = min(year.shape[1] * yh / year.shape[0], w * 0.8)
        text = (20, 20, 22) if np.mean(sticker) > 110 else (240, 240, 240)
        _paint(plate, _fit(year, yw, yh), np.float32(text), int(round(x0 + (w - yw) / 2)),
               int(round(top + (h - yh) / 2)))
