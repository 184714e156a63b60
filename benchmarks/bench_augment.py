"""Throughput of the augmentation pipeline at the default image size.

    python benchmarks/bench_augment.py [--count 1000]

Prints images/s of augment_images at several strengths on synthetic plates (64x192).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from transferlab.augment import augment_images
from transferlab.config import GenerateConfig, PlatesConfig
from transferlab.generate.render import render_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    generate, alphabet = GenerateConfig(), PlatesConfig().alphabet
    base = np.stack([render_sample(generate, alphabet, i)[1] for i in range(100)])
    images = np.concatenate([base] * (args.count // len(base) + 1))[: args.count]
    print(f"{args.count} images of {images.shape[1]}x{images.shape[2]}, one process (strength 0 is a no-op)")
    augment_images(images[:64], 0.5, seed=0)  # warm-up: imgaug and OpenCV initialise lazily
    for strength in (0.3, 0.6, 1.0):
        start = time.perf_counter()
        augment_images(images, strength, seed=0)
        seconds = time.perf_counter() - start
        print(f"strength {strength:.1f}: {args.count / seconds:8.0f} images/s")


if __name__ == "__main__":
    main()
