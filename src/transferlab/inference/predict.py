"""Reading plates (or classifying images) with a trained Keras model: files, arrays, MLflow.

The decoder (``labels.json``: classes, slots, pad symbol, image size) is
:class:`transferlab.inference.decoding.Labels`; exported ``.onnx``/``.tflite`` models are read without
TensorFlow by :mod:`transferlab.inference.runtime`. The names of both are re-exported here.

The Keras path runs the model through one traced ``tf.function`` whose batch dimension is
free (one trace serves every batch size): ``model.predict`` pays about 45 ms of set-up on
every call (measured 53.7 ms against 9.6 ms for one 48x144 image with EfficientNet-Lite0).
XLA (``jit_compile=True``) was measured slower on CPU (36 ms single, 849 ms for 32) and is
not used.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.inference.decoding import (  # noqa: F401 - re-exported: Labels lives in decoding since the export work
    LABELS_FILE,
    Labels,
    decode_rows,
    output_columns,
    to_model_image,
)
from transferlab.errors import TransferlabError
from transferlab.inference.runtime import (  # noqa: F401 - re-exported for the command and older callers
    DEFAULT_BATCH_SIZE,
    EXPORT_SUFFIXES,
    FastReader,
    expand_inputs,
    format_row,
    predict_command,
)

MODEL_FILE = "model.keras"
PYFUNC_ARTIFACT_PATH = "reader"
# Key of the decoder in an MLflow model's MLmodel ``metadata`` (``log_model(metadata=...)``).
METADATA_KEY = "transferlab_labels"


def decode_probabilities(probs: np.ndarray, labels: Labels) -> pd.DataFrame:
    """Model outputs -> one row per image (columns :func:`transferlab.inference.decoding.output_columns`)."""
    return pd.DataFrame(decode_rows(probs, labels), columns=output_columns(labels.task))


# --------------------------------------------------------------------------- loading


def load_keras_model(path: str | Path):
    """A saved ``.keras`` model, uncompiled (the project's custom layers and metrics registered)."""
    import keras

    import transferlab.training.backbones  # noqa: F401 - registers the custom layers of the backbones
    import transferlab.training.models  # noqa: F401 - registers PlateAccuracy / CharAccuracy

    path = Path(path)
    if not path.is_file():
        raise TransferlabError(f"{path}: model file not found")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        # Keras reports any unreadable .keras file as "File not found", which sends users looking
        # for a path problem; a .keras file is a zip archive, and this one is not (truncated, damaged).
        raise TransferlabError(f"{path}: corrupt model file: a .keras file is a zip archive and this one is not "
                               f"({path.stat().st_size} bytes; truncated or damaged?): train again or restore it")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - zip/HDF5/deserialisation errors of every kind
        raise TransferlabError(f"{path}: cannot load the Keras model: {exc}") from None


def is_mlflow_uri(source: str) -> bool:
    return "://" in source or source.startswith(("runs:/", "models:/"))


class KerasRunner:
    """A Keras model as one traced function: float32 (N, H, W, 3) in, probabilities out.

    The input signature leaves the batch free, so one trace serves every batch size and
    no call pays ``model.predict``'s per-call set-up.
    """

    def __init__(self, model):
        import keras

        self.model = model
        shape = getattr(model, "input_shape", None)
        self.image_size = tuple(shape[1:3]) if shape and None not in shape[1:3] else None
        if keras.backend.backend() != "tensorflow":  # JAX: predict_on_batch is jax.jit-compiled per batch shape
            self.forward = model.predict_on_batch
            return
        import tensorflow as tf

        if shape:
            signature = [tf.TensorSpec([None, *shape[1:]], tf.float32)]
            self.forward = tf.function(lambda x: model(x, training=False), input_signature=signature)
        else:  # a model without a known input: one trace per shape
            self.forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.forward(np.asarray(batch, np.float32)))


class Reader(FastReader):
    """A Keras model plus its decoder: images of any size in, text (or labels) out."""

    def __init__(self, model, labels: Labels):
        super().__init__(KerasRunner(model), labels)  # checks the model's image size against the labels
        self.model = model

    @classmethod
    def load(cls, source: str | Path) -> Reader:
        """From a ``.keras`` file (``labels.json`` beside it), a folder, or an MLflow model URI."""
        text = str(source)
        path = Path(text)
        if path.is_file():
            return cls(load_keras_model(path), Labels.load(path.parent / LABELS_FILE))
        if path.is_dir():
            return cls(*_load_from_folder(path, None))
        if is_mlflow_uri(text):
            return cls(*_load_from_uri(text))
        raise TransferlabError(f"{source}: model not found (a .keras file, a folder, or runs:/ / models:/ URI)")


def _labels_from_mlmodel(folder: Path) -> Labels | None:
    for mlmodel in sorted(folder.rglob("MLmodel")):
        import yaml

        data = yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}
        found = (data.get("metadata") or {}).get(METADATA_KEY)
        if found:
            return Labels.from_dict(found)
    return None


def _load_from_folder(folder: Path, fallback_labels: Labels | None):
    """A models/ folder, a saved MLflow Keras model or a pyfunc ``reader`` model."""
    keras_files = sorted(folder.rglob("*.keras"))
    if not keras_files:
        raise TransferlabError(f"{folder}: no .keras model inside")
    preferred = [f for f in keras_files if f.name == MODEL_FILE] or keras_files
    model_path = preferred[0]
    label_files = [model_path.parent / LABELS_FILE, *sorted(folder.rglob(LABELS_FILE))]
    labels = next((Labels.load(f) for f in label_files if f.is_file()), None)
    labels = labels or _labels_from_mlmodel(folder) or fallback_labels
    if labels is None:
        raise TransferlabError(f"{folder}: the model has no {LABELS_FILE} (nor '{METADATA_KEY}' metadata) "
                               "saying what its outputs mean")
    return load_keras_model(model_path), labels


def _configure_tracking() -> None:
    """The repository's MLflow store, unless MLFLOW_TRACKING_URI names another; either way with
    transferlab's MLflow defaults (no telemetry, no download progress bars)."""
    from transferlab import tracking

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        tracking.configure()


def _load_from_uri(uri: str):
    _configure_tracking()  # first: it sets MLflow's environment defaults before mlflow is imported
    import mlflow

    with tempfile.TemporaryDirectory(prefix="transferlab-model-") as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        except Exception as exc:  # noqa: BLE001 - MlflowException, OSError, ...
            raise TransferlabError(f"{uri}: cannot download the model: {exc}") from None
        fallback = None
        if uri.startswith("runs:/"):  # a labels.json logged at the run's artifact root
            run_id = uri.removeprefix("runs:/").split("/", 1)[0]
            try:
                fallback = Labels.load(mlflow.artifacts.download_artifacts(
                    artifact_uri=f"runs:/{run_id}/{LABELS_FILE}", dst_path=str(Path(tmp) / "_labels")))
            except Exception:  # noqa: BLE001 - optional
                fallback = None
        folder = local if local.is_dir() else local.parent
        return _load_from_folder(folder, fallback)


def predict_files(model_path_or_uri: str | Path, files: Sequence[str | Path],
                  batch_size: int = DEFAULT_BATCH_SIZE) -> pd.DataFrame:
    """Read every file with a model (``.keras`` file or MLflow URI); see :meth:`Reader.predict_files`.

    Columns: ``file``, ``plate_text`` (classification: ``label``), ``confidence``,
    ``char_confidences`` (classification: ``top_classes``) and ``error`` ("" when read).
    """
    return Reader.load(model_path_or_uri).predict_files(list(files), batch_size)


def __getattr__(name: str):
    """``PlateReaderModel`` and ``log_pyfunc_model`` moved to :mod:`transferlab.inference.reader_pyfunc`;
    reader models logged before that name this module, so unpickling them still finds the class."""
    if name in ("PlateReaderModel", "log_pyfunc_model", "images_from_input", "pip_requirements"):
        from transferlab.inference import reader_pyfunc

        return getattr(reader_pyfunc, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
