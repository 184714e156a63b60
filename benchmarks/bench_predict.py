"""Reading speed: the old Keras path, the traced Keras path, ONNX Runtime and TFLite, on the same plates.

    python benchmarks/bench_predict.py [--model models/model.keras] [--count 400] [--calls 200]

Without ``--model`` it builds the default pipeline's architecture (EfficientNet-Lite0 with
ImageNet weights, 48x144, 7 slots x 35 symbols; the head untrained: speed does not depend
on the weights). It renders ``--count`` synthetic plates (64x192 PNGs, resized when read),
exports the model to ONNX and TFLite (each parity-checked against Keras), then prints, in
one run on the same images:

- single-image latency (median, p90 of ``--calls`` calls of ``predict_arrays([image])``:
  resize, model and decoding) and batched plates/s (batch 32) of each path;
- the wall time of ``transferlab predict MODEL FOLDER --csv out.csv`` on the files, in a
  fresh process (imports included), for the ONNX and the Keras model.

The "old" path is the reader before the export work: ``model.predict`` on every call.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from transferlab import export
from transferlab.config import GenerateConfig, PlatesConfig
from transferlab.decoding import LABELS_FILE, Labels
from transferlab.predict import KerasRunner, load_keras_model
from transferlab.runtime import FastReader, load_runner
from transferlab.synth import render_sample

BATCH = 32


class OldPredictRunner:
    """The reader before the export work: ``model.predict`` (with its per-call set-up) on every call."""

    def __init__(self, model):
        self.model = model

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(batch, batch_size=BATCH, verbose=0))


def default_model(folder: Path) -> Path:
    """The default pipeline's architecture, saved with its labels.json."""
    from transferlab.backbones import build_backbone
    from transferlab.models import build_model

    plates = PlatesConfig()
    model = build_model(build_backbone("efficientnet_lite0", (48, 144, 3), True), "plates", plates.slots,
                        len(plates.alphabet), 128, 0.1)
    model.save(folder / "model.keras")
    Labels("plates", list(plates.alphabet), 48, 144, plates.slots, None).save(folder / LABELS_FILE)
    return folder / "model.keras"


def write_plates(folder: Path, count: int) -> list[np.ndarray]:
    """``count`` synthetic plate PNGs (the generate stage's renderer); returns the decoded images."""
    folder.mkdir(parents=True)
    generate, alphabet = GenerateConfig(), PlatesConfig().alphabet
    images = []
    for i in range(count):
        image = render_sample(generate, alphabet, i)[1]
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        images.append(image)
    return images


def speed(reader: FastReader, images: list[np.ndarray], calls: int) -> tuple[float, float, float]:
    """(median ms, p90 ms) of one image through ``predict_arrays``, and plates/s over all images in batches."""
    for _ in range(5):
        reader.predict_rows(images[:1])
    seconds = []
    for i in range(calls):
        started = time.perf_counter()
        reader.predict_rows(images[i % len(images): i % len(images) + 1])
        seconds.append(time.perf_counter() - started)
    reader.predict_rows(images[:BATCH], BATCH)
    started = time.perf_counter()
    reader.predict_rows(images, BATCH)
    rate = len(images) / (time.perf_counter() - started)
    return float(np.median(seconds) * 1000), float(np.percentile(seconds, 90) * 1000), rate


def cli_wall(model: Path, folder: Path, out: Path) -> float:
    """Seconds of ``transferlab predict MODEL FOLDER --csv OUT`` in a fresh process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "transferlab.cli", "predict", str(model), str(folder), "--csv", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a .keras model with labels.json beside it")
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        root = Path(tmp)
        model_path = args.model or default_model(root)
        labels = Labels.load(model_path.parent / LABELS_FILE)
        images = write_plates(root / "plates", args.count)
        model = load_keras_model(model_path)
        exports = {}
        for fmt in ("onnx", "tflite"):
            result = export.export_keras(model, labels, images[:64], root / f"export/model.{fmt}", fmt)
            exports[fmt] = result.path
            print(f"{fmt}: parity {result.parity.summary()}")
        paths = {
            "old Reader (model.predict per call)": FastReader(OldPredictRunner(model), labels),
            "Keras, traced tf.function": FastReader(KerasRunner(model), labels),
            "ONNX Runtime": FastReader(load_runner(exports["onnx"]), labels),
            "TFLite (LiteRT)": FastReader(load_runner(exports["tflite"]), labels),
        }
        print(f"\n{args.count} plates {images[0].shape[0]}x{images[0].shape[1]} read at "
              f"{labels.image_height}x{labels.image_width}; single image: {args.calls} calls of predict_arrays([image])")
        print(f"{'path':40s} {'median ms':>10s} {'p90 ms':>8s} {'plates/s':>9s}")
        for name, reader in paths.items():
            median, p90, rate = speed(reader, images, args.calls if "old" not in name else min(args.calls, 50))
            print(f"{name:40s} {median:10.2f} {p90:8.2f} {rate:9.0f}")
        print(f"\ntransferlab predict on {args.count} files -> CSV, fresh process (imports included):")
        for name, path in (("ONNX", exports["onnx"]), ("Keras", model_path)):
            cli_wall(path, root / "plates", root / "warm.csv")  # first run warms the file cache
            print(f"  {name:6s} {cli_wall(path, root / 'plates', root / f'{name}.csv'):6.2f} s")


if __name__ == "__main__":
    main()
