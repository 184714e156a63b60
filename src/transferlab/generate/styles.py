"""The flat plate of a synthetic crop: body, strip, border, legend, characters, seals, bolts, frame.

One drawing procedure serves every plate style; a ``Style`` says what sets its kind apart
(shape, colours, which decorations, how likely each is). The names of ``STYLES`` are the keys
of ``generate.styles``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from transferlab.config import FORMAT_SEPARATORS
from transferlab.generate.draw import _fit, _jitter, _low_freq, _paint, _rounded_mask, _rounded_outline
from transferlab.generate.glyphs import _DIN, FONTS, SEPARATOR_DOT, _small_text, registration_line
from transferlab.generate.scenery import draw_scenery, draw_state_lines

_WHITE = (242, 243, 240)
_EU_BLUE = (12, 52, 155)
_STAR_YELLOW = (255, 204, 0)
COUNTRY_CODES = ("D", "F", "NL", "B", "I", "E", "P", "A", "PL", "CZ", "SK", "H", "RO", "BG", "GR", "S",
                 "FIN", "DK", "EST", "LV", "LT", "SLO", "HR", "L", "IRL", "CY", "M", "UK", "CH", "N")
LEGENDS = ("REGISTERED", "MOTOR VEHICLE", "TRANSPORT", "PRIVATE", "DEALER", "COMMERCIAL", "STATE",
           "NATIONAL", "MUNICIPAL", "TAXI", "TRAILER", "VEHICLE")


def _plate_colors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(body, text) colours of one plate."""
    kind = rng.choice(4, p=[0.56, 0.2, 0.12, 0.12])
    if kind == 0:  # white
        body = _jitter(_WHITE, rng, 5)
    elif kind == 1:  # yellow
        body = _jitter((250, 204, 28), rng, 8)
    elif kind == 2:  # dark plate, light text
        body = _jitter([(24, 24, 26), (22, 36, 84), (20, 62, 38), (60, 24, 26)][rng.integers(4)], rng, 4)
        text = _jitter([(236, 236, 232), (236, 236, 232), (246, 210, 60), (200, 200, 196)][rng.integers(4)], rng, 5)
        return body, text
    else:  # tinted light plate (US-like)
        body = _jitter([(214, 216, 212), (240, 232, 204), (214, 228, 242), (222, 238, 222)][rng.integers(4)], rng, 5)
    text = _jitter([(18, 18, 20), (18, 18, 20), (18, 18, 20), (22, 34, 96), (124, 22, 28), (18, 74, 38)]
                   [rng.integers(6)], rng, 4)
    return body, text


def _us_colors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    body = _jitter([(244, 244, 240), (238, 240, 244), (246, 240, 224)][rng.integers(3)], rng, 4)
    ink = _jitter([(20, 36, 110), (18, 18, 22), (130, 24, 32), (24, 70, 44)][rng.integers(4)], rng, 5)
    return body, ink


def _cn_blue_colors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    blue = (np.float32([20, 70, 190]) + np.float32([14, 40, 40]) * rng.uniform(-1, 1)) * rng.uniform(0.8, 1.2)
    return _jitter(np.clip(blue, 0, 255), rng, 8), _jitter((240, 242, 244), rng, 4)


_DARK_INK = (16, 16, 18)
_LIGHT_INK = (242, 242, 240)


def _pair(rng: np.random.Generator, pairs: tuple[tuple[tuple[int, int, int], tuple[int, int, int]], ...],
          amount: float = 6) -> tuple[np.ndarray, np.ndarray]:
    """One (body, ink) pair of ``pairs``, both jittered."""
    body, ink = pairs[rng.integers(len(pairs))]
    return _jitter(body, rng, amount), _jitter(ink, rng, amount / 2)


def _two_colour_colors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _pair(rng, (((252, 206, 20), _DARK_INK), ((244, 244, 240), _DARK_INK),
                       ((14, 110, 62), _LIGHT_INK), ((20, 62, 150), _LIGHT_INK)))


def _metal_colors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _pair(rng, (((232, 232, 228), _DARK_INK), ((190, 192, 194), _DARK_INK), ((246, 200, 30), _DARK_INK),
                       ((28, 28, 30), (214, 214, 210)), ((24, 46, 118), _LIGHT_INK), ((30, 84, 52), _LIGHT_INK)))


@dataclass(frozen=True)
class Style:
    """What sets one kind of plate apart; ``_draw_plate`` reads it (probabilities are per plate)."""

    aspect: tuple[float, float]  # width / height of the plate (the EU strip makes it longer)
    colors: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]  # (body, ink)
    country_strip: bool = False  # may carry the EU strip (generate.country_strip_probability)
    border: float = 0.65  # a line inside the edge, in the ink colour
    legend: float = 0.0  # a small word above or below the characters (roomy plates only)
    emboss: float = 0.5  # characters with a faint offset shadow
    relief: tuple[float, float] = (0.008, 0.022)  # that offset, as a fraction of the plate height
    metal: bool = False  # stamped metal: brushed body, shadow and highlight on the raised characters
    seals: float = 0.0  # registration seals in the widest space
    bolts: float = 0.3
    scenery: bool = False  # a picture behind the characters, a state name, a slogan and stickers
    dot: bool = False  # a separator dot after the first two glyphs (the prefix counts)
    text_fill: tuple[float, float] = (0.6, 0.72)  # character height / the band left by legends
    tracking: tuple[float, float] = (-0.01, 0.14)  # extra room between characters, fraction of their size
    spread: tuple[float, float] | None = None  # if set, the characters span this fraction of the width


STYLES: dict[str, Style] = {
    "eu": Style((2.5, 4.8), _plate_colors, country_strip=True, legend=0.4, seals=0.18),
    "us": Style((1.85, 2.2), _us_colors, border=0.35, emboss=0.3, bolts=0.5, scenery=True, text_fill=(0.8, 0.92)),
    "cn_blue": Style((3.0, 3.3), _cn_blue_colors, border=1.0, emboss=0.6, bolts=0.6, dot=True,
                     tracking=(0.04, 0.16), spread=(0.9, 0.98)),
    "two_colour": Style((2.5, 4.8), _two_colour_colors, legend=0.2, emboss=0.3),
    "embossed": Style((2.0, 4.7), _metal_colors, border=0.8, legend=0.15, emboss=1.0, relief=(0.018, 0.035),
                      metal=True, bolts=0.5),
}


def _draw_plate(rendered: str, prefix: str, canvas_h: int, canvas_w: int, rng: np.random.Generator,
                style: Style, strip: bool, fonts: list[int],
                seals_allowed: bool = True, bare_one: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The flat plate (maybe in its holder frame): float32 RGB and its 0..1 alpha.

    ``prefix`` (one glyph or empty) is drawn before the characters of ``rendered``. The plate's
    pixel size is about the size it will cover on the canvas (no wasted pixels). ``bare_one``:
    every '1' is a bare stroke, as on Chinese plates.
    """
    aspect = rng.uniform(3.6, 4.8) if strip else rng.uniform(*style.aspect)
    ph = int(round(min(canvas_h * 0.9, canvas_w / aspect)))
    pw = int(round(ph * aspect))
    body, ink = style.colors(rng)
    plate = np.empty((ph, pw, 3), np.float32)
    plate[:] = body
    if style.scenery:
        draw_scenery(plate, rng)
    if style.metal:  # brushed aluminium: fine streaks along the plate
        plate += rng.standard_normal((ph, 1, 1), dtype=np.float32) * rng.uniform(2, 6)
    # Sheeting: faint large-scale unevenness, sometimes dirt.
    plate += (_low_freq(rng, ph, pw, (3, 8)) * rng.uniform(1.5, 5))[..., None]
    if rng.random() < 0.25:
        plate *= (1 - np.clip(_low_freq(rng, ph, pw, (5, 16)), 0, None) * rng.uniform(0.05, 0.16))[..., None]

    radius = ph * rng.uniform(0.03, 0.14)
    text_left = ph * rng.uniform(0.07, 0.16)
    text_right = pw - ph * rng.uniform(0.07, 0.16)
    if strip:
        text_left = _draw_strip(plate, rng) + ph * rng.uniform(0.05, 0.12)

    # Border line (inside the edge), drawn before the characters.
    if rng.random() < style.border:
        inset = ph * rng.uniform(0.015, 0.05)
        thick = max(1.0, ph * rng.uniform(0.012, 0.03))
        _rounded_outline(plate, (inset, inset, pw - 1 - inset, ph - 1 - inset), radius - inset, thick, ink)

    # Words above / below: the band between them is left for the registration.
    top, bottom = 0.0, float(ph)
    if style.scenery:
        top, bottom = draw_state_lines(plate, ink, rng)
    elif not strip and aspect < 3.4 and style.legend and rng.random() < style.legend:
        top, bottom = _draw_legend(plate, ink, rng)

    text = _dotted(rendered.strip(), 2 - len(prefix)) if style.dot else rendered.strip()
    _draw_registration(plate, body, ink, text, prefix, rng, style, fonts, seals_allowed,
                       (text_left, top, text_right, bottom), bare_one)
    if rng.random() < style.bolts:  # mounting bolts
        by = int(round(ph * rng.uniform(0.07, 0.13)))
        br = max(1, int(round(ph * rng.uniform(0.025, 0.04))))
        metal = tuple(float(v) for v in _jitter((150, 150, 148), rng, 15))
        for bx in (pw * 0.22, pw * 0.78):
            cv2.circle(plate, (int(round(bx)), by), br, metal, -1, cv2.LINE_AA)
            cv2.circle(plate, (int(round(bx)), by), br, (70, 70, 70), 1, cv2.LINE_AA)

    alpha = _rounded_mask(ph, pw, (0, 0, pw - 1, ph - 1), radius)
    if rng.random() < 0.35:  # holder frame around the plate
        t = max(1, int(round(ph * rng.uniform(0.03, 0.09))))
        tb = int(round(t * rng.uniform(1.0, 2.6)))
        color = _jitter([(20, 20, 22), (45, 45, 48), (170, 172, 176)][rng.integers(3)], rng, 6)
        fh, fw = ph + t + tb, pw + 2 * t
        framed = np.empty((fh, fw, 3), np.float32)
        framed[:] = color
        framed += (_low_freq(rng, fh, fw, (2, 6)) * 10)[..., None]
        region = framed[t:t + ph, t:t + pw]
        region *= 1 - alpha[..., None]
        region += plate * alpha[..., None]
        plate, alpha = framed, _rounded_mask(fh, fw, (0, 0, fw - 1, fh - 1), radius + t)
    return plate, alpha


def _draw_strip(plate: np.ndarray, rng: np.random.Generator) -> float:
    """The blue EU strip at the left: ring of stars and country code; its width."""
    ph = plate.shape[0]
    sw = ph * rng.uniform(0.32, 0.44)
    blue = _jitter(_EU_BLUE, rng, 6)
    plate[:, : int(round(sw))] = blue
    cx = sw / 2
    ring = ph * rng.uniform(0.13, 0.17)
    cy = ph * 0.08 + ring + ph * rng.uniform(0.0, 0.05)
    dot = max(1, int(round(ph * 0.022)))
    star = tuple(float(v) for v in _jitter(_STAR_YELLOW, rng, 6))
    for k in range(12):
        angle = 2 * math.pi * k / 12
        cv2.circle(plate, (int(round(cx + ring * math.cos(angle))), int(round(cy + ring * math.sin(angle)))),
                   dot, star, -1, cv2.LINE_AA)
    code = COUNTRY_CODES[rng.integers(len(COUNTRY_CODES))]
    code_mask = _small_text(code, _DIN, 1)
    ch_ = ph * rng.uniform(0.2, 0.27)
    cw_ = min(code_mask.shape[1] * ch_ / code_mask.shape[0], sw * 0.82)
    code_fit = _fit(code_mask, cw_, ch_)
    y = int(round(ph * 0.9 - ch_ - ph * rng.uniform(0, 0.04)))
    _paint(plate, code_fit, np.float32([245, 245, 245]), int(round(cx - cw_ / 2)), y)
    return sw


def _draw_legend(plate: np.ndarray, ink: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A small registration word centred at the top or bottom; the (top, bottom) band left."""
    ph, pw = plate.shape[:2]
    word = _small_text(LEGENDS[rng.integers(len(LEGENDS))], _DIN, 0)
    lh = ph * rng.uniform(0.1, 0.14)
    lw = min(word.shape[1] * lh / word.shape[0], pw * 0.6)
    at_top = rng.random() < 0.6
    y = ph * 0.07 if at_top else ph * 0.93 - lh
    color = ink if rng.random() < 0.6 else _jitter((30, 60, 150), rng, 10)
    _paint(plate, _fit(word, lw, lh), color, int(round((pw - lw) / 2)), int(round(y)))
    return (y + lh, ph) if at_top else (0, y)


def _dotted(text: str, after: int) -> str:
    """``text`` with SEPARATOR_DOT after its first ``after`` characters (replacing a separator there)."""
    count = 0
    for i, c in enumerate(text):
        if c not in FORMAT_SEPARATORS:
            count += 1
            if count == after:
                return text[:i + 1] + SEPARATOR_DOT + text[i + 1:].lstrip(FORMAT_SEPARATORS)
    return text


def _draw_registration(plate: np.ndarray, body: np.ndarray, ink: np.ndarray, text: str, prefix: str,
                       rng: np.random.Generator, style: Style, fonts: list[int], seals_allowed: bool,
                       area: tuple[float, float, float, float], bare_one: bool = False) -> None:
    """The characters (and prefix glyph), sized and placed at random in ``area`` = (left, top, right, bottom)."""
    ph = plate.shape[0]
    text_left, top, text_right, bottom = area
    font = fonts[rng.choice(len(fonts), p=_weights(fonts))]
    stroke = FONTS[font].strokes[rng.integers(len(FONTS[font].strokes))]
    seals = style.seals > 0 and seals_allowed and " " in text and rng.random() < style.seals
    line, spaces = registration_line(text, prefix, font, stroke, tracking=rng.uniform(*style.tracking),
                                     space=rng.uniform(0.25, 0.9), seal_space=0.9 if seals else 0.0,
                                     bare_one=bare_one)
    avail_w = text_right - text_left
    avail_h = bottom - top
    th = avail_h * (rng.uniform(0.56, 0.74) if avail_h == ph else rng.uniform(*style.text_fill))
    natural = line.shape[1] * th / line.shape[0]
    tw = natural * rng.uniform(0.88, 1.12) if style.spread is None else avail_w * rng.uniform(*style.spread)
    if tw > avail_w * 0.98:
        tw = avail_w * rng.uniform(0.93, 0.98)
        if tw < natural * 0.62:  # keep glyphs from getting too condensed: shrink height too
            th *= tw / (natural * 0.62)
    tx = text_left + (avail_w - tw) * rng.uniform(0.3, 0.7)
    ty = top + (avail_h - th) / 2 + ph * rng.uniform(-0.03, 0.03)
    mask = _fit(line, tw, th)
    x, y = int(round(tx)), int(round(ty))
    if rng.random() < style.emboss:  # embossed characters: an offset shadow (and highlight on metal)
        dx, dy = (int(v) for v in np.round(ph * rng.uniform(*style.relief, 2) * rng.choice([-1, 1], 2)))
        if style.metal:  # lit from one side: dark on the far edge, bright on the near one
            _paint(plate, mask, body * 0.35, x + dx, y + dy, opacity=0.7)
            _paint(plate, mask, body + (255 - body) * 0.6, x - dx, y - dy, opacity=0.55)
        else:
            shade = body * (0.55 if body.mean() > 100 else 1.9)
            _paint(plate, mask, np.clip(shade, 0, 255), x + dx, y + dy, opacity=0.45)
    _paint(plate, mask, ink, x, y)

    if seals:  # registration seals in the (widest) space
        scale_x = tw / line.shape[1]
        a, b = max(spaces, key=lambda s: s[1] - s[0])
        sx = tx + (a + b) / 2 * scale_x
        r = min((b - a) * scale_x * 0.4, th * 0.17)
        for cy in (ty + th * 0.27, ty + th * 0.75):
            color = _jitter([(40, 90, 170), (40, 130, 70), (190, 60, 40), (210, 150, 40)][rng.integers(4)], rng, 12)
            cv2.circle(plate, (int(round(sx)), int(round(cy))), max(1, int(round(r))), tuple(float(v) for v in color),
                       -1, cv2.LINE_AA)


def _weights(fonts: list[int]) -> np.ndarray:
    w = np.array([FONTS[i].weight for i in fonts])
    return w / w.sum()

