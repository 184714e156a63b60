"""fast-plate-ocr, the speed reference of ``bench_predict.py``, run by the peer's own virtualenv's python.

``bench_predict.py`` installs ``fast-plate-ocr`` into a separate virtualenv and runs this file
with that venv's python (only the standard library and the peer's packages are imported):

    python peer_fast_plate_ocr.py cli ARGS...         # fast-plate-ocr's own CLI (train, export, ...)
    python peer_fast_plate_ocr.py speed MODEL.onnx PLATE_CONFIG IMAGES.npy [--calls N] [--batch 32] [--rounds 3]
    python peer_fast_plate_ocr.py csv MODEL.onnx PLATE_CONFIG FOLDER OUT.csv

``cli export`` works around the Erfc bug first: TensorFlow >= 2.18 writes the exact GELU as
``0.5 * x * erfc(-x / sqrt(2))`` and tf2onnx has no handler for ``Erfc``
(onnx/tensorflow-onnx#2347, ankandrew/fast-plate-ocr#80), so the export stops on
"Tensorflow op ... Erfc is not supported". When this tf2onnx has no ``Erfc`` handler, one is
registered that writes ``1 - Erf(x)`` (ONNX ``Erf``, opset >= 9): the same function, not an
approximation, so the export command's own Keras-vs-ONNX check still applies. The line it
prints (``ERFC_FIX``) says which case it was.

``speed`` prints JSON: single-image latency of ``LicensePlateRecognizer.run(image)`` (resize,
model, decoding with confidences) and batched plates/s of ``run(list of BATCH images)`` over all
images: the fastest of ``--rounds`` passes after one untimed pass.
``csv`` is the peer's "read a folder to a CSV" (it has no such command): a fresh process
timed from outside, imports included, like ``transferlab predict MODEL FOLDER --csv OUT``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

ERFC_FIX = "tf2onnx Erfc handler registered: Erfc(x) -> 1 - Erf(x) (exact, ONNX Erf)"


def register_erfc_handler() -> str:
    """Give tf2onnx an ``Erfc`` handler (``1 - Erf(x)``) unless it has one; returns what was done."""
    import numpy as np
    from tf2onnx import constants, utils
    from tf2onnx.handler import tf_op

    if any("Erfc" in ops for ops in tf_op.get_opsets().get(constants.ONNX_DOMAIN, [])):
        return "not needed: this tf2onnx converts Erfc itself"

    def erfc(ctx, node, **kwargs):
        dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
        one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
        erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=node.name, name="erf")
        shapes, dtypes = node.output_shapes, node.output_dtypes
        ctx.remove_node(node.name)
        ctx.make_node("Sub", [one.output[0], erf.output[0]], outputs=[node.output[0]], name=node.name,
                      shapes=shapes, dtypes=dtypes)

    tf_op.register_handler(erfc, 9, ["Erfc"], constants.ONNX_DOMAIN, {})
    return ERFC_FIX


def run_cli(args: list[str]) -> None:
    """fast-plate-ocr's own command line (``fast-plate-ocr ARGS``), with the Erfc fix for ``export``."""
    if args[:1] == ["export"]:
        print(f"ERFC_FIX: {register_erfc_handler()}", flush=True)
    from fast_plate_ocr.cli.cli import main_cli

    main_cli(args, prog_name="fast-plate-ocr")


def onnx_params(path: str) -> int:
    """Weights in the ONNX file (initialisers' elements)."""
    import numpy as np
    import onnx

    return int(sum(np.prod(t.dims) for t in onnx.load(path).graph.initializer))


def speed(model: str, config: str, images_file: str, calls: int, batch: int, rounds: int) -> dict:
    """Single-image latency and batched plates/s of the peer's ONNX reader on the given images."""
    import numpy as np
    from fast_plate_ocr import LicensePlateRecognizer

    reader = LicensePlateRecognizer(onnx_model_path=model, plate_config_path=config, device="cpu")
    images = list(np.load(images_file))
    for i in range(5):
        reader.run(images[i], return_confidence=True)
    seconds = []
    for i in range(calls):
        started = time.perf_counter()
        reader.run(images[i % len(images)], return_confidence=True)
        seconds.append(time.perf_counter() - started)
    passes = []
    for _ in range(rounds + 1):  # the first pass untimed; the fastest of the others counts
        started = time.perf_counter()
        for i in range(0, len(images), batch):
            reader.run(images[i:i + batch], return_confidence=True)
        passes.append(time.perf_counter() - started)
    rate = len(images) / min(passes[1:])
    return {"median_ms": float(np.median(seconds) * 1000), "p90_ms": float(np.percentile(seconds, 90) * 1000),
            "plates_per_s": rate, "params": onnx_params(model), "providers": reader.providers,
            "input": [reader.config.img_height, reader.config.img_width, reader.config.image_color_mode]}


def folder_to_csv(model: str, config: str, folder: str, out: str, batch: int = 32) -> None:
    """Every image file in ``folder`` read by the peer's reader, one CSV row each (file, plate, confidence)."""
    import csv
    import os

    from fast_plate_ocr import LicensePlateRecognizer

    reader = LicensePlateRecognizer(onnx_model_path=model, plate_config_path=config, device="cpu")
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith((".png", ".jpg")))
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "plate", "confidence"])
        for i in range(0, len(files), batch):
            for file, pred in zip(files[i:i + batch], reader.run(files[i:i + batch], return_confidence=True)):
                writer.writerow([file, pred.plate, f"{float(pred.char_probs.mean()):.4f}"])


def main() -> None:
    if sys.argv[1:2] == ["cli"]:
        return run_cli(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    timing = sub.add_parser("speed")
    for name in ("model", "config", "images"):
        timing.add_argument(name)
    timing.add_argument("--calls", type=int, default=200)
    timing.add_argument("--batch", type=int, default=32)
    timing.add_argument("--rounds", type=int, default=3)
    to_csv = sub.add_parser("csv")
    for name in ("model", "config", "folder", "out"):
        to_csv.add_argument(name)
    args = parser.parse_args()
    if args.command == "speed":
        print(json.dumps(speed(args.model, args.config, args.images, args.calls, args.batch, args.rounds)))
    else:
        folder_to_csv(args.model, args.config, args.folder, args.out)


if __name__ == "__main__":
    main()
