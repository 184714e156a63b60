"""Reading plates with an exported model (``.onnx``, ``.tflite``) without TensorFlow, and the predict command.

``transferlab predict model.onnx images/`` runs ONNX Runtime, ``model.tflite`` the LiteRT
interpreter (``ai-edge-litert``, or ``tf.lite`` when only TensorFlow is installed). Neither
Keras, TensorFlow, MLflow nor pandas is imported on the ONNX path: importing TensorFlow alone
takes seconds, longer than reading hundreds of plates. Images are decoded and resized by
OpenCV in a thread pool (OpenCV releases the GIL), then read in batches.

A ``.keras`` model or an MLflow URI goes to :class:`transferlab.inference.predict.Reader` instead,
imported only then.
"""

from __future__ import annotations

import csv
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from transferlab.inference.decoding import (
    LABELS_FILE,
    Labels,
    decode_rows,
    empty_output,
    output_columns,
    prepare_batch,
    to_model_image,
)
from transferlab.errors import TransferlabError
from transferlab.data.images import IMAGE_EXTENSIONS, UnreadableImageError, read_rgb

EXPORT_SUFFIXES = (".onnx", ".tflite")
DEFAULT_BATCH_SIZE = 32
# Decoding a plate crop takes well under a millisecond: more threads than cores only add overhead.
WORKERS = max(1, min(8, os.cpu_count() or 1))


def labels_path_for(model_path: str | Path) -> Path:
    """Where an exported model's decoder lives: ``model.onnx`` -> ``model.labels.json``."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}.{LABELS_FILE}")


def load_labels_beside(model_path: str | Path) -> Labels:
    """``<stem>.labels.json`` beside an exported model, else the folder's ``labels.json``."""
    own = labels_path_for(model_path)
    return Labels.load(own if own.is_file() else Path(model_path).with_name(LABELS_FILE))


# --------------------------------------------------------------------------- runtimes


class OnnxRunner:
    """An ONNX model in ONNX Runtime: float32 (N, H, W, 3) 0..255 in, probabilities out.

    ``InferenceSession.run`` is thread-safe and releases the GIL, so the reader's chunk workers
    share the one session (``one_thread``).
    """

    def __init__(self, path: str | Path):
        try:
            import onnxruntime
        except ImportError:
            raise TransferlabError(f"{path}: reading ONNX models needs onnxruntime "
                                   "(pip install -e '.[export]')") from None
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are noise to a user
        # One thread per call; the reader runs one chunk per core at once. A plate is too small to
        # split well across threads: on 2 cores, side by side (6 alternating passes over 400 plates,
        # resize and decoding included, median), that read 1,478 plates/s against 1,378 for one
        # 2-thread session (EfficientNet-Lite0, 48x144). Spinning threads are off: on shared
        # cores they halved the batched rate (413 against 770 plates/s).
        options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - InvalidProtobuf, Fail, NoSuchFile ...
            raise TransferlabError(f"{path}: not a readable ONNX model: {_first_line(exc)}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.image_size = _known_size(self.session.get_inputs()[0].shape[1:3])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.asarray(batch, np.float32)})[0]

    one_thread = __call__


class LiteInterpreter:
    """One LiteRT interpreter; its input is resized only when the batch shape changes. Not thread-safe."""

    def __init__(self, interpreter_class, path: Path, threads: int):
        try:
            self.interpreter = interpreter_class(model_path=str(path), num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise TransferlabError(f"{path}: not a readable TFLite model: {_first_line(exc)}") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.shape: tuple[int, ...] | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, self.input["dtype"])
        if batch.shape != self.shape:
            self.interpreter.resize_tensor_input(self.input["index"], batch.shape)
            self.interpreter.allocate_tensors()
            self.shape = batch.shape
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()  # the buffer is reused by the next call


class TfliteRunner:
    """A ``.tflite`` model in the LiteRT interpreter (``ai-edge-litert``, else TensorFlow's ``tf.lite``).

    A call uses one interpreter on ``WORKERS`` threads (one image: 1.10-1.18 ms against 1.43-1.74 ms
    on one thread, 2 cores). ``one_thread`` calls (the reader's chunk workers) get a one-thread
    interpreter per calling thread; side by side on 2 cores (6 alternating passes over 400 plates,
    median) two of them read 1,471 plates/s against 1,441 for one 2-thread interpreter, a gain
    within the noise of single runs. Each interpreter holds its own copy of the weights.
    """

    def __init__(self, path: str | Path):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # TensorFlow ships the same interpreter (deprecated there, and seconds to import)
            try:
                import tensorflow as tf
            except ImportError:
                raise TransferlabError(f"{path}: reading TFLite models needs ai-edge-litert "
                                       "(pip install -e '.[export]') or TensorFlow") from None
            Interpreter = tf.lite.Interpreter  # noqa: N806 - a class
        self.path, self.interpreter_class = Path(path), Interpreter
        self.shared, self.lock = LiteInterpreter(Interpreter, self.path, WORKERS), threading.Lock()
        self.image_size = _known_size(self.shared.input["shape_signature"][1:3])
        self.own = threading.local()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            return self.shared(batch)

    def one_thread(self, batch: np.ndarray) -> np.ndarray:
        if not hasattr(self.own, "interpreter"):
            self.own.interpreter = LiteInterpreter(self.interpreter_class, self.path, 1)
        return self.own.interpreter(batch)


def load_runner(path: str | Path):
    """The runtime for an exported model file, by its suffix."""
    path = Path(path)
    if not path.is_file():
        raise TransferlabError(f"{path}: model file not found")
    if path.suffix == ".onnx":
        return OnnxRunner(path)
    if path.suffix == ".tflite":
        return TfliteRunner(path)
    raise TransferlabError(f"{path}: not an exported model (expected one of {', '.join(EXPORT_SUFFIXES)})")


def _known_size(dims) -> tuple[int, int] | None:
    """(height, width) when both dimensions are fixed numbers (not None, -1 or a symbolic name)."""
    dims = list(dims)
    return (int(dims[0]), int(dims[1])) if all(isinstance(d, (int, np.integer)) and d > 0 for d in dims) else None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- the reader


_POOLS: dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads: it starts its own pools
    os.register_at_fork(after_in_child=_POOLS.clear)


def chunk_pool(workers: int) -> ThreadPoolExecutor:
    """``workers`` threads, started once per process and kept (the reader's file decoding, resizing and
    chunks), so no call starts threads and per-thread interpreters are made once."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="transferlab-read")
    return _POOLS[workers]


def read_images(files: Sequence[str | Path], height: int, width: int) -> list[np.ndarray | str]:
    """Each file decoded and resized (in a thread pool), or the reason it could not be read."""
    def read_one(file):
        try:
            return read_rgb(file, height, width)
        except UnreadableImageError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - OSError, cv2.error on exotic files: a row, not a crash
            return f"cannot read: {_first_line(exc)}"

    if len(files) < 2 * WORKERS:
        return [read_one(f) for f in files]
    return list(chunk_pool(WORKERS).map(read_one, files))


def chunk_slices(count: int, batch_size: int, workers: int) -> list[slice]:
    """``count`` items in chunks of at most ``batch_size``, small enough that every worker gets one."""
    size = max(1, min(batch_size, -(-count // workers)))
    return [slice(i, i + size) for i in range(0, count, size)]


def runs_concurrently(runner) -> bool:
    """Whether the runner takes one-thread calls from several threads at once (ONNX Runtime, LiteRT)."""
    return WORKERS > 1 and hasattr(runner, "one_thread")


def run_batches(runner, images, batch_size: int, labels: Labels, prepare=np.asarray) -> np.ndarray:
    """Probabilities for N images, in order, at most ``batch_size`` at a time.

    ``prepare`` turns a chunk of ``images`` into the (n, H, W, 3) model input (default: as is).
    A runner that :func:`runs_concurrently` gets one chunk per worker thread, each a one-thread
    call, so the cores share the chunks and one chunk's resize overlaps another's model run; one
    chunk, or any other runner, runs in the calling thread.
    """
    if not len(images):
        return empty_output(labels)

    def model_input(part: slice) -> np.ndarray:
        return np.asarray(prepare(images[part]), np.float32)

    concurrent = runs_concurrently(runner)
    parts = chunk_slices(len(images), batch_size, WORKERS if concurrent else 1)
    if not concurrent or len(parts) == 1:
        return np.concatenate([runner(model_input(part)) for part in parts])
    return np.concatenate(list(chunk_pool(WORKERS).map(lambda part: runner.one_thread(model_input(part)), parts)))


class FastReader:
    """A model runner (an exported model here, Keras in :class:`transferlab.inference.predict.Reader`) plus its
    decoder: images of any size in, one dict per image out."""

    def __init__(self, runner, labels: Labels, path: str | Path | None = None):
        size, expected = getattr(runner, "image_size", None), (labels.image_height, labels.image_width)
        if size is not None and size != expected:
            raise TransferlabError(f"{path or 'the model'}: the model reads {size[0]}x{size[1]} images but its "
                                   f"labels say {expected[0]}x{expected[1]}")
        self.runner, self.labels, self.path = runner, labels, path

    @classmethod
    def load(cls, path: str | Path) -> FastReader:
        """From ``model.onnx`` / ``model.tflite`` with ``model.labels.json`` (or ``labels.json``) beside it."""
        runner = load_runner(path)  # first: a missing model is named, not its missing labels.json
        return cls(runner, load_labels_beside(path), path)

    @classmethod
    def load_with(cls, path: str | Path, labels: Labels) -> FastReader:
        """From an exported model file and a decoder given separately (the MLflow pyfunc's artifacts)."""
        return cls(load_runner(path), labels, path)

    def prepare(self, images: Sequence[np.ndarray], threads: int = WORKERS) -> np.ndarray:
        """(N, H, W, 3) uint8 at the model's size, resized on ``threads`` threads for big batches."""
        height, width = self.labels.image_height, self.labels.image_width
        if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[1:] == (height, width, 3):
            return images  # already a batch at the model's size: nothing to convert
        if threads < 2 or len(images) < 2 * threads:
            return prepare_batch(images, height, width)
        return np.stack(list(chunk_pool(threads).map(lambda image: to_model_image(image, height, width), images)))

    def probabilities(self, images, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        if runs_concurrently(self.runner):  # each chunk resized by the thread that runs it
            return run_batches(self.runner, images, batch_size, self.labels, lambda part: self.prepare(part, 1))
        return run_batches(self.runner, self.prepare(images), batch_size, self.labels)

    def predict_rows(self, images, batch_size: int = DEFAULT_BATCH_SIZE) -> list[dict]:
        """Decoded predictions (see :func:`transferlab.inference.decoding.decode_rows`)."""
        return decode_rows(self.probabilities(images, batch_size), self.labels)

    def predict_arrays(self, images, batch_size: int = DEFAULT_BATCH_SIZE):
        """The same as a pandas DataFrame, like :meth:`transferlab.inference.predict.Reader.predict_arrays`."""
        import pandas as pd

        return pd.DataFrame(self.predict_rows(images, batch_size), columns=output_columns(self.labels.task))

    def predict_file_rows(self, files: Sequence[str | Path], batch_size: int = DEFAULT_BATCH_SIZE) -> list[dict]:
        """One row per file, in order; unreadable files get an ``error`` and no prediction."""
        read = read_images(files, self.labels.image_height, self.labels.image_width)
        images = [r for r in read if not isinstance(r, str)]
        decoded = iter(self.predict_rows(np.stack(images), batch_size) if images else [])
        return [file_row(file, self.labels.task, "" if not isinstance(r, str) else r,
                         None if isinstance(r, str) else next(decoded)) for file, r in zip(files, read)]

    def predict_files(self, files: Sequence[str | Path], batch_size: int = DEFAULT_BATCH_SIZE):
        """The same as a pandas DataFrame: ``file``, the decoded columns, ``error``."""
        import pandas as pd

        columns = ["file", *output_columns(self.labels.task), "error"]
        return pd.DataFrame(self.predict_file_rows(list(files), batch_size), columns=columns)


def file_row(file, task: str, error: str, decoded: dict | None) -> dict:
    """One row of the predict output: file, the decoded columns (empty when unread), error."""
    text, confidence, details = output_columns(task)
    row = {"file": str(file), text: "", confidence: float("nan"), details: "", "error": error}
    row.update(decoded or {})
    return row


# --------------------------------------------------------------------------- the command


def expand_inputs(inputs: Sequence[str | Path]) -> list[str]:
    """Files as given; folders replaced by the image files inside them (sorted, not recursive)."""
    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(str(p) for p in sorted(path.iterdir())
                         if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            found.append(str(item))
    return found


def format_row(row: dict, task: str) -> str:
    """One line of the command's output: ``file<TAB>text<TAB>confidence<TAB>details``."""
    if row["error"]:
        return f"{row['file']}\tERROR\t{row['error']}"
    text, confidence, details = output_columns(task)
    return f"{row['file']}\t{row[text]}\t{row[confidence]:.3f}\t{row[details]}"


def write_rows_csv(path: str | Path, rows: list[dict], columns: list[str]) -> None:
    """Write rows as CSV atomically (temp file + rename); NaN is written as an empty cell."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows({k: "" if isinstance(v, float) and v != v else v for k, v in row.items()}
                             for row in rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_file_rows(model: str, files: list[str], batch_size: int) -> tuple[list[dict], str]:
    """Rows for every file and the model's task; exported models never import TensorFlow."""
    if Path(model).suffix in EXPORT_SUFFIXES:
        reader = FastReader.load(model)
        return reader.predict_file_rows(files, batch_size), reader.labels.task
    from transferlab.inference.predict import Reader  # Keras, TensorFlow and MLflow: seconds to import

    keras_reader = Reader.load(model)
    return keras_reader.predict_file_rows(files, batch_size), keras_reader.labels.task


def predict_command(model: str, images: Sequence[str], csv_out: str | None = None,
                    batch_size: int = DEFAULT_BATCH_SIZE, echo=print) -> int:
    """``transferlab predict MODEL IMAGES... [--csv out.csv]``; returns the exit code.

    Prints one line per image (file, text, plate confidence, per-character confidences;
    ``ERROR`` and the reason for a file that could not be read), writes every row to
    ``csv_out`` when given. Exit code 0 when at least one image was read, 1 when none
    was (every file failed, or no file given): one bad file in a folder of good ones
    must not make a batch job fail, but a run that read nothing must.
    """
    files = expand_inputs(images)
    if not files:
        print("error: no image files given (folders are searched for image files)", file=sys.stderr)
        return 1
    rows, task = read_file_rows(model, files, batch_size)
    echo("\n".join(format_row(row, task) for row in rows))  # one write: thousands of echo calls add up
    if csv_out:
        write_rows_csv(csv_out, rows, ["file", *output_columns(task), "error"])
    failed = sum(1 for row in rows if row["error"])
    if failed:
        print(f"predict: {failed} of {len(rows)} file(s) could not be read", file=sys.stderr)
    return 1 if failed == len(rows) else 0
