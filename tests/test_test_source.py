"""data.test_source: a fixed test set of the user's choosing becomes the test split."""

import shutil
from pathlib import Path

import pandas as pd
import pytest

from helpers import random_plates, tiny_params, write_class_folders, write_plate_csv
from transferlab import split
from transferlab.data import prepared
from transferlab import test_source as stamp
from transferlab.errors import TransferlabError
from transferlab.io import read_json

SOURCE_TEXTS = random_plates(30, seed=0)
TEST_TEXTS = random_plates(8, seed=1)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def plate_params(tmp_path, **data):
    return tiny_params(tmp_path, data={"source": str(tmp_path / "plates"),
                                       "test_source": str(tmp_path / "heldout/labels.csv"), **data})


def class_params(tmp_path):
    return tiny_params(tmp_path, task="classification",
                       data={"source": str(tmp_path / "classes"), "test_source": str(tmp_path / "heldout")})


@pytest.fixture
def plates(tmp_path):
    """A 30-plate source and an 8-plate test CSV sharing no plate string."""
    write_plate_csv(tmp_path / "plates", SOURCE_TEXTS)
    return write_plate_csv(tmp_path / "heldout", TEST_TEXTS)


def edit_csv(csv: Path, row: int, column: str, value: str) -> None:
    frame = pd.read_csv(csv, dtype=str)
    frame.loc[row, column] = value
    frame.to_csv(csv, index=False)


def expect_error_keeping_output(params, *fragments) -> str:
    """The run fails with every fragment in its message, and the earlier prepared folder is untouched."""
    prepared = Path(params.split.output)
    before = {p.name: p.read_bytes() for p in prepared.iterdir()}
    with pytest.raises(TransferlabError) as info:
        split.run(params)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert {p.name: p.read_bytes() for p in prepared.iterdir()} == before
    return str(info.value)


def test_test_split_is_exactly_the_test_csv_in_file_order(tmp_path, plates):
    stats = split.run(plate_params(tmp_path))
    out = tmp_path / "data/prepared"
    test = prepared.load_split(out, "test")
    assert test.frame["label"].tolist() == TEST_TEXTS
    assert test.frame["image_path"].tolist() == [f"images/{i:03d}.png" for i in range(len(TEST_TEXTS))]
    assert test.images.shape == (8, 32, 96, 3) and test.labels.shape == (8, 7)
    # train and validation come from the source alone; validation takes val_fraction (0.2) of it
    train, val = prepared.load_split(out, "train"), prepared.load_split(out, "val")
    assert sorted(train.frame["label"].tolist() + val.frame["label"].tolist()) == sorted(SOURCE_TEXTS)
    assert (stats["train"]["count"], stats["val"]["count"], stats["test"]["count"]) == (24, 6, 8)
    assert stats["test_source"] == str(plates)
    assert read_json("metrics/data.json")["test_source"] == str(plates)
    assert prepared.read_meta(out)["test_source"] == str(plates)


def test_without_a_test_source_the_meta_says_so(tmp_path, plates):
    split.run(tiny_params(tmp_path, data={"source": str(tmp_path / "plates")}))
    assert prepared.read_meta(tmp_path / "data/prepared")["test_source"] is None
    assert read_json("metrics/data.json")["test"]["count"] == 6  # test_fraction 0.2 of the source


@pytest.mark.parametrize("column, value, fragment", [
    ("plate_text", "ABC123O", "not in the alphabet"),
    ("plate_text", "ABC12345", "at most 7"),
    ("image_path", "images/missing.png", "file not found"),
])
def test_an_invalid_test_row_names_the_test_csv_and_row(tmp_path, plates, column, value, fragment):
    split.run(tiny_params(tmp_path, data={"source": str(tmp_path / "plates")}))
    edit_csv(plates, 3, column, value)
    message = expect_error_keeping_output(plate_params(tmp_path), f"{plates}: 1 invalid", "row 5 (images/", fragment)
    assert str(tmp_path / "plates") not in message  # the source is fine: only the test CSV is named


def test_unreadable_test_image_and_missing_column(tmp_path, plates):
    split.run(tiny_params(tmp_path, data={"source": str(tmp_path / "plates")}))
    (tmp_path / "heldout/images/002.png").write_bytes(b"not an image")
    expect_error_keeping_output(plate_params(tmp_path), f"{plates}: 1 invalid images",
                                "row 4 (images/002.png): not a readable image")
    (tmp_path / "heldout/other.csv").write_text("image_path,text\nimages/000.png,ABC1234\n")
    expect_error_keeping_output(plate_params(tmp_path, test_source=str(tmp_path / "heldout/other.csv")),
                                "other.csv: missing column(s) plate_text")


def test_missing_test_source_names_the_key(tmp_path, plates):
    with pytest.raises(TransferlabError, match="data.test_source must be a CSV"):
        split.run(plate_params(tmp_path, test_source=str(tmp_path / "nowhere.csv")))


def test_skip_invalid_applies_to_the_test_source(tmp_path, plates, capsys):
    edit_csv(plates, 0, "plate_text", "BAD")
    stats = split.run(plate_params(tmp_path, skip_invalid=True))
    assert stats["test"]["count"] == 7
    assert f"{plates}: skipping 1 invalid rows" in capsys.readouterr().err


def test_plates_in_both_source_and_test_source_are_refused(tmp_path):
    write_plate_csv(tmp_path / "plates", SOURCE_TEXTS)
    write_plate_csv(tmp_path / "heldout", SOURCE_TEXTS[:3] + TEST_TEXTS + SOURCE_TEXTS[:1])
    with pytest.raises(TransferlabError) as info:
        split.run(plate_params(tmp_path))
    message = str(info.value)
    assert message.startswith(f"data.test_source ({tmp_path / 'heldout/labels.csv'}): 3 plate string(s) are also in data.source")
    assert f"(e.g. {', '.join(SOURCE_TEXTS[:3])})" in message and "flatters the model" in message
    assert not (tmp_path / "data/prepared").exists()


def test_classification_test_source_is_the_test_split(tmp_path):
    write_class_folders(tmp_path / "classes", {"cats": 10, "dogs": 10})
    write_class_folders(tmp_path / "heldout", {"dogs": 3}, size=20)  # a subset of the classes is fine
    stats = split.run(class_params(tmp_path))
    assert stats["test"]["classes"] == {"dogs": 3}
    assert stats["val"]["classes"] == {"cats": 2, "dogs": 2} and stats["train"]["count"] == 16
    test = prepared.load_split(tmp_path / "data/prepared", "test")
    assert test.frame["image_path"].tolist() == ["dogs/000.jpg", "dogs/001.jpg", "dogs/002.jpg"]
    assert test.labels.tolist() == [1, 1, 1]  # the source's class indices (cats 0, dogs 1)
    assert prepared.read_meta(tmp_path / "data/prepared")["classes"] == ["cats", "dogs"]


def test_classification_unknown_class_folder_is_named(tmp_path):
    write_class_folders(tmp_path / "classes", {"cats": 10, "dogs": 10})
    write_class_folders(tmp_path / "heldout", {"birds": 2, "dogs": 2}, size=20)
    with pytest.raises(TransferlabError, match=r"class folder\(s\) birds not among the classes of data.source"):
        split.run(class_params(tmp_path))
    assert not (tmp_path / "data/prepared").exists()


def test_classification_identical_image_in_both_is_refused(tmp_path):
    write_class_folders(tmp_path / "classes", {"cats": 10, "dogs": 10})
    write_class_folders(tmp_path / "heldout", {"cats": 2, "dogs": 2}, size=20)
    shutil.copy(tmp_path / "classes/dogs/004.jpg", tmp_path / "heldout/dogs/copy.jpg")
    with pytest.raises(TransferlabError, match=r"1 image\(s\) are byte-identical to images in data.source "
                                               r"\(e.g. dogs/copy.jpg = dogs/004.jpg\)"):
        split.run(class_params(tmp_path))


def test_stamp_follows_the_test_sets_content(tmp_path, plates):
    params = plate_params(tmp_path)
    first = stamp.run(params)
    assert read_json(stamp.STAMP_FILE) == first and first["files"] == 1 + len(TEST_TEXTS)
    assert stamp.run(params) == first
    (tmp_path / "heldout/images/005.png").write_bytes(b"edited")  # an image changed, the CSV did not
    assert stamp.run(params)["sha256"] != first["sha256"]
    assert stamp.run(tiny_params(tmp_path))["test_source"] is None
    assert read_json(stamp.STAMP_FILE) == {"test_source": None}


def test_classification_stamp_sees_a_new_image(tmp_path):
    write_class_folders(tmp_path / "heldout", {"cats": 2})
    params = class_params(tmp_path)
    first = stamp.run(params)
    write_class_folders(tmp_path / "heldout", {"cats": 3})
    second = stamp.run(params)
    assert (first["files"], second["files"]) == (2, 3) and first["sha256"] != second["sha256"]
