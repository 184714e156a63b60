"""Stage ``generate``: the embedded default dataset of synthetic license-plate crops.

No real plate dataset can be downloaded, so the default data is rendered here,
deterministically from a seed: every image ``i`` draws all its randomness from its own
generator, seeded by ``SeedSequence(seed, spawn_key=(i,))``, so the same configuration gives
byte-identical PNGs and CSV, and any image can be rendered alone (parallel or resumed).

A plate is drawn with a real plate-like font (DIN 1451-like OSP-DIN, OCR-B, Routed Gothic,
vendored in ``transferlab/fonts`` with their licences) on a white, yellow, tinted or dark
body with border, rounded corners, optional blue country strip, holder frame, bolts and
registration seals; then a camera is simulated: perspective and rotation into a detector-like
crop (loose or slightly cut), car-paint / bumper / texture background, lighting gradient,
shadow, glare, blur, sensor noise, lower resolution and JPEG artefacts. The effects are
moderate: this is the clean data; the ``augment`` stage adds more.

Output (the convention of fast-plate-ocr, the same format users bring)::

    <generate.output>/labels.csv      image_path,plate_text (paths relative to the CSV)
    <generate.output>/images/000000.png ...
    <generate.output>/preview.png     a labelled grid of the first images
"""

from __future__ import annotations

import functools
import io
import math
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from transferlab.config import (
    FORMAT_ANY,
    FORMAT_DIGIT,
    FORMAT_LETTER,
    FORMAT_SEPARATORS,
    GenerateConfig,
    Params,
    PlatesConfig,
)
from transferlab.errors import TransferlabError
from transferlab.formats import LabelModel, generator_label_model, resolve_plates, sample_plate
from transferlab.io import atomic_output_dir, write_json
from transferlab.plates import LabelError, PlateCodec

LABELS_FILE = "labels.csv"
LABEL_MODEL_FILE = "label_model.json"  # with generate.formats: auto, what the labels imitate
IMAGES_DIR = "images"
PREVIEW_FILE = "preview.png"
PREVIEW_IMAGES = 24
PNG_COMPRESSION = 1  # zlib level: deterministic; higher levels gain ~2 % on noisy crops, at 2-4x the time

# --------------------------------------------------------------------------------------
# Plate text


@functools.lru_cache(maxsize=8)
def _pools(alphabet: str) -> dict[str, str]:
    return {
        FORMAT_DIGIT: "".join(c for c in alphabet if c.isdigit()),
        FORMAT_LETTER: "".join(c for c in alphabet if c.isalpha()),
        FORMAT_ANY: alphabet,
    }


def random_plate_text(fmt: str, alphabet: str, rng: np.random.Generator) -> tuple[str, str]:
    """A random plate for ``fmt``: (label, rendered string with its separators).

    ``#`` is a digit of the alphabet, ``@`` a letter of it, ``*`` any of its characters;
    space and ``-`` are kept in the rendered string only; any other character is literal.
    """
    pools = _pools(alphabet)
    label: list[str] = []
    rendered: list[str] = []
    for c in fmt:
        if c in FORMAT_SEPARATORS:
            rendered.append(c)
            continue
        if c in pools:
            pool = pools[c]
            if not pool:
                kind = {FORMAT_DIGIT: "digits", FORMAT_LETTER: "letters"}.get(c, "characters")
                raise TransferlabError(f"plate format {fmt!r}: {c!r} needs {kind} but plates.alphabet has none")
            c = pool[int(rng.integers(len(pool)))]
        label.append(c)
        rendered.append(c)
    return "".join(label), "".join(rendered)


# --------------------------------------------------------------------------------------
# Fonts and glyphs

GLYPH_SIZE = 64  # pixel size glyphs are rasterised at (then scaled into the plate)


@dataclass(frozen=True)
class _FontSpec:
    file: str
    strokes: tuple[int, ...]  # extra stroke widths at GLYPH_SIZE that still look like a plate font
    weight: float  # how often the font is picked
    flag_one: bool = False  # its '1' is a bare stem like 'I': draw the flag so the two differ


FONTS = (
    _FontSpec("OSP-DIN.ttf", (0, 1, 1, 2), 0.45),
    _FontSpec("OCRB.otf", (1, 2, 2, 3), 0.25),
    _FontSpec("routed-gothic.ttf", (2, 3, 3, 4), 0.15, flag_one=True),
    _FontSpec("routed-gothic-narrow.ttf", (2, 3, 3, 4), 0.15, flag_one=True),
)
_DIN = 0


@functools.lru_cache(maxsize=None)
def _font(index: int, size: int = GLYPH_SIZE) -> ImageFont.FreeTypeFont:
    data = resources.files("transferlab").joinpath("fonts", FONTS[index].file).read_bytes()
    return ImageFont.truetype(io.BytesIO(data), size)


def _raster(index: int, ch: str, stroke: int) -> tuple[np.ndarray, int]:
    """``ch`` drawn white on black at the font's line height; (image, advance)."""
    font = _font(index)
    ascent, descent = font.getmetrics()
    pad = GLYPH_SIZE // 2 + stroke
    advance = int(round(font.getlength(ch)))
    image = Image.new("L", (advance + 2 * pad, ascent + descent + 2 * pad), 0)
    draw = ImageDraw.Draw(image)
    draw.text((pad, pad), ch, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    if ch == "1" and FONTS[index].flag_one:
        _draw_flag(draw, np.asarray(image))
    return np.asarray(image), advance


def _draw_flag(draw: ImageDraw.ImageDraw, ink: np.ndarray) -> None:
    """Add the diagonal flag to a bare-stem '1' (so it is not read as 'I')."""
    rows = np.flatnonzero(ink.max(axis=1))
    cols = np.flatnonzero(ink.max(axis=0))
    if rows.size == 0:
        return
    top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
    thick = right - left + 1
    height = bottom - top + 1
    x0, y0 = (left + right) / 2, top + thick / 2
    x1, y1 = x0 - 0.28 * height, y0 + 0.26 * height
    draw.line([(x0, y0), (x1, y1)], fill=255, width=int(thick))
    r = thick / 2
    draw.ellipse([x1 - r, y1 - r, x1 + r, y1 + r], fill=255)


@functools.lru_cache(maxsize=None)
def _has_glyph(index: int, ch: str) -> bool:
    """Whether the font draws ``ch`` (not empty, not its 'missing glyph' box)."""
    ink, _ = _raster(index, ch, 0)
    if not ink.any():
        return False
    return not any(np.array_equal(ink, _raster(index, missing, 0)[0]) for missing in ("\ue000", "\U0010fffd"))


@functools.lru_cache(maxsize=None)
def _glyph(index: int, ch: str, stroke: int) -> tuple[np.ndarray, int]:
    """Ink of ``ch`` cropped to its columns (all rows kept, so glyphs share a baseline); advance."""
    ink, advance = _raster(index, ch, stroke)
    cols = np.flatnonzero(ink.max(axis=0))
    if cols.size == 0:
        return ink[:, :0], advance
    return np.ascontiguousarray(ink[:, cols[0]:cols[-1] + 1]), advance


def fonts_for(text: str) -> list[int]:
    """Indices of the bundled fonts that can draw every character of ``text``."""
    chars = {c for c in text if not c.isspace()}
    return [i for i in range(len(FONTS)) if all(_has_glyph(i, c) for c in chars)]


def _text_line(text: str, font: int, stroke: int, tracking: float, space: float,
               seal_space: float = 0.0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """One line of text as a tight uint8 mask, and the column spans of its spaces.

    ``tracking`` and ``space`` are fractions of the glyph size: extra room between
    characters, and the width of a space. ``seal_space`` (if > 0) widens spaces for seals.
    """
    placed: list[tuple[int, np.ndarray]] = []
    spaces: list[tuple[int, int]] = []
    x = 0
    gap = int(round(tracking * GLYPH_SIZE))
    for ch in text:
        if ch.isspace():
            width = int(round(max(space, seal_space) * GLYPH_SIZE))
            spaces.append((x, x + width))
            x += width
            continue
        ink, advance = _glyph(font, ch, stroke)
        cell = max(advance, ink.shape[1])
        placed.append((x + (cell - ink.shape[1]) // 2, ink))
        x += cell + gap
    if not placed:
        raise TransferlabError(f"plate text {text!r} has no character to draw")
    left = min(0, min(p for p, _ in placed))
    width = max(p + ink.shape[1] for p, ink in placed) - left
    line = np.zeros((placed[0][1].shape[0], width), np.uint8)
    for pos, ink in placed:
        target = line[:, pos - left: pos - left + ink.shape[1]]
        np.maximum(target, ink, out=target)
    rows = np.flatnonzero(line.max(axis=1))
    cols = np.flatnonzero(line.max(axis=0))
    line = line[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    shift = left + cols[0]
    return line, [(a - shift, b - shift) for a, b in spaces]


@functools.lru_cache(maxsize=256)
def _small_text(text: str, font: int, stroke: int) -> np.ndarray:
    return _text_line(text, font, stroke, 0.06, 0.35)[0]


# --------------------------------------------------------------------------------------
# Drawing helpers (float32 RGB images in 0..255, masks in 0..1)

_WHITE = (242, 243, 240)
_EU_BLUE = (12, 52, 155)
_STAR_YELLOW = (255, 204, 0)
COUNTRY_CODES = ("D", "F", "NL", "B", "I", "E", "P", "A", "PL", "CZ", "SK", "H", "RO", "BG", "GR", "S",
                 "FIN", "DK", "EST", "LV", "LT", "SLO", "HR", "L", "IRL", "CY", "M", "UK", "CH", "N")
LEGENDS = ("REGISTERED", "MOTOR VEHICLE", "TRANSPORT", "PRIVATE", "DEALER", "COMMERCIAL", "STATE",
           "NATIONAL", "MUNICIPAL", "TAXI", "TRAILER", "VEHICLE")
CAR_PAINTS = ((236, 236, 234), (22, 22, 24), (172, 174, 177), (104, 106, 110), (26, 40, 82), (44, 74, 142),
              (150, 22, 28), (92, 18, 22), (32, 72, 46), (200, 186, 152), (222, 182, 44), (202, 92, 34),
              (82, 56, 40), (60, 62, 66))


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


# --------------------------------------------------------------------------------------
# The plate itself


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


# --------------------------------------------------------------------------------------
# The camera


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """What surrounds the plate in a loose crop: car paint, bumper plastic or some texture."""
    xs, ys = _grid(height, width)
    kind = rng.choice(3, p=[0.5, 0.3, 0.2])
    image = np.empty((height, width, 3), np.float32)
    if kind == 0:  # car paint: a colour with a vertical lighting gradient and a panel line
        image[:] = _jitter(CAR_PAINTS[rng.integers(len(CAR_PAINTS))], rng, 8)
        image *= (1 + ys * rng.uniform(-0.25, 0.25))[..., None]
        if rng.random() < 0.5:
            y = int(rng.integers(height))
            image[max(0, y - 1):y + 2] *= rng.uniform(0.55, 0.8)
    elif kind == 1:  # bumper: dark plastic with horizontal bands
        image[:] = _jitter((48, 48, 50), rng, 14)
        bands = np.cos(ys * rng.uniform(2, 8) + rng.uniform(0, 6.3)) * rng.uniform(6, 20)
        image += bands[..., None]
        image += rng.standard_normal((height, width, 1), dtype=np.float32) * rng.uniform(2, 6)
    else:  # texture: two colours mixed by smooth noise
        a = _jitter(CAR_PAINTS[rng.integers(len(CAR_PAINTS))], rng, 20)
        b = _jitter((rng.integers(30, 200),) * 3, rng, 20)
        field = np.clip(_low_freq(rng, height, width, (4, 10)) * 0.5 + 0.5, 0, 1)[..., None]
        image[:] = a * field + b * (1 - field)
        image += rng.standard_normal((height, width, 1), dtype=np.float32) * rng.uniform(3, 9)
    return image


def _placement(rng: np.random.Generator, plate_h: int, plate_w: int, height: int, width: int) -> np.ndarray:
    """Homography from the flat plate to the canvas: perspective, rotation, then a detector-like crop."""
    w, h = float(plate_w), float(plate_h)
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    # Perspective: one side taller than the other (yaw), top narrower than bottom (pitch).
    yaw = rng.uniform(-0.1, 0.1)
    pitch = rng.uniform(-0.06, 0.06)
    quad = corners - (w / 2, h / 2)
    quad[:, 1] *= np.float32([1 + yaw, 1 - yaw, 1 - yaw, 1 + yaw])
    quad[:, 0] *= np.float32([1 - pitch, 1 - pitch, 1 + pitch, 1 + pitch])
    angle = math.radians(rng.normal(0, 2.2) if rng.random() < 0.9 else rng.uniform(-7, 7))
    # Rotation and shear in the crop's pixel units (the crop is later stretched to width x height).
    rot = np.float32([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shear = np.float32([[1, rng.uniform(-0.04, 0.04)], [0, 1]])
    quad = quad @ (rot @ shear).T
    quad += rng.normal(0, 0.008, (4, 2)).astype(np.float32) * np.float32([w, h])
    # The crop: the plate's bounding box with a margin on each side (rarely slightly cut).
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    mx = np.where(rng.random(2) < 0.12, rng.uniform(-0.012, 0, 2), rng.uniform(0.0, 0.09, 2))
    my = np.where(rng.random(2) < 0.12, rng.uniform(-0.03, 0, 2), rng.uniform(0.0, 0.16, 2))
    box_x0 = width * mx[0]
    box_x1 = width * (1 - mx[1])
    box_y0 = height * my[0]
    box_y1 = height * (1 - my[1])
    quad[:, 0] = box_x0 + (quad[:, 0] - lo[0]) / (hi[0] - lo[0]) * (box_x1 - box_x0)
    quad[:, 1] = box_y0 + (quad[:, 1] - lo[1]) / (hi[1] - lo[1]) * (box_y1 - box_y0)
    return cv2.getPerspectiveTransform(corners, quad.astype(np.float32))


def _lighting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    xs, ys = _grid(height, width)
    theta = rng.uniform(0, 2 * math.pi)
    gain = 1 + (xs * math.cos(theta) + ys * math.sin(theta)) * rng.uniform(0, 0.22)
    if rng.random() < 0.25:  # a soft-edged shadow over part of the crop
        phi = rng.uniform(0, 2 * math.pi)
        d = xs * math.cos(phi) * 3 + ys * math.sin(phi) - rng.uniform(-0.8, 0.8)
        soft = rng.uniform(0.03, 0.4)
        gain = gain * (1 - rng.uniform(0.2, 0.45) * np.clip(d / soft + 0.5, 0, 1))
    gain = gain * rng.uniform(0.78, 1.12)
    image = image * gain[..., None]
    image *= rng.uniform(0.93, 1.07, 3).astype(np.float32)  # white balance
    if rng.random() < 0.1:  # glare
        cx, cy = rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8)
        s = rng.uniform(0.2, 0.5)
        blob = np.exp(-(((xs - cx) / 3) ** 2 + (ys - cy) ** 2) / (2 * s * s)) * rng.uniform(25, 70)
        image += blob[..., None]
    return image


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = math.cos(angle) * c, math.sin(angle) * c
    cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1,
             cv2.LINE_AA)
    return kernel / kernel.sum()


def _canvas_scale(height: int) -> float:
    """Supersampling factor: the plate is drawn on a canvas this many times the crop size."""
    return min(4.0, max(1.0, 96 / height))


def render_plate(rendered_text: str, height: int, width: int, rng: np.random.Generator,
                 country_strip_probability: float) -> np.ndarray:
    """One synthetic plate crop showing ``rendered_text``: uint8 RGB of shape (height, width, 3)."""
    fonts = fonts_for(rendered_text)
    if not fonts:
        missing = sorted({c for c in rendered_text if not c.isspace() and not any(_has_glyph(i, c) for i in range(len(FONTS)))})
        raise TransferlabError(f"no bundled font can draw {''.join(missing)!r} (plate {rendered_text!r})")
    s = _canvas_scale(height)
    ch, cw = int(round(height * s)), int(round(width * s))
    strip = rng.random() < country_strip_probability
    infrared = rng.random() < 0.08  # monochrome camera (where coloured seals would read as an '8')
    plate, alpha = _draw_plate(rendered_text, ch, cw, rng, strip, fonts, seals_allowed=not infrared)

    background = cv2.resize(_background(rng, height, width), (cw, ch), interpolation=cv2.INTER_LINEAR)
    matrix = _placement(rng, plate.shape[0], plate.shape[1], ch, cw)
    # Colour warped with replicated edges, coverage with zero outside: a clean anti-aliased outline.
    warped = cv2.warpPerspective(plate, matrix, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    cover = cv2.warpPerspective(alpha, matrix, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0)
    canvas = cv2.blendLinear(warped, background, cover, 1 - cover)

    if rng.random() < 0.2:
        length = int(round(int(rng.integers(1, 3)) * s)) | 1
        angle = math.radians(rng.normal(0, 20))
        canvas = cv2.filter2D(canvas, -1, _motion_kernel(length, angle), borderType=cv2.BORDER_REFLECT)
    elif rng.random() < 0.6:
        canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.2, 0.7) * s)
    image = _lighting(cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA), rng)

    if rng.random() < 0.15:  # a camera with fewer pixels on the plate, upsampled to the crop size
        f = rng.uniform(0.6, 0.9)
        small = cv2.resize(image, (max(4, int(width * f)), max(4, int(height * f))), interpolation=cv2.INTER_AREA)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if infrared:
        gray = image @ np.float32([0.299, 0.587, 0.114])
        image = np.repeat(gray[..., None], 3, axis=2)
    sigma = rng.uniform(0.8, 5.5)
    noise = rng.standard_normal((height, width, 1), dtype=np.float32) * sigma
    noise = noise + rng.standard_normal((height, width, 3), dtype=np.float32) * (sigma * 0.35)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.75:
        quality = int(rng.integers(40, 96))
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        image = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return image


# --------------------------------------------------------------------------------------
# The dataset


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index``: independent of every other image."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def sample_plate_text(generate: GenerateConfig, alphabet: str, rng: np.random.Generator,
                      labels: LabelModel | None = None) -> tuple[str, str]:
    """(label, rendered text) of one plate: like ``labels`` when given, else of one of the formats."""
    if labels is not None:
        return sample_plate(labels, rng)
    formats = generate.format_list
    if generate.format_weights is None:
        fmt = formats[int(rng.integers(len(formats)))]  # the draw of unweighted formats is kept: same data as before
    else:
        fmt = formats[int(rng.choice(len(formats), p=np.divide(generate.format_weights, sum(generate.format_weights))))]
    return random_plate_text(fmt, alphabet, rng)


def render_sample(generate: GenerateConfig, alphabet: str, index: int,
                  labels: LabelModel | None = None) -> tuple[str, np.ndarray]:
    """(label, RGB image) of image ``index`` of the dataset ``generate`` (and ``labels``) describe."""
    rng = image_rng(generate.seed, index)
    label, rendered = sample_plate_text(generate, alphabet, rng, labels)
    image = render_plate(rendered, generate.height, generate.width, rng, generate.country_strip_probability)
    return label, image


def check_formats(generate: GenerateConfig, plates: PlatesConfig, labels: LabelModel | None = None) -> None:
    """Fail early (naming the format) if a format cannot give valid labels or be drawn."""
    codec = PlateCodec.from_config(plates)
    pools = _pools(plates.alphabet)
    if labels is not None:
        where = "generate.formats: auto (the labels of data.source)"
        unknown = sorted(set(labels.alphabet) - set(plates.alphabet))
        if unknown:
            raise TransferlabError(f"{where}: characters {''.join(unknown)!r} are not in plates.alphabet")
        for pattern in labels.patterns:
            try:
                codec.check(codec.label_of(pattern.example))
            except LabelError as exc:
                raise TransferlabError(f"{where}: plates like {pattern.example!r}: {exc}") from None
        _check_drawable(where, set(labels.alphabet))
        return
    for i, fmt in enumerate(generate.format_list):
        where = f"generate.formats[{i}] {fmt!r}"
        try:
            label, _ = random_plate_text(fmt, plates.alphabet, np.random.default_rng(0))
            codec.check(label)
        except (LabelError, TransferlabError) as exc:
            raise TransferlabError(f"{where}: {exc}") from None
        chars = set()
        for c in fmt:
            if c not in FORMAT_SEPARATORS:
                chars.update(pools.get(c, c))
        _check_drawable(where, chars)


def _check_drawable(where: str, chars: set[str]) -> None:
    undrawable = sorted(c for c in chars if not any(_has_glyph(f, c) for f in range(len(FONTS))))
    if undrawable:
        raise TransferlabError(f"{where}: no bundled font can draw {''.join(undrawable)!r}")


class _Progress:
    """tqdm when it is installed, else one line per 10 % on stderr."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.done, self.next_report = total, enabled, 0, 0.1
        self.start = time.perf_counter()
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc="generate", unit="img", file=sys.stderr, mininterval=0.5)
            except ImportError:
                pass

    def update(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled and self.done >= self.next_report * self.total:
            rate = self.done / max(1e-9, time.perf_counter() - self.start)
            print(f"generate: {self.done}/{self.total} images ({rate:.0f}/s)", file=sys.stderr, flush=True)
            while self.next_report * self.total <= self.done:
                self.next_report += 0.1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def save_preview(images: list[np.ndarray], labels: list[str], path: str | Path, columns: int = 4) -> None:
    """A grid of crops with their labels underneath (cv2 only: fast and deterministic)."""
    height, width = images[0].shape[:2]
    zoom = max(1, round(64 / height))
    cell_h, cell_w = height * zoom + 18, width * zoom
    rows = math.ceil(len(images) / columns)
    sheet = np.full((rows * (cell_h + 4) + 4, columns * (cell_w + 4) + 4, 3), 255, np.uint8)
    for k, (image, label) in enumerate(zip(images, labels)):
        r, c = divmod(k, columns)
        y, x = 4 + r * (cell_h + 4), 4 + c * (cell_w + 4)
        big = cv2.resize(image, (cell_w, height * zoom), interpolation=cv2.INTER_NEAREST)
        sheet[y:y + height * zoom, x:x + cell_w] = big
        cv2.putText(sheet, label, (x + 2, y + cell_h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])


def encode_png(image: np.ndarray) -> bytes:
    """RGB image -> PNG bytes (deterministic for the same pixels and library versions)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise TransferlabError("could not encode an image as PNG")
    return data.tobytes()


_WORKER_JOB: tuple[GenerateConfig, str, LabelModel | None] | None = None


def _worker_init(generate: GenerateConfig, alphabet: str, labels: LabelModel | None) -> None:
    global _WORKER_JOB
    _WORKER_JOB = (generate, alphabet, labels)
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only contend
    _keep_freed_memory()


def _keep_freed_memory() -> None:
    """glibc only: keep freed arrays for reuse instead of unmapping them (a worker process's own heap).

    Every image allocates a few hundred-kilobyte arrays; by default each is mmap'ed and
    unmapped again, which costs about a fifth of the rendering time in page faults.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_trim_threshold, 256 << 20)
        libc.mallopt(m_mmap_threshold, 32 << 20)
    except (OSError, AttributeError):
        pass


def _worker_render(index: int) -> tuple[str, bytes]:
    assert _WORKER_JOB is not None
    generate, alphabet, labels = _WORKER_JOB
    label, image = render_sample(generate, alphabet, index, labels)
    return label, encode_png(image)


def default_workers(count: int) -> int:
    """Processes worth starting for ``count`` images (start-up costs about a second)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 8, count // 500))


def generate_dataset(generate: GenerateConfig, plates: PlatesConfig, progress: bool = True,
                     workers: int = 1, labels: LabelModel | None = None) -> pd.DataFrame:
    """Render ``generate.count`` plates into ``generate.output`` (replaced atomically); the label frame.

    ``labels`` (``transferlab.formats``) makes the plates' texts like those labels instead of
    ``generate.formats``; it is written to label_model.json beside them.
    ``workers`` > 1 renders in that many processes (spawned: the caller's main module must be
    import-safe, as for any multiprocessing); the files are identical for any ``workers``.
    """
    check_formats(generate, plates, labels)
    codec = PlateCodec.from_config(plates)
    rows: list[dict[str, str]] = []
    preview: list[tuple[bytes, str]] = []
    bar = _Progress(generate.count, progress)
    pool = None
    try:
        with atomic_output_dir(generate.output) as out:
            (out / IMAGES_DIR).mkdir()
            if workers > 1 and generate.count > 1:
                pool = multiprocessing.get_context("spawn").Pool(
                    min(workers, generate.count), _worker_init, (generate, plates.alphabet, labels))
                results = pool.imap(_worker_render, range(generate.count), chunksize=16)
            else:
                results = _serial(generate, plates.alphabet, labels)
            for index, (label, png) in enumerate(results):
                codec.check(label)
                name = f"{IMAGES_DIR}/{index:06d}.png"
                (out / name).write_bytes(png)
                rows.append({"image_path": name, "plate_text": label})
                if len(preview) < PREVIEW_IMAGES:
                    preview.append((png, label))
                bar.update()
            frame = pd.DataFrame(rows, columns=["image_path", "plate_text"])
            frame.to_csv(out / LABELS_FILE, index=False, lineterminator="\n")
            images = [cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                      for png, _ in preview]
            save_preview(images, [label for _, label in preview], out / PREVIEW_FILE)
            if labels is not None:
                write_json(out / LABEL_MODEL_FILE, labels.to_dict())
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        bar.close()
    return frame


def _serial(generate: GenerateConfig, alphabet: str, labels: LabelModel | None):
    for index in range(generate.count):
        label, image = render_sample(generate, alphabet, index, labels)
        yield label, encode_png(image)


def run(params: Params) -> dict:
    """Stage ``generate``: write the synthetic plate dataset."""
    params = resolve_plates(params)
    cfg = params.generate
    labels = generator_label_model(params)
    if labels is not None:
        print(f"generate: plates like the {labels.labels} labels of {params.data.source}: "
              f"{len(labels.patterns)} format(s), most often {labels.formats[0]!r} ({labels.weights[0]:.0%})")
    start = time.perf_counter()
    frame = generate_dataset(cfg, params.plates, workers=default_workers(cfg.count), labels=labels)
    seconds = time.perf_counter() - start
    print(f"generate: wrote {len(frame)} synthetic plates ({cfg.height}x{cfg.width}) to {cfg.output} "
          f"in {seconds:.1f} s; preview: {Path(cfg.output) / PREVIEW_FILE}")
    return {"images": len(frame), "seconds": round(seconds, 2)}
