"""Fonts and glyphs of the synthetic plates: the bundled plate fonts, rasterised and cached.

Glyphs are drawn once at ``GLYPH_SIZE`` white on black and cropped to their columns (all rows
kept, so glyphs of one font share a baseline); a line of text is their composition, scaled
into the plate later.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from importlib import resources

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from transferlab.errors import TransferlabError

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
# Draws the prefix glyphs (Chinese province abbreviations), never label characters: it comes
# after FONTS so that font indices 0..len(FONTS)-1 stay the plate fonts.
PREFIX_FONT = len(FONTS)
_ALL_FONTS = (*FONTS, _FontSpec("DroidSansFallback-plates.ttf", (1,), 0.0))
# The characters of the prefix font: Chinese province abbreviations and special plate prefixes.
PREFIX_FONT_GLYPHS = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领警学港澳"
SEPARATOR_DOT = "\u00b7"  # drawn as a round dot between glyphs (Chinese plates)
PREFIX_ASPECT = 0.55  # width / height of a prefix glyph: squeezed to a character cell, as on the plates


@functools.lru_cache(maxsize=None)
def _font(index: int, size: int = GLYPH_SIZE) -> ImageFont.FreeTypeFont:
    data = resources.files("transferlab.generate").joinpath("fonts", _ALL_FONTS[index].file).read_bytes()
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
    if ch == "1" and _ALL_FONTS[index].flag_one:
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


@functools.lru_cache(maxsize=None)
def _bare_one(index: int, stroke: int) -> tuple[np.ndarray, int]:
    """The font's '1' as a bare vertical stroke (no flag, no foot), as Chinese plates draw it.

    The stroke keeps the font's stem width (measured in the middle rows, where a '1' is only
    its stem), its height and its advance, so spacing and weight stay the font's own.
    """
    ink, advance = _glyph(index, "1", stroke)
    rows = np.flatnonzero(ink.max(axis=1))
    top, bottom = int(rows[0]), int(rows[-1])
    middle = ink[top + (bottom - top) * 2 // 5: top + (bottom - top) * 3 // 5 + 1] > 127
    stem = max(1, int(round(float(np.median(middle.sum(axis=1))))))
    bar = np.zeros((ink.shape[0], stem), np.uint8)
    bar[top:bottom + 1] = 255
    return bar, advance


def fonts_for(text: str) -> list[int]:
    """Indices of the bundled fonts that can draw every character of ``text``."""
    chars = {c for c in text if not c.isspace()}
    return [i for i in range(len(FONTS)) if all(_has_glyph(i, c) for c in chars)]


def _text_line(text: str, font: int, stroke: int, tracking: float, space: float,
               seal_space: float = 0.0, bare_one: bool = False) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """One line of text as a tight uint8 mask, and the column spans of its spaces.

    ``tracking`` and ``space`` are fractions of the glyph size: extra room between
    characters, and the width of a space. ``seal_space`` (if > 0) widens spaces for seals.
    ``SEPARATOR_DOT`` is drawn as a round dot at mid-height. ``bare_one``: every '1' is a
    bare stroke (``_bare_one``).
    """
    placed: list[tuple[int, np.ndarray]] = []
    spaces: list[tuple[int, int]] = []
    dots: list[int] = []
    x = 0
    gap = int(round(tracking * GLYPH_SIZE))
    for ch in text:
        if ch.isspace():
            width = int(round(max(space, seal_space) * GLYPH_SIZE))
            spaces.append((x, x + width))
            x += width
            continue
        if ch == SEPARATOR_DOT:
            width = int(round(0.22 * GLYPH_SIZE))
            dots.append(x + width // 2)
            x += width + gap
            continue
        ink, advance = _bare_one(font, stroke) if bare_one and ch == "1" else _glyph(font, ch, stroke)
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
    for dot in dots:
        radius = int(round(0.045 * GLYPH_SIZE)) + stroke // 2
        cv2.circle(line, (dot - left, int(rows[0] + rows[-1]) // 2), radius, 255, -1, cv2.LINE_AA)
    cols = np.flatnonzero(line.max(axis=0))
    line = line[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    shift = left + cols[0]
    return line, [(a - shift, b - shift) for a, b in spaces]


def registration_line(text: str, prefix: str, font: int, stroke: int, tracking: float, space: float,
                      seal_space: float = 0.0, bare_one: bool = False) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``_text_line`` of ``text`` with ``prefix`` (one glyph or empty) drawn before it.

    The prefix is squeezed into a character cell as tall as the line (as on Chinese plates);
    it is drawn but is no part of the label.
    """
    line, spaces = _text_line(text, font, stroke, tracking, space, seal_space, bare_one)
    if not prefix:
        return line, spaces
    height = line.shape[0]
    width = max(1, int(round(height * PREFIX_ASPECT)))
    glyph = cv2.resize(_prefix_ink(prefix), (width, height), interpolation=cv2.INTER_AREA)
    gap = max(1, int(round((tracking + 0.08) * GLYPH_SIZE)))
    joined = np.zeros((height, width + gap + line.shape[1]), np.uint8)
    joined[:, :width] = glyph
    joined[:, width + gap:] = line
    return joined, [(a + width + gap, b + width + gap) for a, b in spaces]


def prefix_font(ch: str) -> int | None:
    """The font that draws prefix glyph ``ch``: the prefix font, else the first plate font with it."""
    return next((i for i in (PREFIX_FONT, *range(len(FONTS))) if _has_glyph(i, ch)), None)


def undrawable_prefix_glyphs(glyphs: str) -> str:
    """The characters of ``glyphs`` no bundled font can draw (sorted, each once)."""
    return "".join(sorted({c for c in glyphs if prefix_font(c) is None}))


@functools.lru_cache(maxsize=64)
def _prefix_ink(ch: str) -> np.ndarray:
    """Ink of prefix glyph ``ch``, cropped to its rows and columns."""
    font = prefix_font(ch)
    if font is None:
        raise TransferlabError(f"no bundled font can draw the prefix glyph {ch!r}")
    ink, _ = _glyph(font, ch, _ALL_FONTS[font].strokes[0])
    rows = np.flatnonzero(ink.max(axis=1))
    return np.ascontiguousarray(ink[rows[0]:rows[-1] + 1])


@functools.lru_cache(maxsize=256)
def _small_text(text: str, font: int, stroke: int) -> np.ndarray:
    return _text_line(text, font, stroke, 0.06, 0.35)[0]

