"""Stage ``generate``: the embedded default dataset of synthetic license-plate crops.

No real plate dataset can be downloaded, so the default data is rendered here,
deterministically from a seed: every image ``i`` draws all its randomness from its own
generator, seeded by ``SeedSequence(seed, spawn_key=(i,))``, so the same configuration gives
byte-identical PNGs and CSV, and any image can be rendered alone (parallel or resumed).

A plate is drawn with a real plate-like font (DIN 1451-like OSP-DIN, OCR-B, Routed Gothic,
vendored in ``transferlab/generate/fonts`` with their licences) in one of the styles weighted by
``generate.styles``: ``eu`` (white, yellow, tinted or dark body, optional blue country strip,
registration seals), ``us`` (scenic background, state name, slogan, stickers), ``cn_blue``
(white on blue, separator dot), ``two_colour`` and ``embossed``; with border, rounded corners,
holder frame and bolts, and optionally a prefix glyph (``generate.prefix_glyphs``, e.g. a
Chinese province character) that is drawn but is no part of the label. Then a camera is
simulated: perspective and rotation into a detector-like crop (normal, tight or loose),
car-paint / bumper / texture background, lighting gradient, shadow, glare, blur, sensor noise,
lower resolution, greyscale or night infrared, colour casts and JPEG artefacts, each as often
as ``generate.capture`` says. The defaults are moderate: this is the clean data; the
``augment`` stage adds more.

This module samples the plate text, writes the dataset and its previews (``save_preview``;
``save_comparison_preview`` puts a user's real crops beside synthetic ones); the drawing lives
beside it: ``synth_glyphs`` (fonts), ``synth_draw`` (helpers), ``synth_styles`` and
``synth_scenery`` (the flat plate) and ``synth_capture`` (the camera, ``render_plate``).

Output (the convention of fast-plate-ocr, the same format users bring)::

    <generate.output>/labels.csv      image_path,plate_text (paths relative to the CSV)
    <generate.output>/images/000000.png ...
    <generate.output>/preview.png     a labelled grid of the first images
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from transferlab.config import (
    FORMAT_ANY,
    FORMAT_DIGIT,
    FORMAT_LETTER,
    FORMAT_SEPARATORS,
    GenerateConfig,
    Params,
    PlatesConfig,
)
from transferlab.config import recipe
from transferlab.errors import TransferlabError
from transferlab.generate.fitted import look_path, with_fitted_look
from transferlab.generate.formats import LabelModel, generator_label_model, resolve_plates, sample_plate, sample_uniform_plate
from transferlab.io import atomic_output_dir, write_json
from transferlab.data.plates import LabelError, PlateCodec
from transferlab.generate.capture import _canvas_scale, check_look, render_plate  # noqa: F401  (public here)
from transferlab.generate.glyphs import FONTS, _glyph, _has_glyph, fonts_for  # noqa: F401  (public here)

LABELS_FILE = "labels.csv"
LABEL_MODEL_FILE = "label_model.json"
SKIPPED_FILE = "skipped.json"  # written instead of plates when no stage reads them  # with generate.formats: auto, what the labels imitate
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
# The dataset


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index``: independent of every other image."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def sample_plate_text(generate: GenerateConfig, alphabet: str, rng: np.random.Generator,
                      labels: LabelModel | None = None) -> tuple[str, str]:
    """(label, rendered text) of one plate: like ``labels`` when given, else of one of the formats."""
    if labels is not None:
        if generate.uniform_share and rng.random() < generate.uniform_share:  # no extra draw at 0: same plates
            return sample_uniform_plate(labels, rng)
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
    image = render_plate(rendered, generate.height, generate.width, rng, generate)
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
    sheet = _sheet(images, images[0].shape[:2], columns, labels)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])


def save_comparison_preview(synthetic_images: list[np.ndarray], real_images: list[np.ndarray], path: str | Path,
                            columns: int = 3) -> None:
    """Real crops (left panel) beside synthetic ones (right panel), as one PNG written atomically.

    Every crop is shown at the synthetic size (real ones stretched to it, as the model sees
    them), so a user can judge whether the renders look like their plates. Images are uint8
    RGB, greyscale or RGBA arrays; real ones may have any size.
    """
    if not synthetic_images or not real_images:
        raise TransferlabError(f"comparison preview {path}: needs at least one synthetic and one real image "
                               f"(got {len(synthetic_images)} and {len(real_images)})")
    size = _as_rgb(synthetic_images[0], "synthetic image 0").shape[:2]
    panels = []
    for kind, images in (("real", real_images), ("synthetic", synthetic_images)):
        grid = _sheet([_as_rgb(im, f"{kind} image {i}") for i, im in enumerate(images)], size, columns)
        title = np.full((26, grid.shape[1], 3), 255, np.uint8)
        cv2.putText(title, f"{kind} ({len(images)})", (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1,
                    cv2.LINE_AA)
        panels.append(np.vstack([title, grid]))
    height = max(p.shape[0] for p in panels)
    panels = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255) for p in panels]
    divider = np.full((height, 6, 3), 160, np.uint8)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(encode_png(np.hstack([panels[0], divider, panels[1]])))
    os.replace(tmp, path)


def _as_rgb(image: np.ndarray, what: str) -> np.ndarray:
    """uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> (H, W, 3) RGB; anything else is an error."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise TransferlabError(f"comparison preview: {what} is {image.dtype} of shape {image.shape}; "
                               "expected uint8 (H, W), (H, W, 3) or (H, W, 4)")
    if image.ndim == 2 or image.shape[2] == 1:
        return np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    return image[..., :3]


def _sheet(images: list[np.ndarray], size: tuple[int, int], columns: int,
           captions: list[str] | None = None) -> np.ndarray:
    """A white grid of ``images`` resized to ``size`` = (height, width), zoomed to >= 64 px high;
    with ``captions``, each is written under its image."""
    height, width = size
    zoom = max(1, round(64 / height))
    cell_h, cell_w = height * zoom + (18 if captions is not None else 0), width * zoom
    rows = math.ceil(len(images) / columns)
    sheet = np.full((rows * (cell_h + 4) + 4, columns * (cell_w + 4) + 4, 3), 255, np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        y, x = 4 + r * (cell_h + 4), 4 + c * (cell_w + 4)
        if image.shape[:2] != (height, width):  # as images.read_rgb stretches a crop to the model's size
            shrink = image.shape[0] >= height
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        big = cv2.resize(image, (cell_w, height * zoom), interpolation=cv2.INTER_NEAREST)
        sheet[y:y + height * zoom, x:x + cell_w] = big
        if captions is not None:
            cv2.putText(sheet, captions[k], (x + 2, y + cell_h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                        cv2.LINE_AA)
    return sheet


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

    ``labels`` (``transferlab.generate.formats``) makes the plates' texts like those labels instead of
    ``generate.formats``; it is written to label_model.json beside them.
    ``workers`` > 1 renders in that many processes (spawned: the caller's main module must be
    import-safe, as for any multiprocessing); the files are identical for any ``workers``.
    """
    check_formats(generate, plates, labels)
    check_look(generate, plates.alphabet)
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
    params, fitted = with_fitted_look(params)
    params, _ = recipe.apply(params)  # the synthetic budget (generate.count) of in-domain pretraining
    cfg = params.generate
    if fitted:
        print(f"generate: the look fitted by the look stage ({look_path(params)})")
    if not (params.reads_generator_output or params.pretrain.enabled):
        # The user's own data and no synthetic pretraining: nothing reads these plates.
        with atomic_output_dir(cfg.output) as out:
            write_json(out / SKIPPED_FILE, {"rendered": 0, "why": "data.source is not generate.output and "
                                            "pretrain.enabled is false"})
        print(f"generate: skipped: data.source is {params.data.source} and pretrain.enabled is false "
              "(no stage reads synthetic plates)")
        return {"images": 0, "seconds": 0.0}
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
