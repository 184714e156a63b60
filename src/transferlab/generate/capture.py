"""The camera of a synthetic crop: the plate placed in a scene, lit, blurred, noisy and compressed.

``render_plate`` picks the plate style and prefix glyph, draws the plate (``synth_styles``) and
films it under the capture conditions of ``generate.capture``. Every probability or weight of 0
draws nothing from the generator, so a look that is switched off leaves the other renders as
they were (the defaults render what the generator rendered before styles existed).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from transferlab.config import CaptureConfig, GenerateConfig, StyleWeights
from transferlab.errors import TransferlabError
from transferlab.generate.draw import _grid, _jitter, _low_freq
from transferlab.generate.glyphs import FONTS, PREFIX_FONT_GLYPHS, _has_glyph, fonts_for, undrawable_prefix_glyphs
from transferlab.generate.styles import STYLES, Style, _draw_plate

CAR_PAINTS = ((236, 236, 234), (22, 22, 24), (172, 174, 177), (104, 106, 110), (26, 40, 82), (44, 74, 142),
              (150, 22, 28), (92, 18, 22), (32, 72, 46), (200, 186, 152), (222, 182, 44), (202, 92, 34),
              (82, 56, 40), (60, 62, 66))


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


def _placement(rng: np.random.Generator, plate_h: int, plate_w: int, height: int, width: int,
               crop: str = "normal") -> np.ndarray:
    """Homography from the flat plate to the canvas: perspective, rotation, then a detector-like crop.

    ``crop``: "normal" (a small margin, rarely slightly cut), "tight" (cuts into the plate's edge)
    or "loose" (wide margins: a smaller plate in more of the car).
    """
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
    if crop == "tight":
        mx, my = rng.uniform(-0.03, 0.0, 2), rng.uniform(-0.12, -0.02, 2)
    elif crop == "loose":
        mx, my = rng.uniform(0.08, 0.22, 2), rng.uniform(0.14, 0.32, 2)
    else:
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


# Strong tints: sodium street lamps (yellow), fluorescent light / tinted glass (green), dusk (blue).
_CASTS = (((1.2, 1.0, 0.42), (22, 12, 0)), ((0.72, 1.08, 0.7), (0, 10, 0)), ((0.66, 0.86, 1.3), (0, 6, 18)))


def _colour_cast(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gain, lift = _CASTS[rng.integers(len(_CASTS))]
    strength = rng.uniform(0.5, 1.0)
    return image * (1 + strength * (np.float32(gain) - 1)) + strength * np.float32(lift)


def _chance(rng: np.random.Generator, probability: float) -> bool:
    """True with ``probability``; a probability of 0 draws nothing from ``rng``."""
    return probability > 0 and rng.random() < probability


def _pick_style(weights: StyleWeights, rng: np.random.Generator) -> Style:
    """A style drawn by weight (no draw when only one style has a weight)."""
    names, values = zip(*weights.weights().items())
    w = np.asarray(values, np.float64)
    if np.count_nonzero(w) == 1:
        return STYLES[names[int(np.flatnonzero(w)[0])]]
    return STYLES[names[rng.choice(len(names), p=w / w.sum())]]


def _pick_prefix(glyphs: str, rng: np.random.Generator) -> str:
    """One of ``glyphs`` (no draw when there is no choice)."""
    return glyphs[int(rng.integers(len(glyphs)))] if len(glyphs) > 1 else glyphs


def _crop_kind(capture: CaptureConfig, rng: np.random.Generator) -> str:
    if capture.tight_crop + capture.loose_crop == 0:
        return "normal"
    u = rng.random()
    return "tight" if u < capture.tight_crop else "loose" if u < capture.tight_crop + capture.loose_crop else "normal"


def check_look(look: GenerateConfig, alphabet: str) -> None:
    """Fail early (naming the key) if the prefix glyphs cannot be drawn, or a bare '1' would
    look like an 'I' of the plates' ``alphabet``."""
    if look.bare_one > 0 and "1" in alphabet and "I" in alphabet:
        raise TransferlabError("generate.bare_one: a bare-stroke '1' looks like the 'I' that plates.alphabet "
                               "holds (set bare_one: 0, or drop I from the alphabet as Chinese plates do)")
    undrawable = undrawable_prefix_glyphs(look.prefix_glyphs)
    if undrawable:
        raise TransferlabError(f"generate.prefix_glyphs: no bundled font can draw {undrawable!r} "
                               f"(the prefix font has {PREFIX_FONT_GLYPHS})")


def render_plate(rendered_text: str, height: int, width: int, rng: np.random.Generator,
                 look: GenerateConfig) -> np.ndarray:
    """One synthetic plate crop showing ``rendered_text``: uint8 RGB of shape (height, width, 3).

    Only the look of ``look`` is read (styles, prefix_glyphs, bare_one, capture, country_strip_probability).
    """
    fonts = fonts_for(rendered_text)
    if not fonts:
        missing = sorted({c for c in rendered_text if not c.isspace() and not any(_has_glyph(i, c) for i in range(len(FONTS)))})
        raise TransferlabError(f"no bundled font can draw {''.join(missing)!r} (plate {rendered_text!r})")
    style = _pick_style(look.styles, rng)
    prefix = _pick_prefix(look.prefix_glyphs, rng)
    if _chance(rng, look.capture.very_low_resolution):  # a far-away plate: few pixels, upscaled to the crop
        small_h = max(8, int(round(height * rng.uniform(0.35, 0.6))))
        small_w = max(8, int(round(width * small_h / height)))
        small = _shoot(rendered_text, prefix, small_h, small_w, rng, style, fonts, look)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return _shoot(rendered_text, prefix, height, width, rng, style, fonts, look)


def _shoot(rendered_text: str, prefix: str, height: int, width: int, rng: np.random.Generator, style: Style,
           fonts: list[int], look: GenerateConfig) -> np.ndarray:
    """Draw the plate and film it into a (height, width) crop."""
    capture = look.capture
    s = _canvas_scale(height)
    ch, cw = int(round(height * s)), int(round(width * s))
    strip = style.country_strip and rng.random() < look.country_strip_probability
    infrared = _chance(rng, capture.greyscale)  # monochrome camera (where coloured seals would read as an '8')
    night = _chance(rng, capture.night_ir)
    bare_one = _chance(rng, look.bare_one)
    plate, alpha = _draw_plate(rendered_text, prefix, ch, cw, rng, style, strip, fonts,
                               seals_allowed=not (infrared or night), bare_one=bare_one)

    background = cv2.resize(_background(rng, height, width), (cw, ch), interpolation=cv2.INTER_LINEAR)
    matrix = _placement(rng, plate.shape[0], plate.shape[1], ch, cw, _crop_kind(capture, rng))
    # Colour warped with replicated edges, coverage with zero outside: a clean anti-aliased outline.
    warped = cv2.warpPerspective(plate, matrix, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    cover = cv2.warpPerspective(alpha, matrix, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0)
    canvas = cv2.blendLinear(warped, background, cover, 1 - cover)
    if night:  # the IR flash lights up the retro-reflective plate; the scene around it stays dark
        scene, lit = rng.uniform(0.06, 0.3), rng.uniform(1.15, 1.6)
        canvas *= (scene + (lit - scene) * cover)[..., None]

    if rng.random() < 0.2:
        length = int(round(int(rng.integers(1, 3)) * s)) | 1
        angle = math.radians(rng.normal(0, 20))
        canvas = cv2.filter2D(canvas, -1, _motion_kernel(length, angle), borderType=cv2.BORDER_REFLECT)
    elif rng.random() < 0.6:
        canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.2, 0.7) * s)
    image = _lighting(cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA), rng)
    if _chance(rng, capture.colour_cast):
        image = _colour_cast(image, rng)

    if _chance(rng, capture.low_resolution):  # a camera with fewer pixels on the plate, upsampled to the crop size
        f = rng.uniform(0.6, 0.9)
        small = cv2.resize(image, (max(4, int(width * f)), max(4, int(height * f))), interpolation=cv2.INTER_AREA)
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if infrared or night:
        gray = image @ np.float32([0.299, 0.587, 0.114])
        image = np.repeat(gray[..., None], 3, axis=2)
    sigma = rng.uniform(0.8, 5.5) * (rng.uniform(1.6, 3.0) if night else 1.0)
    noise = rng.standard_normal((height, width, 1), dtype=np.float32) * sigma
    noise = noise + rng.standard_normal((height, width, 3), dtype=np.float32) * (sigma * 0.35)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.75:
        quality = int(rng.integers(40, 96))
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        image = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return image
