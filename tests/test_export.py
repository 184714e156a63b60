"""Export (ONNX, TFLite, int8) through Keras' model.export, the parity check, and reading without TensorFlow."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import keras
import mlflow
import numpy as np
import pytest
from click.testing import CliRunner

from helpers import inside_project, plate_image, random_plates
from transferlab import cli, tracking
from transferlab.inference import export
from transferlab.inference import predict
from transferlab.inference import runtime
from transferlab.training.backbones import build_backbone
from transferlab.config import parse_params
from transferlab.errors import TransferlabError
from transferlab.training.models import build_model

ALPHABET = "0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"
SRC = Path(__file__).resolve().parents[1] / "src"


def tiny_model(decided: bool = False):
    """A tiny untrained plate model; ``decided``: each slot's softmax bias picks one symbol by a
    wide margin, as a trained model's outputs do (an untrained one is near-uniform, and int8
    rounding may then flip the arg-max)."""
    keras.utils.set_random_seed(0)
    model = build_model(build_backbone("plain_cnn", (32, 96, 3), False), "plates", 7, len(ALPHABET), 8, 0.0)
    if decided:
        head = model.get_layer("head")
        for slot in range(7):
            layer = head.get_layer(f"slot_{slot}_softmax")
            kernel, bias = layer.get_weights()
            bias[:] = 0.0
            bias[(5 * slot) % len(ALPHABET)] = 8.0
            layer.set_weights([kernel * 0.1, bias])
    return model


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """models/model.keras + labels.json, models/decided.keras, and a folder of plate images (one unreadable)."""
    root = tmp_path_factory.mktemp("export")
    (root / ".dvc").mkdir()
    (root / "models").mkdir()
    tiny_model().save(root / "models/model.keras")
    tiny_model(decided=True).save(root / "models/decided.keras")
    predict.Labels("plates", list(ALPHABET), 32, 96, 7, None).save(root / "models/labels.json")
    (root / "images").mkdir()
    for i, text in enumerate(random_plates(12)):
        cv2.imwrite(str(root / f"images/{i:02d}.png"), plate_image(text, 40 + i, 120))  # sizes vary
    (root / "images/zz_broken.png").write_text("not an image")
    return root


@pytest.fixture(autouse=True)
def in_project(project, monkeypatch):
    with inside_project(project, monkeypatch):
        yield


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def good_images(project):
    return sorted(str(p) for p in (project / "images").glob("0*.png")) + \
        sorted(str(p) for p in (project / "images").glob("1*.png"))


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_export_round_trip_reads_like_the_keras_model(project, fmt):
    result = invoke("export", "models/model.keras", "--format", fmt, "--samples", "images/00.png",
                    "--samples", "images/01.png", "--output", f"out/model.{fmt}")
    assert result.exit_code == 0, result.output
    assert "2/2 samples read the same text" in result.output
    exported = project / f"out/model.{fmt}"
    assert exported.is_file() and (project / "out/model.labels.json").is_file()
    report = json.loads((project / f"out/model.{fmt}.parity.json").read_text())
    assert report["passed"] and report["max_abs_diff"] < 1e-4 and report["samples"] == 2

    files = good_images(project)
    keras_frame = predict.Reader.load("models/model.keras").predict_files(files)
    fast = runtime.FastReader.load(exported)
    fast_frame = fast.predict_files(files)
    assert fast_frame["plate_text"].tolist() == keras_frame["plate_text"].tolist()
    assert np.allclose(fast_frame["confidence"], keras_frame["confidence"], rtol=1e-3)
    probs = fast.probabilities([plate_image("ABC1234")])
    assert probs.shape == (1, 7, len(ALPHABET))


def test_int8_tflite_export_of_a_decided_model(project):
    result = invoke("export", "models/decided.keras", "--format", "tflite", "--quantize", "int8",
                    "--samples", "images")
    assert result.exit_code == 1 and "images/zz_broken.png: a parity sample could not be read" in result.output
    samples = [arg for file in good_images(project) for arg in ("--samples", file)]
    result = invoke("export", "models/decided.keras", "--format", "tflite", "--quantize", "int8", *samples)
    assert result.exit_code == 0, result.output
    exported = project / "models/decided.int8.tflite"
    float_size = (project / "models/decided.keras").stat().st_size
    assert exported.is_file() and exported.stat().st_size < float_size  # int8 weights
    texts = runtime.FastReader.load(exported).predict_arrays([plate_image("A")])["plate_text"].tolist()
    assert texts == ["".join(ALPHABET[(5 * s) % len(ALPHABET)] for s in range(7))]


def test_an_export_that_reads_differently_is_refused_and_nothing_is_written(project):
    labels = predict.Labels.load("models/labels.json")
    model = predict.load_keras_model("models/model.keras")
    samples = np.stack([plate_image("ABC1234"), plate_image("XYZ9876")])
    other = np.asarray(tiny_model(decided=True)(samples.astype(np.float32), training=False))
    with pytest.raises(TransferlabError, match=r"refused/model\.onnx: the exported model does not read like"):
        export.export_keras(model, labels, samples, project / "refused/model.onnx", reference=other)
    assert not (project / "refused").exists() or not any((project / "refused").iterdir())

    result = invoke("export", "models/model.keras", "--quantize", "int8")  # int8 is the TFLite converter's
    assert result.exit_code == 1 and "--format tflite" in result.output
    result = invoke("export", "models/missing.keras")
    assert result.exit_code == 1 and "models/missing.keras: model file not found" in result.output


def test_parity_counts_text_mismatches_and_the_largest_difference():
    labels = predict.Labels("plates", list("AB"), 8, 8, 2, None)
    ref = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.6, 0.4], [0.5, 0.5]]])
    got = ref.copy()
    got[1, 0] = [0.45, 0.55]
    parity = export.parity_check(ref, got, labels, 1e-4)
    assert parity.mismatches == [(1, "AA", "BA")] and parity.max_abs_diff == pytest.approx(0.15)
    assert not parity.passed and export.parity_check(ref, ref + 1e-6, labels, 1e-4).passed


@pytest.mark.parametrize("suffix", [".onnx", ".tflite"])
def test_a_corrupt_exported_file_is_one_clear_error_naming_it(project, suffix):
    broken = project / f"broken/model{suffix}"
    broken.parent.mkdir(exist_ok=True)
    broken.write_bytes(b"\x00garbage, not a model")
    predict.Labels.load("models/labels.json").save(broken.with_name("model.labels.json"))
    result = CliRunner().invoke(cli.main, ["predict", str(broken), "images", "--csv", "broken/out.csv"])
    assert result.exit_code == 1
    assert f"{broken}: not a readable" in result.output and "Traceback" not in result.output
    assert not (project / "broken/out.csv").exists()
    with pytest.raises(TransferlabError, match="labels.json: not found"):
        runtime.load_labels_beside(project / "nowhere/model.onnx")


def test_a_missing_exported_model_is_named_not_its_labels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("folder").mkdir()
    cv2.imwrite("folder/plate.png", plate_image("ABC1234"))
    result = CliRunner().invoke(cli.main, ["predict", "missing.onnx", "folder/"])
    assert result.exit_code == 1 and "missing.onnx: model file not found" in result.output
    assert "labels.json" not in result.output


def test_labels_of_another_image_size_are_refused(project):
    assert invoke("export", "models/model.keras", "--output", "sized/model.onnx").exit_code == 0
    predict.Labels("plates", list(ALPHABET), 48, 144, 7, None).save(project / "sized/model.labels.json")
    with pytest.raises(TransferlabError, match=r"sized/model.onnx: the model reads 32x96 images but its labels say 48x144"):
        runtime.FastReader.load(project / "sized/model.onnx")


def test_predict_on_an_onnx_model_imports_neither_tensorflow_nor_keras(project, tmp_path):
    assert invoke("export", "models/model.keras", "--output", "fast/model.onnx").exit_code == 0
    script = ("import sys\nfrom transferlab import cli\n"
              "try:\n    cli.main(['predict', 'fast/model.onnx', 'images', '--csv', sys.argv[1]])\n"
              "except SystemExit as exc:\n    code = exc.code\n"
              "heavy = [m for m in ('tensorflow', 'keras', 'mlflow', 'pandas') if m in sys.modules]\n"
              "print('HEAVY', heavy, 'CODE', code, file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = tmp_path / "read.csv"
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert "HEAVY [] CODE 0" in done.stderr, done.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "file,plate_text,confidence,char_confidences,error" and len(lines) == 14
    assert lines[-1].startswith("images/zz_broken.png,,,,") and "not a readable image" in lines[-1]
    keras_texts = predict.Reader.load("models/model.keras").predict_files(good_images(project))["plate_text"]
    assert [line.split(",")[1] for line in lines[1:-1]] == keras_texts.tolist()


def test_a_concurrent_runner_gets_one_chunk_per_worker_and_the_rows_stay_in_order(monkeypatch):
    import threading

    class Serial:
        """Each image's output is its own mean pixel; records chunk sizes."""
        def __init__(self):
            self.sizes = []

        def __call__(self, batch):
            self.sizes.append(len(batch))
            return batch.mean(axis=(1, 2, 3))[:, None, None].repeat(2, axis=1)

    class Concurrent(Serial):
        """The first two one-thread calls wait for each other: a BrokenBarrierError unless they overlap."""
        both, calls = threading.Barrier(2, timeout=20), iter(range(1000))  # next() on a range iterator is atomic

        def one_thread(self, batch):
            if next(self.calls) < 2:
                self.both.wait()
            return self(batch)

    monkeypatch.setattr(runtime, "WORKERS", 2)
    labels = predict.Labels("plates", list(ALPHABET), 8, 12, 2, None)
    images = [np.full((16, 24, 3), i, np.uint8) for i in range(70)]  # resized to 8x12 by the reader
    concurrent, serial = Concurrent(), Serial()
    together = runtime.FastReader(concurrent, labels).probabilities(images, batch_size=32)
    alone = runtime.FastReader(serial, labels).probabilities(images, batch_size=32)
    assert np.array_equal(together, alone) and together[:, 0, 0].tolist() == list(range(70))
    assert sorted(concurrent.sizes) == [6, 32, 32] and serial.sizes == [32, 32, 6]
    assert runtime.chunk_slices(10, 32, 2) == [slice(0, 5), slice(5, 10)]  # one batch still spreads over both


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_reads_with_pools_of_its_own(monkeypatch):
    class Concurrent:
        def __call__(self, batch):
            return batch.mean(axis=(1, 2, 3))[:, None, None].repeat(2, axis=1)

        def one_thread(self, batch):
            time.sleep(0.05)  # slow enough that the pool starts both of its threads
            return self(batch)

    monkeypatch.setattr(runtime, "WORKERS", 2)
    labels = predict.Labels("plates", list(ALPHABET), 8, 12, 2, None)
    images = np.stack([np.full((8, 12, 3), i, np.uint8) for i in range(40)])
    before = runtime.FastReader(Concurrent(), labels).probabilities(images, batch_size=5)
    assert len(runtime._POOLS[2]._threads) == 2  # the parent's pool, whose threads a child would not have
    child = os.fork()
    if child == 0:  # the child: with the parent's pool it would wait for ever (the alarm ends it)
        same = False
        try:
            signal.alarm(20)
            same = np.array_equal(runtime.FastReader(Concurrent(), labels).probabilities(images, 5), before)
        finally:
            os._exit(0 if same else 3)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_keras_reader_traces_once_for_every_batch_size(project):
    reader = predict.Reader.load("models/model.keras")
    for count in (1, 3, 1, 5):
        assert len(reader.predict_arrays([plate_image("AB12345")] * count)) == count
    assert reader.runner.forward.experimental_get_tracing_count() == 1


def test_the_pyfunc_reads_the_exported_model_when_given_one(project):
    assert invoke("export", "models/model.keras").exit_code == 0
    images = np.stack([plate_image("ABC1234"), plate_image("XYZ9876")])
    tracking.configure()
    with tracking.tracked_run("export-test", "train", params={}, tags={}) as run:
        predict.log_pyfunc_model(None, "models/labels.json", images, exported="models/model.onnx")  # no Keras copy
    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/reader")
    assert isinstance(loaded.unwrap_python_model().reader.runner, runtime.OnnxRunner)
    expected = predict.Reader.load("models/model.keras").predict_arrays(images)["plate_text"].tolist()
    assert loaded.predict(images)["plate_text"].tolist() == expected

    result = invoke("export", "models/model.keras", "--run", run.info.run_id)
    assert result.exit_code == 0, result.output
    logged = mlflow.MlflowClient().get_run(run.info.run_id)
    assert logged.data.metrics["onnx_parity_max_abs_diff"] < 1e-4 and "onnx_latency_ms_median" in logged.data.metrics
    names = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "export")]
    assert "export/model.onnx" in names and "export/model.labels.json" in names


def test_tflite_falls_back_to_tensorflows_interpreter_and_missing_converters_are_named(project, monkeypatch):
    assert invoke("export", "models/model.keras", "--format", "tflite", "--output", "lite/model.tflite").exit_code == 0
    expected = runtime.FastReader.load(project / "lite/model.tflite").predict_arrays([plate_image("AB12345")])
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # as if ai-edge-litert were not installed
    fallback = runtime.FastReader.load(project / "lite/model.tflite")
    assert type(fallback.runner.shared.interpreter).__module__.startswith("tensorflow")
    assert fallback.predict_arrays([plate_image("AB12345")])["plate_text"].tolist() == expected["plate_text"].tolist()

    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    result = invoke("export", "models/model.keras", "--output", "none/model.onnx")
    assert result.exit_code == 1 and "needs tf2onnx and onnx: pip install -e '.[export]'" in result.output
    assert not (project / "none/model.onnx").exists()


def test_evaluate_export_is_typed_and_unknown_keys_are_refused():
    from transferlab import config

    assert cli.DEFAULT_PARAMS_FILE == config.DEFAULT_PARAMS_FILE  # cli keeps a copy to start without pydantic
    assert parse_params({"evaluate": {"export": False}}).evaluate.export is False
    with pytest.raises(TransferlabError, match="export_sample"):
        parse_params({"evaluate": {"export_sample": 3}})
