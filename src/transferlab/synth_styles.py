"""The flat plate of a synthetic crop: body, strip, border, legend, characters, seals, bolts, frame."""

from __future__ import annotations

import math

import cv2
import numpy as np

from transferlab.synth_draw import _fit, _jitter, _low_freq, _paint, _rounded_mask, _rounded_outline
from transferlab.synth_glyphs import _DIN, FONTS, _small_text, _text_line

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


def _draw_plate(rendered: str, canvas_h: int, canvas_w: int, rng: np.random.Generator, strip: bool,
                fonts: list[int], seals_allowed: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The flat plate (maybe in its holder frame): float32 RGB and its 0..1 alpha.

    Its pixel size is about the size it will cover on the canvas (no wasted pixels).
    """
    aspect = rng.uniform(3.6, 4.8) if strip else rng.uniform(2.5, 4.8)
    ph = int(round(min(canvas_h * 0.9, canvas_w / aspect)))
    pw = int(round(ph * aspect))
    body, ink = _plate_colors(rng)
    plate = np.empty((ph, pw, 3), np.float32)
    plate[:] = body
    # Sheeting: faint large-scale unevenness, sometimes dirt.
    plate += (_low_freq(rng, ph, pw, (3, 8)) * rng.uniform(1.5, 5))[..., None]
    if rng.random() < 0.25:
        plate *= (1 - np.clip(_low_freq(rng, ph, pw, (5, 16)), 0, None) * rng.uniform(0.05, 0.16))[..., None]

    radius = ph * rng.uniform(0.03, 0.14)
    text_left = ph * rng.uniform(0.07, 0.16)
    text_right = pw - ph * rng.uniform(0.07, 0.16)
    if strip:
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
        text_left = sw + ph * rng.uniform(0.05, 0.12)

    # Border line (inside the edge), drawn before the characters.
    if rng.random() < 0.65:
        inset = ph * rng.uniform(0.015, 0.05)
        thick = max(1.0, ph * rng.uniform(0.012, 0.03))
        _rounded_outline(plate, (inset, inset, pw - 1 - inset, ph - 1 - inset), radius - inset, thick, ink)

    # Legend (a state / registration word) on roomy plates without a strip.
    top, bottom = 0.0, float(ph)
    if not strip and aspect < 3.4 and rng.random() < 0.4:
        word = _small_text(LEGENDS[rng.integers(len(LEGENDS))], _DIN, 0)
        lh = ph * rng.uniform(0.1, 0.14)
        lw = min(word.shape[1] * lh / word.shape[0], pw * 0.6)
        at_top = rng.random() < 0.6
        y = ph * 0.07 if at_top else ph * 0.93 - lh
        color = ink if rng.random() < 0.6 else _jitter((30, 60, 150), rng, 10)
        _paint(plate, _fit(word, lw, lh), color, int(round((pw - lw) / 2)), int(round(y)))
        top, bottom = (y + lh, ph) if at_top else (0, y)

    # The registration itself.
    font = fonts[rng.choice(len(fonts), p=_weights(fonts))]
    stroke = FONTS[font].strokes[rng.integers(len(FONTS[font].strokes))]
    seals = seals_allowed and " " in rendered.strip() and rng.random() < 0.18
    line, spaces = _text_line(rendered.strip(), font, stroke, tracking=rng.uniform(-0.01, 0.14),
                              space=rng.uniform(0.25, 0.9), seal_space=0.9 if seals else 0.0)
    avail_w = text_right - text_left
    avail_h = bottom - top
    th = avail_h * (rng.uniform(0.56, 0.74) if avail_h == ph else rng.uniform(0.6, 0.72))
    natural = line.shape[1] * th / line.shape[0]
    tw = natural * rng.uniform(0.88, 1.12)
    if tw > avail_w * 0.98:
        tw = avail_w * rng.uniform(0.93, 0.98)
        if tw < natural * 0.62:  # keep glyphs from getting too condensed: shrink height too
            th *= tw / (natural * 0.62)
    tx = text_left + (avail_w - tw) * rng.uniform(0.3, 0.7)
    ty = top + (avail_h - th) / 2 + ph * rng.uniform(-0.03, 0.03)
    text = _fit(line, tw, th)
    x, y = int(round(tx)), int(round(ty))
    if rng.random() < 0.5:  # embossed characters: a faint offset shadow / highlight
        dx, dy = (int(v) for v in np.round(ph * rng.uniform(0.008, 0.022, 2) * rng.choice([-1, 1], 2)))
        shade = body * (0.55 if body.mean() > 100 else 1.9)
        _paint(plate, text, np.clip(shade, 0, 255), x + dx, y + dy, opacity=0.45)
    _paint(plate, text, ink, x, y)

    scale_x = tw / line.shape[1]
    if seals:  # registration seals in the (widest) space
        a, b = max(spaces, key=lambda s: s[1] - s[0])
        sx = tx + (a + b) / 2 * scale_x
        r = min((b - a) * scale_x * 0.4, th * 0.17)
        for cy in (ty + th * 0.27, ty + th * 0.75):
            color = _jitter([(40, 90, 170), (40, 130, 70), (190, 60, 40), (210, 150, 40)][rng.integers(4)], rng, 12)
            cv2.circle(plate, (int(round(sx)), int(round(cy))), max(1, int(round(r))), tuple(float(v) for v in color),
                       -1, cv2.LINE_AA)
    if rng.random() < 0.3:  # mounting bolts
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


def _weights(fonts: list[int]) -> np.ndarray:
    w = np.array([FONTS[i].weight for i in fonts])
    return w / w.sum()

