"""The real plates bundled with the project (datasets/cn_plates): complete, split as documented,
licensed, and read by transferlab as the default study reads them."""

import random
import re
from pathlib import Path

import cv2
import pandas as pd

from transferlab import study
from transferlab.config import StudyConfig, parse_params

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "datasets" / "cn_plates"


def test_the_bundled_real_plates_are_complete_split_as_documented_and_licensed():
    train = pd.read_csv(BUNDLED / "train.csv", dtype=str, keep_default_na=False)
    test = pd.read_csv(BUNDLED / "test.csv", dtype=str, keep_default_na=False)
    assert list(train.columns) == list(test.columns) == ["image_path", "plate_text"]
    assert (len(train), len(test)) == (600, 400)
    assert not set(train["plate_text"]) & set(test["plate_text"])  # no plate string in both
    images = sorted((BUNDLED / "images").glob("*.jpg"))
    assert len(images) == 1000 and sorted(pd.concat([train, test])["image_path"]) == [
        f"images/{p.name}" for p in images]
    assert all(re.fullmatch("[0-9A-Z]{6}", text) for text in pd.concat([train, test])["plate_text"])
    for path in images[::97]:
        assert cv2.imread(str(path)).shape == (24, 94, 3)
    # The documented split: the 1,000 rows in file-number order, random.Random(0).shuffle, 600 | 400.
    rows = sorted(pd.concat([train, test]).itertuples(index=False))
    random.Random(0).shuffle(rows)
    assert [r.image_path for r in rows[:600]] == list(train["image_path"])
    assert [r.image_path for r in rows[600:]] == list(test["image_path"])
    licence = (BUNDLED / "LICENSE.txt").read_text(encoding="utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    notice = (BUNDLED / "README.md").read_text(encoding="utf-8")
    assert "sirius-ai/LPRNet_Pytorch" in notice and "7c976664b3f3879efabeaff59c7a117e49d5f29e" in notice
    assert "random.Random(0).shuffle" in notice and "LICENSE.txt" in notice


def test_the_default_study_prepares_the_bundled_plates(tmp_path, monkeypatch):
    """The default study.source / test_source, read from the project root: 510 / 90 / 400 plates,
    6 slots of 34 symbols (no I, no O); the fitted look beside them is applied."""
    monkeypatch.chdir(REPO)  # the defaults are relative to the project root
    cfg = StudyConfig(output=str(tmp_path / "results"))
    params = parse_params({})  # params.yaml's split settings: validation 0.15 of the source
    pipeline_files = [p for p in (REPO / "data/prepared/meta.json", REPO / "metrics/data.json") if p.exists()]
    before = [p.stat().st_mtime_ns for p in pipeline_files]
    stamp = study.prepare(params, cfg)
    meta = pd.read_json(tmp_path / "results/prepared/split.json", typ="series")
    assert (meta["train"]["count"], meta["val"]["count"], meta["test"]["count"]) == (510, 90, 400)
    assert len(stamp["classes"]) == 34 and "I" not in stamp["classes"] and "O" not in stamp["classes"]
    sparams = study.study_params(params, cfg)
    assert sparams.plates.slots == 6 and stamp["look_from"] == "datasets/cn_plates/look.yaml"
    assert sparams.generate.styles.cn_blue > sparams.generate.styles.eu
    assert not (tmp_path / "data").exists()
    assert [p.stat().st_mtime_ns for p in pipeline_files] == before  # the pipeline's split and metrics untouched
