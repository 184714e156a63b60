import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import random_plates, tiny_params, write_class_folders, write_plate_csv
from transferlab import split
from transferlab.data import prepared
from transferlab.errors import TransferlabError
from transferlab.io import read_json


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def plate_params(tmp_path, **data):
    return tiny_params(tmp_path, data={"source": str(tmp_path / "plates"), **data})


def run_expecting_error(params, *fragments):
    with pytest.raises(TransferlabError) as info:
        split.run(params)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert not Path(params.split.output).exists()
    return str(info.value)


def test_plate_csv_is_split_cached_and_counted(tmp_path):
    texts = random_plates(40)
    write_plate_csv(tmp_path / "plates", texts)
    stats = split.run(plate_params(tmp_path))
    out = tmp_path / "data/prepared"
    total = 0
    for name in prepared.SPLITS:
        data = prepared.load_split(out, name)
        assert data.images.dtype == np.uint8 and data.images.shape[1:] == (32, 96, 3)
        assert data.labels.shape == (len(data.frame), 7)
        total += len(data.frame)
    assert total == 40 and stats["total"] == 40
    assert stats["train"]["count"] == 24 and stats["val"]["count"] == 8
    assert read_json("metrics/data.json")["test"]["length"] == {"7": stats["test"]["count"]}


def test_same_seed_gives_identical_arrays_and_another_seed_does_not(tmp_path):
    write_plate_csv(tmp_path / "plates", random_plates(30))
    split.run(plate_params(tmp_path))
    first = prepared.load_split(tmp_path / "data/prepared", "test").labels.copy()
    split.run(plate_params(tmp_path))
    assert np.array_equal(first, prepared.load_split(tmp_path / "data/prepared", "test").labels)
    split.run(tiny_params(tmp_path, data={"source": str(tmp_path / "plates")}, split={"seed": 7}))
    assert not np.array_equal(first, prepared.load_split(tmp_path / "data/prepared", "test").labels)


def test_identical_plate_strings_never_cross_splits(tmp_path):
    texts = random_plates(10) * 4  # every plate photographed four times
    write_plate_csv(tmp_path / "plates", texts)
    stats = split.run(plate_params(tmp_path))
    seen = {name: set(prepared.load_split(tmp_path / "data/prepared", name).frame["label"]) for name in prepared.SPLITS}
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"]) and not (seen["val"] & seen["test"])
    assert stats["moved_for_leakage"] > 0


def test_folder_per_class_is_stratified(tmp_path):
    write_class_folders(tmp_path / "classes", {"cats": 10, "dogs": 20})
    params = tiny_params(tmp_path, task="classification", data={"source": str(tmp_path / "classes")})
    stats = split.run(params)
    assert stats["val"]["classes"] == {"cats": 2, "dogs": 4}
    assert stats["test"]["classes"] == {"cats": 2, "dogs": 4}
    assert prepared.read_meta(tmp_path / "data/prepared")["classes"] == ["cats", "dogs"]


def test_class_with_too_few_images_is_named(tmp_path):
    write_class_folders(tmp_path / "classes", {"cats": 2, "dogs": 20})
    params = tiny_params(tmp_path, task="classification", data={"source": str(tmp_path / "classes")})
    run_expecting_error(params, "'cats' has 2", "at least 3")


def test_missing_source_and_missing_csv(tmp_path):
    run_expecting_error(plate_params(tmp_path), "plates: plate CSV not found")
    (tmp_path / "plates").mkdir()
    run_expecting_error(plate_params(tmp_path), "plates/labels.csv: plate CSV not found")


def test_empty_dataset(tmp_path):
    (tmp_path / "plates").mkdir()
    (tmp_path / "plates/labels.csv").write_text("image_path,plate_text\n")
    run_expecting_error(plate_params(tmp_path), "empty")


def test_missing_column(tmp_path):
    (tmp_path / "plates").mkdir()
    (tmp_path / "plates/labels.csv").write_text("image_path,text\na.png,ABC1234\n")
    run_expecting_error(plate_params(tmp_path), "missing column(s) plate_text")


@pytest.mark.parametrize("bad_text, fragment", [("ABC123O", "not in the alphabet"), ("ABC12345", "at most 7"),
                                                ("ABC12", "must have 7")])
def test_bad_label_names_row_and_file(tmp_path, bad_text, fragment):
    csv = write_plate_csv(tmp_path / "plates", random_plates(20))
    frame = pd.read_csv(csv)
    frame.loc[4, "plate_text"] = bad_text
    frame.to_csv(csv, index=False)
    run_expecting_error(plate_params(tmp_path), "row 6 (images/004.png)", fragment)


def test_duplicate_paths(tmp_path):
    csv = write_plate_csv(tmp_path / "plates", random_plates(20))
    frame = pd.read_csv(csv)
    frame.loc[3, "image_path"] = frame.loc[2, "image_path"]
    frame.to_csv(csv, index=False)
    run_expecting_error(plate_params(tmp_path), "row 5 (images/002.png): duplicate image_path")


def test_missing_and_unreadable_images_are_all_listed(tmp_path):
    write_plate_csv(tmp_path / "plates", random_plates(20))
    (tmp_path / "plates/images/001.png").unlink()
    (tmp_path / "plates/images/002.png").write_bytes(b"not an image")
    message = run_expecting_error(plate_params(tmp_path), "2 invalid images")
    assert "row 3 (images/001.png): file not found" in message
    assert "row 4 (images/002.png): not a readable image" in message


def test_failed_run_keeps_the_previous_output(tmp_path):
    write_plate_csv(tmp_path / "plates", random_plates(20))
    split.run(plate_params(tmp_path))
    before = (tmp_path / "data/prepared/train_images.npy").read_bytes()
    (tmp_path / "plates/images/000.png").write_bytes(b"broken")
    with pytest.raises(TransferlabError):
        split.run(plate_params(tmp_path))
    assert (tmp_path / "data/prepared/train_images.npy").read_bytes() == before
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["prepared"]  # no temporary folder left


def test_skip_invalid_warns_and_continues(tmp_path, capsys):
    csv = write_plate_csv(tmp_path / "plates", random_plates(20))
    frame = pd.read_csv(csv)
    frame.loc[0, "plate_text"] = "BAD"
    frame.to_csv(csv, index=False)
    (tmp_path / "plates/images/001.png").write_bytes(b"broken")
    stats = split.run(plate_params(tmp_path, skip_invalid=True))
    assert stats["total"] == 18
    assert "skipping 1 invalid rows" in capsys.readouterr().err


def test_grayscale_and_odd_sized_images_are_normalised(tmp_path):
    write_plate_csv(tmp_path / "plates", random_plates(20), size=(50, 120))
    import cv2

    gray = cv2.cvtColor(cv2.imread(str(tmp_path / "plates/images/000.png")), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "plates/images/000.png"), gray)
    shutil.copy(tmp_path / "plates/images/000.png", tmp_path / "plates/images/000_copy.png")
    split.run(plate_params(tmp_path))
    assert prepared.load_split(tmp_path / "data/prepared", "train").images.shape[1:] == (32, 96, 3)
