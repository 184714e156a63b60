import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pandas as pd
import pytest

from helpers import inside_project, plate_image
from transferlab import tracking
from transferlab.inference import predict
from transferlab.inference import reader_pyfunc
from transferlab.training.backbones import build_backbone
from transferlab.errors import TransferlabError
from transferlab.training.models import build_model

ALPHABET = "0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """A repository with a tiny untrained plate model in models/ (model.keras + labels.json)."""
    root = tmp_path_factory.mktemp("repository")
    (root / ".dvc").mkdir()
    backbone = build_backbone("plain_cnn", (32, 96, 3), False)
    model = build_model(backbone, "plates", 7, len(ALPHABET), 8, 0.0)
    (root / "models").mkdir()
    model.save(root / "models/model.keras")
    predict.Labels("plates", list(ALPHABET), 32, 96, 7, None).save(root / "models/labels.json")
    return root


@pytest.fixture(autouse=True)
def in_repository(repository, monkeypatch):
    with inside_project(repository, monkeypatch):
        yield


@pytest.fixture(scope="module")
def image_files(repository):
    folder = repository / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "good.png"), plate_image("ABC1234"))
    cv2.imwrite(str(folder / "photo.jpg"), plate_image("XYZ9876", 64, 192))
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(plate_image("KLM5555"), cv2.COLOR_RGB2GRAY))
    odd = cv2.cvtColor(plate_image("PQR1010", 47, 211), cv2.COLOR_RGB2BGRA)  # odd size, with alpha
    cv2.imwrite(str(folder / "odd.png"), odd)
    (folder / "notes.png").write_text("this is not an image")
    return {
        "good": [str(folder / n) for n in ("good.png", "photo.jpg", "gray.png", "odd.png")],
        "bad": [str(folder / "notes.png"), str(folder / "missing.png")],
    }


def test_good_files_are_read_and_bad_ones_get_an_error(repository, image_files):
    files = [image_files["good"][0], image_files["bad"][0], *image_files["good"][1:], image_files["bad"][1]]
    frame = predict.predict_files(repository / "models/model.keras", files)
    assert list(frame.columns) == ["file", "plate_text", "confidence", "char_confidences", "error"]
    assert frame["file"].tolist() == files  # input order kept
    good = frame[frame["error"] == ""]
    bad = frame[frame["error"] != ""].set_index("file")
    assert good["file"].tolist() == image_files["good"]
    assert good["plate_text"].str.len().eq(7).all() and good["confidence"].between(0, 1).all()
    assert all(len(c.split()) == 7 for c in good["char_confidences"])
    assert "not a readable image" in bad.loc[image_files["bad"][0], "error"]
    assert "not found" in bad.loc[image_files["bad"][1], "error"]
    assert bad["plate_text"].eq("").all() and bad["confidence"].isna().all()


def test_file_predictions_match_the_model_on_the_same_pixels(repository, image_files):
    reader = predict.Reader.load(repository / "models/model.keras")
    from transferlab.data.images import read_rgb

    images = np.stack([read_rgb(f, 32, 96) for f in image_files["good"]])
    probs = reader.model.predict(images.astype(np.float32), verbose=0)
    expected = ["".join(ALPHABET[i] for i in row) for row in probs.argmax(-1)]
    frame = reader.predict_files(image_files["good"])
    assert frame["plate_text"].tolist() == expected
    assert frame["confidence"].to_numpy() == pytest.approx(probs.max(-1).prod(-1), rel=1e-5)


def test_predict_command_prints_writes_csv_and_sets_the_exit_code(repository, image_files, capsys):
    out = repository / "out/predictions.csv"
    code = predict.predict_command("models/model.keras", [*image_files["good"], *image_files["bad"]], str(out))
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and lines[-1].endswith("file not found") and "\tERROR\t" in lines[-1]
    assert pd.read_csv(out, keep_default_na=False)["error"].ne("").sum() == 2
    assert predict.predict_command("models/model.keras", image_files["bad"], None) == 1
    capsys.readouterr()
    # A folder stands for the image files in it (notes.png has an image extension: listed, unreadable).
    assert predict.predict_command("models/model.keras", [str(repository / "images")], None) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 5 and "1 of 5 file(s)" in captured.err
    assert predict.predict_command("models/model.keras", [], None) == 1


def test_a_model_without_labels_or_a_missing_model_is_a_clear_error(repository, tmp_path):
    (tmp_path / "model.keras").write_bytes((repository / "models/model.keras").read_bytes())
    with pytest.raises(TransferlabError, match="labels.json"):
        predict.Reader.load(tmp_path / "model.keras")
    with pytest.raises(TransferlabError, match="not found"):
        predict.Reader.load(tmp_path / "nothing.keras")
    # A damaged file is reported as corrupt, by name; Keras itself would say "File not found".
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes((repository / "models/model.keras").read_bytes()[:500])
    with pytest.raises(TransferlabError, match="damaged.keras: corrupt model file") as raised:
        predict.load_keras_model(damaged)
    assert "not found" not in str(raised.value).lower()


def test_decoding_variable_length_plates_and_classes():
    labels = predict.Labels("plates", list("AB1_"), 32, 96, 4, "_")
    probs = np.zeros((1, 4, 4))
    probs[0, np.arange(4), [0, 2, 3, 3]] = [0.9, 0.8, 0.7, 0.6]
    row = predict.decode_probabilities(probs, labels).iloc[0]
    assert row["plate_text"] == "A1" and row["char_confidences"] == "0.90 0.80"
    assert row["confidence"] == pytest.approx(0.9 * 0.8 * 0.7 * 0.6)
    classes = predict.Labels("classification", ["cat", "dog", "owl"], 24, 24)
    row = predict.decode_probabilities(np.array([[0.2, 0.7, 0.1]]), classes).iloc[0]
    assert row["label"] == "dog" and row["top_classes"] == "dog 0.70 cat 0.20 owl 0.10"
    with pytest.raises(TransferlabError, match="pad_char"):
        predict.Labels("plates", list("AB"), 32, 96, 2, "_")


def test_pyfunc_reads_numpy_batches_and_dataframes(repository, image_files, capfd, caplog):
    images = np.stack([plate_image("ABC1234"), plate_image("XYZ9876")])
    tracking.configure()
    with tracking.tracked_run("predict-test", "train", params={}, tags={}) as run:
        info = reader_pyfunc.log_pyfunc_model(repository / "models/model.keras", repository / "models/labels.json",
                                              images)
    expected = predict.Reader.load(repository / "models/model.keras").predict_arrays(images)

    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/reader")
    # Logged and loaded without MLflow's notices on our own choices or its download progress bars.
    said = capfd.readouterr().err + caplog.text
    assert "Downloading artifacts" not in said and "CloudPickle" not in said and "Validating input" not in said
    from_numpy = loaded.predict(images)
    assert from_numpy["plate_text"].tolist() == expected["plate_text"].tolist()
    from_frame = loaded.predict(pd.DataFrame({"image": list(images)}))
    assert from_frame["plate_text"].tolist() == expected["plate_text"].tolist()
    from_paths = loaded.predict(pd.DataFrame({"file": image_files["good"]}))
    assert len(from_paths) == 4 and list(from_paths.columns) == ["plate_text", "confidence", "char_confidences"]
    odd_sized = loaded.predict(np.zeros((1, 50, 150, 3), np.uint8))
    assert len(odd_sized) == 1

    # The same logged model also serves predict_files through its URI.
    frame = predict.predict_files(info.model_uri, image_files["good"][:1])
    assert frame["error"].tolist() == [""]
    assert predict.Reader.load(f"runs:/{run.info.run_id}/reader").labels.slots == 7
    with pytest.raises(TransferlabError, match="cannot download"):
        predict.Reader.load("runs:/0123456789abcdef0123456789abcdef/reader")


_FRESH_LOAD = """
import importlib.util, json, sys
# No transferlab: neither the project's src/ (PYTHONPATH) nor its editable install (a .pth entry).
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("src")]
assert importlib.util.find_spec("transferlab") is None, sys.path
import numpy as np
import mlflow.pyfunc
model = mlflow.pyfunc.load_model(sys.argv[1])
print(json.dumps(model.predict(np.load(sys.argv[2]))["plate_text"].tolist()))
"""


def test_the_reader_loads_in_a_fresh_process_without_transferlab_installed(repository, tmp_path):
    images = np.stack([plate_image("ABC1234"), plate_image("XYZ9876")])
    tracking.configure()
    with tracking.tracked_run("predict-test", "train", params={}, tags={}) as run:
        reader_pyfunc.log_pyfunc_model(repository / "models/model.keras", repository / "models/labels.json", images)
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/reader", dst_path=str(tmp_path)))
    assert (local / "code/transferlab/inference/predict.py").is_file() and not list(local.glob("code/**/__pycache__"))
    required = {line.split("==")[0] for line in (local / "requirements.txt").read_text().split()}
    assert {"keras", "numpy", "pandas", "mlflow", "opencv-python"} <= required and "transferlab" not in required
    np.save(tmp_path / "images.npy", images)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", _FRESH_LOAD, str(local), str(tmp_path / "images.npy")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = predict.Reader.load(repository / "models/model.keras").predict_arrays(images)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected["plate_text"].tolist()
