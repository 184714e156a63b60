"""Throughput of the synthetic plate generator at the default crop size.

    python benchmarks/bench_generate.py [--count 500] [--workers N]

Prints images/s for rendering alone and for the whole stage (render + PNG + files),
in one process and in N worker processes (default: one per core, at most 8); then rendering
alone for each plate style and for all styles mixed with every capture condition switched on.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from transferlab.generate import render as synth  # noqa: E402
from transferlab.config import CaptureConfig, GenerateConfig, PlatesConfig, StyleWeights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--workers", type=int, default=min(8, len(os.sched_getaffinity(0))))
    args = parser.parse_args()

    plates = PlatesConfig()
    base = GenerateConfig(count=args.count)
    scale = synth._canvas_scale(base.height)
    canvas = (round(base.height * scale), round(base.width * scale))
    print(f"crop {base.height}x{base.width}, drawn on a {canvas[0]}x{canvas[1]} canvas "
          f"(x{scale:g}) then INTER_AREA-resized; {args.count} images; {os.cpu_count()} CPU(s)")

    seconds = render_seconds(base, plates.alphabet, args.count)
    print(f"render only, 1 process:        {args.count / seconds:7.1f} images/s  ({1000 * seconds / args.count:.2f} ms/image)")

    with tempfile.TemporaryDirectory() as tmp:
        for workers in sorted({1, args.workers}):
            cfg = base.model_copy(update={"output": str(Path(tmp) / f"w{workers}")})
            start = time.perf_counter()
            synth.generate_dataset(cfg, plates, progress=False, workers=workers)
            seconds = time.perf_counter() - start
            size = sum(p.stat().st_size for p in Path(cfg.output).rglob("*.png")) / args.count / 1024
            print(f"generate_dataset, {workers} process(es): {args.count / seconds:7.1f} images/s  "
                  f"({seconds:.2f} s incl. start-up; {size:.1f} KiB per PNG)")

    names = list(StyleWeights.model_fields)
    looks = {name: {"styles": {n: float(n == name) for n in names}} for name in names}
    looks["all mixed, every condition"] = {"styles": dict.fromkeys(names, 1.0), "prefix_glyphs": "京沪粤苏浙皖",
                                           "capture": dict.fromkeys(CaptureConfig.model_fields, 0.15)}
    for name, look in looks.items():
        seconds = render_seconds(GenerateConfig(count=args.count, **look), plates.alphabet, args.count)
        print(f"render only, {name:27s} {args.count / seconds:7.1f} images/s")


def render_seconds(generate: GenerateConfig, alphabet: str, count: int) -> float:
    """Seconds to render ``count`` images in this process (after warming the glyph caches)."""
    for index in range(20):  # warm the glyph caches, as a long run would
        synth.render_sample(generate, alphabet, count + index)
    start = time.perf_counter()
    for index in range(count):
        synth.render_sample(generate, alphabet, index)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
