"""The ``reader`` MLflow pyfunc: a trained model and its decoder, loadable without transferlab installed.

Every training run logs it (``runs:/<run_id>/reader``):
``mlflow.pyfunc.load_model(uri).predict(images)`` returns text and confidences for a NumPy
batch or a DataFrame. Its class lives in this package, so the package itself is logged
with the model (``code_paths``) together with pinned requirements of what it imports.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow.pyfunc  # noqa: E402

from transferlab.errors import TransferlabError  # noqa: E402
from transferlab.inference.predict import (  # noqa: E402
    METADATA_KEY,
    PYFUNC_ARTIFACT_PATH,
    FastReader,
    Labels,
    Reader,
    load_keras_model,
)

# Distributions the package imports when the reader loads, besides Keras and its backend
# (transferlab.training.backend pins those; keras pulls in its own, h5py etc.).
REQUIREMENTS = ("numpy", "pandas", "opencv-python", "mlflow", "pyyaml", "pydantic")
# The runtime of an exported reader, by file suffix.
RUNTIMES = {".onnx": "onnxruntime", ".tflite": "ai-edge-litert"}


def images_from_input(model_input: Any) -> list[np.ndarray]:
    """The images in a pyfunc input.

    Accepted: a NumPy batch (N, H, W, 3) / (N, H, W) or one image (H, W, 3) of 0..255 values;
    a list of images; a pandas DataFrame with an ``image`` column (arrays, nested lists, or
    encoded PNG/JPEG bytes) or a ``file``/``path`` column of image paths; a dict of such columns.
    """
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if isinstance(model_input, pd.DataFrame):
        if "image" in model_input.columns:
            return [_cell_image(value) for value in model_input["image"]]
        for column in ("file", "path"):
            if column in model_input.columns:
                return [_decode_bytes(Path(p).read_bytes()) for p in model_input[column]]
        raise TransferlabError("a DataFrame input needs an 'image' column (arrays or encoded bytes) "
                               "or a 'file'/'path' column of image paths")
    if isinstance(model_input, np.ndarray):
        if model_input.ndim == 3 and model_input.shape[-1] in (3, 4):
            return [model_input]
        if model_input.ndim in (3, 4):
            return list(model_input)
        raise TransferlabError(f"a NumPy input must be (N, H, W, 3) images, got shape {model_input.shape}")
    if isinstance(model_input, (list, tuple)):
        return [_cell_image(value) for value in model_input]
    raise TransferlabError(f"unsupported input type {type(model_input).__name__}")


def _decode_bytes(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB) if data else None
    if image is None:
        raise TransferlabError("not a readable image (empty, truncated or unknown format)")
    return image


def _cell_image(value: Any) -> np.ndarray:
    if isinstance(value, (bytes, bytearray)):
        return _decode_bytes(bytes(value))
    array = np.asarray(value)
    if array.dtype == object:  # nested lists of rows from JSON
        array = np.asarray(array.tolist(), dtype=np.float64)
    return array


class PlateReaderModel(mlflow.pyfunc.PythonModel):
    """The model and its decoder as one MLflow pyfunc: images in, a DataFrame of text out.

    Artifacts: ``labels`` (``labels.json``) and either ``keras_model`` (the ``.keras`` file) or
    ``exported_model`` (``.onnx``/``.tflite``, read by ONNX Runtime / LiteRT, about 1 ms a
    plate, without Keras). Readers logged before carried both; then the export is read.
    Output columns: ``plate_text`` (classification: ``label``), ``confidence`` and
    ``char_confidences`` (classification: ``top_classes``).
    """

    def load_context(self, context):
        labels = Labels.load(context.artifacts["labels"])
        exported = context.artifacts.get("exported_model")
        if exported:
            self.reader = FastReader.load_with(exported, labels)
        else:
            self.reader = Reader(load_keras_model(context.artifacts["keras_model"]), labels)

    # The hint is one MLflow does not validate against (it would otherwise warn on import);
    # NumPy batches, lists and dicts are accepted as well, see images_from_input.
    def predict(self, context, model_input: pd.DataFrame, params=None):  # noqa: ARG002 - pyfunc signature
        return self.reader.predict_arrays(images_from_input(model_input))


def pip_requirements(exported: str | Path | None = None) -> list[str]:
    """Pinned requirements of the pyfunc (explicit: inferring them reloads the model in a subprocess):
    Keras and the backend in use, what the package imports, and an ``exported`` model's runtime."""
    from transferlab.training import backend

    names = [*REQUIREMENTS, *([RUNTIMES.get(Path(exported).suffix, "ai-edge-litert")] if exported else [])]
    return backend.requirements() + [pinned for name in names if (pinned := backend.installed((name,)))]


def log_pyfunc_model(model_path: str | Path | None, labels_path: str | Path, example: np.ndarray | None = None,
                     artifact_path: str = PYFUNC_ARTIFACT_PATH, exported: str | Path | None = None):
    """Log the reader pyfunc into the active MLflow run under ``artifact_path`` ("reader").

    ``exported``: an ``.onnx``/``.tflite`` export of the model, which the pyfunc then reads
    (see :class:`PlateReaderModel`); give it instead of ``model_path``: the reader carries
    one model file, so a run does not store the Keras weights again beside its ``reader``.

    ``example``: a few 0..255 images (N, H, W, 3) stored as the input example. The
    signature declares only the outputs, so NumPy batches and DataFrames are both
    accepted. The pyfunc's class lives in ``transferlab``, so the package travels with the
    model (``code_paths``: MLflow puts it on ``sys.path`` when loading) and its requirements
    are declared: it loads and serves where transferlab is not installed. Returns MLflow's ModelInfo.
    """
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    labels = Labels.load(labels_path)
    if (model_path is None) == (exported is None):
        raise TransferlabError("a reader carries one model: give the .keras file or its export")
    artifacts = {"labels": str(labels_path)}
    artifacts.update({"keras_model": str(model_path)} if exported is None else {"exported_model": str(exported)})
    for path in artifacts.values():
        if not Path(path).is_file():
            raise TransferlabError(f"{path}: file not found")
    text, confidence, details = labels.kind.output_columns
    outputs = Schema([ColSpec("string", text), ColSpec("double", confidence), ColSpec("string", details)])
    example_input = None
    if example is not None:
        example_input = np.asarray(example)[:2].astype(np.uint8)
    from transferlab.tracking import without_mlflow_notices

    with tempfile.TemporaryDirectory() as staging, without_mlflow_notices():
        return mlflow.pyfunc.log_model(
            name=artifact_path,
            python_model=PlateReaderModel(),
            artifacts=artifacts,
            code_paths=[package_copy(Path(staging))],
            signature=ModelSignature(inputs=None, outputs=outputs),
            input_example=example_input,
            pip_requirements=pip_requirements(exported),
            metadata={METADATA_KEY: labels.to_dict()},
        )


def package_copy(folder: Path) -> str:
    """The ``transferlab`` package copied into ``folder`` without bytecode caches; its path."""
    import shutil

    import transferlab

    target = folder / "transferlab"
    shutil.copytree(Path(transferlab.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return str(target)
