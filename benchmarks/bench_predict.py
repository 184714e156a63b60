"""Reading speed of the old and traced Keras paths, ONNX Runtime, TFLite and fast-plate-ocr, on the same plates.

    python benchmarks/bench_predict.py [--model models/model.keras] [--count 400] [--calls 200]
                                       [--no-peer] [--peer-venv DIR] [--peer-train 1000] [--peer-epochs 1]

Without ``--model`` it builds the default pipeline's architecture (EfficientNet-Lite0 with
ImageNet weights, 48x144, 7 slots x 35 symbols; the head untrained: speed does not depend
on the weights). It renders ``--count`` synthetic plates (64x192 PNGs, resized when read),
exports the model to ONNX and TFLite (each parity-checked against Keras), then prints, in
one run on the same images:

- single-image latency (median, p90 of ``--calls`` calls of ``predict_rows([image])``:
  resize, model and decoding) and batched plates/s (batch 32; the fastest of 3 passes over all
  images, after one untimed pass) of each path;
- the wall time of ``transferlab predict MODEL FOLDER --csv out.csv`` on the files, in a
  fresh process (imports included), for the ONNX and the Keras model;
- the same for the peer, fast-plate-ocr 1.1.0 (a speed reference, never a dependency), in its
  own virtualenv (``--peer-venv``; created once, reused): its ``train`` command trains cct_xs
  (``peer_cct_xs.yaml``, 64x128 RGB) for ``--peer-epochs`` on ``--peer-train`` rendered plates,
  its ``export`` command writes ONNX, and ``peer_fast_plate_ocr.py`` (run by the peer venv's
  python, printing JSON) times ``LicensePlateRecognizer.run`` on the same images (one image;
  lists of 32) and reads the files to a CSV in a fresh process;
- a "targets" block: each target, the measured value, met or missed.

The peer's export needs a fix on current TensorFlow, whose exact GELU is ``Erfc``, which
tf2onnx cannot convert (onnx/tensorflow-onnx#2347): the helper registers a tf2onnx handler
``Erfc(x) -> 1 - Erf(x)`` (exact) when tf2onnx has none, and the output says so. ``--no-peer``
skips the peer (offline); without the package index the peer step stops with one message.

The "old" path is the reader before the export work: ``model.predict`` on every call.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from transferlab.inference import export
from transferlab.config import GenerateConfig, PlatesConfig
from transferlab.inference.decoding import LABELS_FILE, Labels
from transferlab.inference.predict import KerasRunner, load_keras_model
from transferlab.inference.runtime import FastReader, load_runner
from transferlab.generate.render import render_sample

BATCH = 32
ROUNDS = 3  # batched passes timed per path; the fastest counts
HERE = Path(__file__).resolve().parent
PEER_SPEC = "fast-plate-ocr[onnx,train]==1.1.0"
PEER_HELPER, PEER_MODEL = HERE / "peer_fast_plate_ocr.py", HERE / "peer_cct_xs.yaml"
PEER_VENV = Path.home() / ".cache" / "transferlab" / "bench-peer-venv"
RUNTIMES = ("ONNX Runtime", "TFLite (LiteRT)")  # transferlab's runtime paths, for the targets


class OldPredictRunner:
    """The reader before the export work: ``model.predict`` (with its per-call set-up) on every call."""

    def __init__(self, model):
        self.model = model

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(batch, batch_size=BATCH, verbose=0))


def default_model(folder: Path) -> Path:
    """The default pipeline's architecture, saved with its labels.json."""
    from transferlab.training.backbones import build_backbone
    from transferlab.training.models import build_model

    plates = PlatesConfig()
    model = build_model(build_backbone("efficientnet_lite0", (48, 144, 3), True), "plates", plates.slots,
                        len(plates.alphabet), 128, 0.1)
    model.save(folder / "model.keras")
    Labels("plates", list(plates.alphabet), 48, 144, plates.slots, None).save(folder / LABELS_FILE)
    return folder / "model.keras"


def write_plates(folder: Path, count: int, first: int = 0) -> tuple[list[str], list[np.ndarray]]:
    """Synthetic plate PNGs ``first..first+count`` (the generate stage's renderer): their labels and images."""
    folder.mkdir(parents=True)
    generate, alphabet = GenerateConfig(), PlatesConfig().alphabet
    labels, images = [], []
    for i in range(first, first + count):
        label, image = render_sample(generate, alphabet, i)
        cv2.imwrite(str(folder / f"{i:06d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        labels.append(label)
        images.append(image)
    return labels, images


def speed(reader: FastReader, images: list[np.ndarray], calls: int) -> tuple[float, float, float]:
    """(median ms, p90 ms) of one image through ``predict_rows``, and plates/s over all images in batches."""
    for _ in range(5):
        reader.predict_rows(images[:1])
    seconds = []
    for i in range(calls):
        started = time.perf_counter()
        reader.predict_rows(images[i % len(images): i % len(images) + 1])
        seconds.append(time.perf_counter() - started)
    rate = best_rate(lambda: reader.predict_rows(images, BATCH), len(images))
    return float(np.median(seconds) * 1000), float(np.percentile(seconds, 90) * 1000), rate


def best_rate(read_all, count: int, rounds: int = ROUNDS) -> float:
    """Plates/s of the fastest of ``rounds`` passes over all images, after one untimed pass (the peer's helper
    measures the same way)."""
    read_all()
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        read_all()
        seconds.append(time.perf_counter() - started)
    return count / min(seconds)


def cli_wall(command: list[str]) -> float:
    """Seconds of ``command`` in a fresh process, after one untimed run (which warms the file cache)."""
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def peer_python(venv: Path) -> Path:
    """The peer venv's python: created and ``pip install PEER_SPEC`` once, reused while its marker matches."""
    python, marker = venv / "bin" / "python", venv / "bench-peer-installed.txt"
    if python.is_file() and marker.is_file() and marker.read_text().strip() == PEER_SPEC:
        print(f"peer: reusing {venv} ({PEER_SPEC})", flush=True)
        return python
    print(f"peer: installing {PEER_SPEC} into {venv} (once; a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--timeout", "30", "--retries", "2", PEER_SPEC]
    done = subprocess.run(pip, capture_output=True, text=True)
    if done.returncode:
        said = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"bench_predict: could not install {PEER_SPEC} into {venv}; is the package index "
                         f"reachable? pip said: {said}\n(--no-peer skips the peer)")
    marker.write_text(PEER_SPEC + "\n")
    return python


def peer_step(python: Path, args: list[str], log: Path) -> subprocess.CompletedProcess:
    """One helper call by the peer venv's python (output kept in ``log``); stops with the log's tail on failure."""
    done = subprocess.run([str(python), str(PEER_HELPER), *args], capture_output=True, text=True)
    log.write_text(done.stdout + done.stderr)
    if done.returncode:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SystemExit(f"bench_predict: peer step {' '.join(args[:2])} failed (log {log}):\n{tail}")
    return done


def peer_model(python: Path, root: Path, count: int, epochs: int) -> tuple[Path, Path]:
    """The peer's model trained by ``fast-plate-ocr train``, exported by its ``export``: (ONNX, plate config)."""
    plates, config = PlatesConfig(), root / "plate_config.yaml"
    root.mkdir(parents=True, exist_ok=True)
    config.write_text(f"max_plate_slots: {plates.slots}\nalphabet: '{plates.alphabet}_'\npad_char: '_'\n"
                      "img_height: 64\nimg_width: 128\nimage_color_mode: rgb\n")
    for split, first, n in (("train", 100_000, count), ("val", 200_000, max(count // 5, 64))):
        labels, _ = write_plates(root / split, n, first)
        rows = [f"{first + i:06d}.png,{label}" for i, label in enumerate(labels)]
        (root / split / "annotations.csv").write_text("image_path,plate_text\n" + "\n".join(rows) + "\n")
    started = time.perf_counter()
    peer_step(python, ["cli", "train", "--model-config-file", str(PEER_MODEL), "--plate-config-file", str(config),
                       "--annotations", str(root / "train/annotations.csv"), "--val-annotations",
                       str(root / "val/annotations.csv"), "--epochs", str(epochs), "--batch-size", "64",
                       "--output-dir", str(root / "trained"), "--seed", "0"], root / "train.log")
    keras_file = next((root / "trained").glob("*/last.keras"))
    print(f"peer: trained cct_xs {epochs} epoch(s) on {count} plates in {time.perf_counter() - started:.0f} s")
    said = peer_step(python, ["cli", "export", "-m", str(keras_file), "--plate-config-file", str(config),
                              "-f", "onnx"], root / "export.log")
    for line in (said.stdout + said.stderr).splitlines():
        if line.startswith("ERFC_FIX: "):
            print(f"peer: export: Erfc fix (onnx/tensorflow-onnx#2347): {line[len('ERFC_FIX: '):]}")
        elif "matches Keras" in line or "deviates from Keras" in line:
            print(f"peer: export: its own check: {line.split(' - ', 1)[-1]}")
    return keras_file.with_suffix(".onnx"), config


def measure_peer(args, root: Path, images: list[np.ndarray], plates: Path) -> dict:
    """The peer's single-image latency, batched plates/s and files -> CSV wall, from its own venv."""
    python = peer_python(args.peer_venv)
    onnx_file, config = peer_model(python, root, args.peer_train, args.peer_epochs)
    np.save(root / "images.npy", np.stack(images))
    result = json.loads(peer_step(python, ["speed", str(onnx_file), str(config), str(root / "images.npy"),
                                           "--calls", str(args.calls), "--batch", str(BATCH),
                                           "--rounds", str(ROUNDS)],
                                  root / "speed.log").stdout.strip().splitlines()[-1])
    result["csv_s"] = cli_wall([str(python), str(PEER_HELPER), "csv", str(onnx_file), str(config), str(plates),
                                str(root / "peer.csv")])
    return result


def targets(rows: dict, walls: dict, peer: dict | None, count: int) -> None:
    """Each target of issue #12 beside the value measured in this run (peer targets n/a with --no-peer)."""
    single, batched = min(RUNTIMES, key=lambda n: rows[n][0]), max(RUNTIMES, key=lambda n: rows[n][2])
    rate, csv_s = (peer or {}).get("plates_per_s"), (peer or {}).get("csv_s")
    keras = rows["Keras, traced tf.function"][0]
    checks = [
        (f"single image, best runtime path ({single})", rows[single][0], "ms median", "<= 1.5 ms",
         rows[single][0] <= 1.5),
        (f"batched, best runtime path ({batched})", rows[batched][2], "plates/s",
         f">= 2 x peer = {2 * rate:.0f}" if peer else ">= 2 x peer", rows[batched][2] >= 2 * rate if peer else None),
        (f"{count} files -> CSV, transferlab predict ONNX", walls["ONNX"], "s", "<= 1.0 s", walls["ONNX"] <= 1.0),
        (f"{count} files -> CSV, transferlab predict ONNX", walls["ONNX"], "s",
         f"<= peer = {csv_s:.2f} s" if peer else "<= peer", walls["ONNX"] <= csv_s if peer else None),
        ("Keras path (traced tf.function), single image", keras, "ms median", "<= 10 ms", keras <= 10),
    ]
    print("\ntargets (measured in this run):")
    for name, value, unit, target, met in checks:
        verdict = "n/a (--no-peer)" if met is None else "met" if met else "MISSED"
        print(f"  {name:46s} {value:8.2f} {unit:9s}  target {target:22s} {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a .keras model with labels.json beside it")
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--no-peer", action="store_true", help="skip fast-plate-ocr (e.g. offline)")
    parser.add_argument("--peer-venv", type=Path, default=PEER_VENV, help=f"the peer's venv (default {PEER_VENV})")
    parser.add_argument("--peer-train", type=int, default=1000, help="synthetic plates the peer trains on")
    parser.add_argument("--peer-epochs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        root = Path(tmp)
        model_path = args.model or default_model(root)
        labels = Labels.load(model_path.parent / LABELS_FILE)
        images = write_plates(root / "plates", args.count)[1]
        peer = None if args.no_peer else measure_peer(args, root / "peer", images, root / "plates")
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
        print(f"\n{args.count} plates {images[0].shape[0]}x{images[0].shape[1]}; transferlab reads them at "
              f"{labels.image_height}x{labels.image_width} ({model.count_params():,} weights)"
              + ("" if peer is None else f", the peer at {peer['input'][0]}x{peer['input'][1]} {peer['input'][2]} "
                 f"({peer['params']:,} weights)") + f"; single image: {args.calls} calls")
        print(f"{'path':40s} {'median ms':>10s} {'p90 ms':>8s} {'plates/s':>9s}")
        rows = {}
        for name, reader in paths.items():
            rows[name] = speed(reader, images, args.calls if "old" not in name else min(args.calls, 50))
            print(f"{name:40s} {rows[name][0]:10.2f} {rows[name][1]:8.2f} {rows[name][2]:9.0f}")
        if peer:
            print(f"{'fast-plate-ocr ONNX reader (peer)':40s} {peer['median_ms']:10.2f} {peer['p90_ms']:8.2f} "
                  f"{peer['plates_per_s']:9.0f}")
        print(f"\n{args.count} files -> CSV, fresh process (imports included):")
        walls = {}
        for name, path in (("ONNX", exports["onnx"]), ("Keras", model_path)):
            walls[name] = cli_wall([sys.executable, "-m", "transferlab.cli", "predict", str(path),
                                    str(root / "plates"), "--csv", str(root / f"{name}.csv")])
            print(f"  transferlab predict {name:6s} {walls[name]:6.2f} s")
        if peer:
            print(f"  fast-plate-ocr (peer_fast_plate_ocr.py csv) {peer['csv_s']:6.2f} s")
        targets(rows, walls, peer, args.count)


if __name__ == "__main__":
    main()
