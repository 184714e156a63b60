"""Exporting a trained model for fast reading (ONNX, TFLite), and proving the export reads the same.

``transferlab export models/model.keras --format onnx`` goes through Keras 3's own
``model.export(...)``: ONNX through tf2onnx, TFLite (``format="litert"``) through TensorFlow's
``tf.lite`` converter, ``--quantize int8`` through that converter's post-training
quantisation with the sample images as its representative data. The decoder is written
beside the exported file (``model.onnx`` -> ``model.labels.json``), so
``transferlab predict model.onnx images/`` needs nothing else, and no TensorFlow.

Every export is checked before it replaces anything: the exported model and the Keras model
read the same sample images, and the export is refused (:class:`TransferlabError`, naming
the file) unless every sample gets the same text and the probabilities agree within the
tolerance. The evaluate stage exports and checks every trained model this way
(``evaluate.export``), so every run has a deployable reader.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from transferlab.inference.decoding import Labels, decoded_texts, prepare_batch
from transferlab.errors import TransferlabError
from transferlab.io import write_json
from transferlab.inference.runtime import labels_path_for, load_runner, run_batches

FORMATS = {"onnx": ".onnx", "tflite": ".tflite"}
# Largest |probability difference| accepted: float32 exports measured ~1e-6 (different kernel
# order); int8 quantisation moves probabilities by a few percent, the text must still agree.
TOLERANCE = {None: 1e-4, "int8": 0.25}
PARITY_SUFFIX = ".parity.json"
DEFAULT_SAMPLES = 16
# Sample files read for the parity check and int8 calibration (a few hundred calibrate well).
MAX_SAMPLE_FILES = 256
READER_FOLDER = "reader"  # the evaluate stage's export, inside evaluate.output
PYFUNC_NAME = "reader_onnx"  # its MLflow pyfunc in the training run


@dataclass
class Parity:
    """The exported model against the Keras model on the same sample images."""

    samples: int
    max_abs_diff: float
    tolerance: float
    mismatches: list[tuple[int, str, str]]  # (sample index, Keras text, exported text)

    @property
    def passed(self) -> bool:
        return not self.mismatches and self.max_abs_diff <= self.tolerance

    def summary(self) -> str:
        texts = f"{self.samples - len(self.mismatches)}/{self.samples} samples read the same text"
        return f"{texts}, max probability difference {self.max_abs_diff:.2g} (tolerance {self.tolerance:g})"


@dataclass
class Exported:
    """One exported model: its file, decoder, parity and speed."""

    path: Path
    labels_path: Path
    format: str
    quantize: str | None
    parity: Parity
    latency_ms_median: float
    latency_ms_p90: float
    images_per_s: float

    def metrics(self, prefix: str) -> dict[str, float]:
        """MLflow/DVC metrics: parity and speed, keys like ``test_onnx_latency_ms_median``."""
        name = f"{prefix}{self.format}{'_' + self.quantize if self.quantize else ''}_"
        return {f"{name}parity_max_abs_diff": self.parity.max_abs_diff,
                f"{name}parity_samples": float(self.parity.samples),
                f"{name}parity_text_mismatches": float(len(self.parity.mismatches)),
                f"{name}latency_ms_median": self.latency_ms_median, f"{name}latency_ms_p90": self.latency_ms_p90,
                f"{name}images_per_s": self.images_per_s}


def default_output(model_path: str | Path, fmt: str, quantize: str | None) -> Path:
    """``models/model.keras`` -> ``models/model.onnx`` (``model.int8.tflite`` when quantised)."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}{'.' + quantize if quantize else ''}{FORMATS[fmt]}")


def check_format(fmt: str, quantize: str | None, output: Path) -> None:
    if fmt not in FORMATS:
        raise TransferlabError(f"export format {fmt!r}: one of {', '.join(FORMATS)}")
    if quantize not in TOLERANCE:
        raise TransferlabError(f"quantize {quantize!r}: only int8")
    if quantize and fmt != "tflite":
        raise TransferlabError("--quantize int8 is done by the TFLite converter: use --format tflite")
    if output.suffix != FORMATS[fmt]:
        raise TransferlabError(f"{output}: a {fmt} export must end with {FORMATS[fmt]}")


def convert(model, path: Path, fmt: str, quantize: str | None, samples: np.ndarray) -> None:
    """Write ``model`` to ``path`` through ``model.export``; the model must have been called once."""
    import keras

    if keras.backend.backend() != "tensorflow":
        convert_on_tensorflow(model, path, fmt, quantize, samples)
        return
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401 - tf2onnx needs it; a clearer message than its own
            import tf2onnx  # noqa: F401
        except ImportError:
            raise TransferlabError("exporting to ONNX needs tf2onnx and onnx: pip install -e '.[export]' "
                                   "(make setup installs them)") from None
        with warnings.catch_warnings():  # Keras patches tf2onnx for NumPy 2 and NumPy warns about it
            warnings.simplefilter("ignore")
            model.export(str(path), format="onnx", verbose=False)
        return
    options = {}
    if quantize == "int8":
        import tensorflow as tf

        # Weights and activations in int8 (inputs and outputs stay float32, so the reader is
        # unchanged); the activation ranges are calibrated on the sample images.
        options = {"optimizations": [tf.lite.Optimize.DEFAULT],
                   "representative_dataset": lambda: ([image[None]] for image in samples.astype(np.float32))}
    model.export(str(path), format="litert", verbose=False, **options)


def convert_on_tensorflow(model, path: Path, fmt: str, quantize: str | None, samples: np.ndarray) -> None:
    """Convert through TensorFlow from another backend: on JAX, Keras' ONNX export needs jax2onnx
    (and its own dependency tree), but a ``.keras`` file is backend-neutral, so a TensorFlow
    process loads it and converts it exactly as for a model trained on TensorFlow."""
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=path.parent) as tmp:
        model.save(Path(tmp) / "model.keras")
        np.save(Path(tmp) / "samples.npy", samples)
        done = subprocess.run([sys.executable, "-m", "transferlab.inference.export", str(Path(tmp) / "model.keras"), str(path),
                               fmt, quantize or "", str(Path(tmp) / "samples.npy")],
                              env={**os.environ, "KERAS_BACKEND": "tensorflow"}, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise TransferlabError(f"{path}: the {fmt} export through TensorFlow failed (TensorFlow converts "
                               f"exports from every backend; is it installed?): {last}")


def parity_check(reference: np.ndarray, exported: np.ndarray, labels: Labels, tolerance: float) -> Parity:
    """Compare two models' probabilities for the same samples: text per sample and max |difference|."""
    if reference.shape != exported.shape:
        raise TransferlabError(f"the exported model outputs {exported.shape}, the Keras model {reference.shape}")
    ours, theirs = decoded_texts(reference, labels), decoded_texts(exported, labels)
    mismatches = [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    diff = float(np.max(np.abs(reference.astype(np.float64) - exported))) if reference.size else 0.0
    return Parity(samples=len(reference), max_abs_diff=diff, tolerance=tolerance, mismatches=mismatches)


def measure_speed(runner, batch: np.ndarray, labels: Labels, calls: int = 50,
                  warmup: int = 5) -> tuple[float, float, float]:
    """Single-image latency (median, p90, ms) and batched images/s (batch 32, through the reader's
    own :func:`run_batches`, so chunks run on every core as they do when reading) on ``batch``."""
    one = batch[:1].astype(np.float32)
    for _ in range(warmup):
        runner(one)
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        runner(one)
        seconds.append(time.perf_counter() - started)
    batched = np.resize(batch, (max(len(batch), 64), *batch.shape[1:])).astype(np.float32)
    run_batches(runner, batched, 32, labels)
    started = time.perf_counter()
    run_batches(runner, batched, 32, labels)
    rate = len(batched) / max(time.perf_counter() - started, 1e-9)
    return float(np.median(seconds) * 1000), float(np.percentile(seconds, 90) * 1000), float(rate)


def export_keras(model, labels: Labels, samples, output: str | Path, fmt: str = "onnx",
                 quantize: str | None = None, reference: np.ndarray | None = None) -> Exported:
    """Export ``model`` to ``output`` (+ ``<stem>.labels.json``, ``<file>.parity.json``), checked.

    ``samples``: images of any size for the parity check (and int8 calibration);
    ``reference``: the Keras model's probabilities for them when already computed. Nothing
    is written unless the export passes the check; then the files replace any earlier ones.
    """
    output = Path(output)
    check_format(fmt, quantize, output)
    batch = prepare_batch(list(samples), labels.image_height, labels.image_width)
    if not len(batch):
        raise TransferlabError("the parity check needs at least one sample image")
    if reference is None:  # the call also builds the model's traced signature, which export needs
        reference = np.asarray(model(batch.astype(np.float32), training=False))
    else:
        model(batch[:1].astype(np.float32), training=False)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.tmp-", dir=output.parent) as tmp:
        staged = Path(tmp) / output.name
        try:
            convert(model, staged, fmt, quantize, batch)
        except TransferlabError:
            raise
        except Exception as exc:  # noqa: BLE001 - converter errors of every kind
            raise TransferlabError(f"{output}: the {fmt} export failed: {exc}") from None
        runner = load_runner(staged)
        parity = parity_check(reference, run_batches(runner, batch, 32, labels), labels, TOLERANCE[quantize])
        if not parity.passed:
            raise TransferlabError(f"{output}: the exported model does not read like the Keras model "
                                   f"({parity.summary()}); first differences (sample, Keras, exported): "
                                   f"{parity.mismatches[:3]}; nothing was written")
        median, p90, rate = measure_speed(runner, batch, labels)
        labels.save(Path(tmp) / "labels.json")
        result = Exported(path=output, labels_path=labels_path_for(output), format=fmt, quantize=quantize,
                          parity=parity, latency_ms_median=median, latency_ms_p90=p90, images_per_s=rate)
        write_json(Path(tmp) / "parity.json", {**asdict(parity), "passed": parity.passed,
                                               "latency_ms_median": median, "latency_ms_p90": p90,
                                               "images_per_s": rate, "format": fmt, "quantize": quantize})
        # The decoder first: a reader finding the new model never pairs it with an older decoder.
        os.replace(Path(tmp) / "labels.json", result.labels_path)
        os.replace(Path(tmp) / "parity.json", output.with_name(output.name + PARITY_SUFFIX))
        os.replace(staged, output)
    return result


def sample_images(labels: Labels, files: list[str] | None, count: int = DEFAULT_SAMPLES) -> np.ndarray:
    """Parity samples: the given image files (at most MAX_SAMPLE_FILES), else ``count`` seeded
    random images (noise and flat grey)."""
    height, width = labels.image_height, labels.image_width
    if files:
        return np.stack([_read_sample(f, height, width) for f in files[:MAX_SAMPLE_FILES]])
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (count - 1, height, width, 3), dtype=np.uint8)
    return np.concatenate([noise, np.full((1, height, width, 3), 128, np.uint8)])


def _read_sample(file: str, height: int, width: int) -> np.ndarray:
    from transferlab.data.images import read_rgb

    try:
        return read_rgb(file, height, width)
    except (ValueError, OSError) as exc:
        raise TransferlabError(f"{file}: a parity sample could not be read: {exc}") from None


def export_command(model_path: str, fmt: str, quantize: str | None, output: str | None,
                   samples: list[str] | None, run_id: str | None, echo=print) -> Exported:
    """``transferlab export MODEL``: export, check, print the result, log it to ``run_id``."""
    from transferlab.inference.predict import LABELS_FILE, load_keras_model
    from transferlab.inference.runtime import expand_inputs

    model_file = Path(model_path)
    target = Path(output) if output else default_output(model_file, fmt, quantize)
    check_format(fmt, quantize, target)
    model = load_keras_model(model_file)  # first: a missing model is the error to report, not its labels
    labels = Labels.load(model_file.parent / LABELS_FILE)
    images = sample_images(labels, expand_inputs(samples) if samples else None)
    result = export_keras(model, labels, images, target, fmt, quantize)
    echo(f"export: wrote {result.path} and {result.labels_path}; parity: {result.parity.summary()}")
    echo(f"export: {result.latency_ms_median:.2f} ms per single image (p90 {result.latency_ms_p90:.2f}), "
         f"{result.images_per_s:.0f} images/s batched")
    if run_id:
        log_to_run(result, run_id)
        echo(f"export: logged into MLflow run {run_id}")
    return result


def log_to_run(result: Exported, run_id: str, prefix: str = "") -> None:
    """Add the exported files (under ``export/``) and its parity/speed metrics to an MLflow run."""
    import mlflow

    from transferlab import tracking

    uri = tracking.configure()
    try:
        mlflow.MlflowClient(uri).get_run(run_id)
    except Exception:  # noqa: BLE001 - MlflowException for an unknown id
        raise TransferlabError(f"MLflow run {run_id!r} is not in {uri}") from None
    with tracking.tracked_run("", run_name=None, params={}, tags={"exported": result.format}, run_id=run_id):
        log_active(result, prefix)


def log_active(result: Exported, prefix: str) -> None:
    """Into the active MLflow run: the files under ``export/`` and the metrics."""
    import mlflow

    for path in (result.path, result.labels_path, result.path.with_name(result.path.name + PARITY_SUFFIX)):
        mlflow.log_artifact(str(path), "export")
    mlflow.log_metrics(result.metrics(prefix))


def evaluate_export(model, params, classes: list[str], images: np.ndarray, probs: np.ndarray, folder: Path,
                    cfg) -> dict[str, float]:
    """The evaluate stage's export: ONNX of the evaluated model into ``folder/reader/``, checked on
    the first ``cfg.export_samples`` test images against the probabilities evaluate computed;
    returns the parity and speed metrics (``test_onnx_...``). A failed check fails the stage."""
    count = min(cfg.export_samples, len(images))
    if not count:
        return {}
    labels = Labels.from_params(params, classes)
    result = export_keras(model, labels, images[:count], folder / READER_FOLDER / "model.onnx", "onnx",
                          reference=np.asarray(probs[:count]))
    print(f"evaluate: exported {READER_FOLDER}/{result.path.name}: {result.parity.summary()}; "
          f"{result.latency_ms_median:.2f} ms per single image, {result.images_per_s:.0f} images/s", flush=True)
    return result.metrics("test_")


def log_evaluated_reader(output: Path, example=None) -> None:
    """Into the active (training) run: the pyfunc ``reader_onnx`` reading evaluate's ONNX export,
    when there is one (``mlflow.pyfunc.load_model("runs:/<id>/reader_onnx")`` needs no TensorFlow
    to predict): the run's one copy of the ONNX file. The training stage's ``reader`` stays as it was.
    ``example`` (a few images): its input example, as the training stage's reader has one."""
    from transferlab.inference.reader_pyfunc import log_pyfunc_model

    exported = output / READER_FOLDER / "model.onnx"
    if exported.is_file():
        log_pyfunc_model(None, labels_path_for(exported), example, artifact_path=PYFUNC_NAME, exported=exported)


if __name__ == "__main__":  # convert_on_tensorflow's worker: KERAS_MODEL OUTPUT FORMAT QUANTIZE SAMPLES_NPY
    from transferlab.inference.predict import load_keras_model

    keras_file, out, fmt_arg, quantize_arg, samples_file = sys.argv[1:6]
    worker_samples = np.load(samples_file)
    worker_model = load_keras_model(keras_file)
    worker_model(worker_samples[:1].astype(np.float32), training=False)  # export needs a called model
    convert(worker_model, Path(out), fmt_arg, quantize_arg or None, worker_samples)
