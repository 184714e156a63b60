"""The synthetic plate dataset: labels follow the formats, output is deterministic and atomic."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from transferlab import synth
from transferlab.config import DEFAULT_ALPHABET, GenerateConfig, PlatesConfig
from transferlab.datasets import read_plate_manifest
from transferlab.errors import TransferlabError
from transferlab.plates import PlateCodec


def tiny(output: Path, **overrides) -> GenerateConfig:
    return GenerateConfig(**{"count": 8, "height": 32, "width": 96, "output": str(output), **overrides})


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# --- plate text -----------------------------------------------------------------------


def test_plate_text_follows_the_format():
    rng = np.random.default_rng(0)
    for _ in range(200):
        label, rendered = synth.random_plate_text("@@-### Z*", DEFAULT_ALPHABET, rng)
        assert len(label) == 7 and len(rendered) == 9
        assert label[:2].isalpha() and label[2:5].isdigit() and label[5] == "Z"
        assert rendered[2] == "-" and rendered[6] == " "
        assert rendered.replace("-", "").replace(" ", "") == label
        assert set(label) <= set(DEFAULT_ALPHABET)


def test_plate_text_draws_only_from_the_alphabet():
    rng = np.random.default_rng(1)
    alphabet = "0127ABK"
    labels = [synth.random_plate_text("@#*@", alphabet, rng)[0] for _ in range(300)]
    assert {c for t in labels for c in t[0] + t[3]} == set("ABK")
    assert {t[1] for t in labels} == set("0127")
    assert {t[2] for t in labels} == set(alphabet)


def test_format_needing_digits_from_an_alphabet_without_any_is_an_error():
    with pytest.raises(TransferlabError, match="needs digits"):
        synth.random_plate_text("@@###", "ABCDEF", np.random.default_rng(0))


def test_formats_are_checked_before_rendering(tmp_path):
    with pytest.raises(TransferlabError, match=r"generate.formats\[1\].*7"):
        synth.generate_dataset(tiny(tmp_path / "syn", formats=["@@@ ####", "@@ ##"]), PlatesConfig(), progress=False)
    with pytest.raises(TransferlabError, match="no bundled font can draw"):
        synth.generate_dataset(tiny(tmp_path / "syn", formats=["Ж######"]), PlatesConfig(alphabet=DEFAULT_ALPHABET + "Ж"),
                               progress=False)
    assert not (tmp_path / "syn").exists()


# --- rendering ------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "width"), [(32, 96), (64, 192), (16, 48), (80, 200)])
def test_render_plate_shape_and_dtype(height, width):
    image = synth.render_plate("AB-123 CD", height, width, np.random.default_rng(3), 0.5)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert image.std() > 10  # a plate, not a flat picture


def test_render_plate_is_a_function_of_its_rng():
    a = synth.render_plate("ABC 1234", 32, 96, np.random.default_rng(7), 0.5)
    b = synth.render_plate("ABC 1234", 32, 96, np.random.default_rng(7), 0.5)
    c = synth.render_plate("ABC 1234", 32, 96, np.random.default_rng(8), 0.5)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_fonts_are_bundled_with_their_licences():
    folder = resources.files("transferlab").joinpath("fonts")
    names = {p.name for p in folder.iterdir()}
    for spec in synth.FONTS:
        assert spec.file in names
    assert {"OSP-DIN.OFL-1.1.txt", "OCRB.copyright.txt", "routed-gothic.copyright.txt"} <= names
    assert synth.fonts_for("0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ-") == list(range(len(synth.FONTS)))


@pytest.mark.parametrize("font", range(len(synth.FONTS)))
def test_one_and_capital_i_look_different_in_every_font(font):
    def shape(ch):
        ink = synth._glyph(font, ch, 1)[0]
        rows = np.flatnonzero(ink.max(axis=1))
        return cv2.resize(ink[rows[0]:rows[-1] + 1], (16, 32), interpolation=cv2.INTER_AREA) > 127

    one, eye = shape("1"), shape("I")
    assert (one & eye).sum() / (one | eye).sum() < 0.8


# --- the dataset ----------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files_and_another_seed_other_images(tmp_path):
    frame = synth.generate_dataset(tiny(tmp_path / "a"), PlatesConfig(), progress=False)
    synth.generate_dataset(tiny(tmp_path / "b"), PlatesConfig(), progress=False)
    synth.generate_dataset(tiny(tmp_path / "c", seed=1), PlatesConfig(), progress=False)
    a, b, c = (files_of(tmp_path / name) for name in "abc")
    assert len(frame) == 8 and len(a) == 8 + 2  # images + labels.csv + preview.png
    assert a == b
    images = [k for k in a if k.startswith("images/")]
    assert all(a[k] != c[k] for k in images)
    assert a["labels.csv"] != c["labels.csv"]


def test_labels_csv_is_the_plate_dataset_format(tmp_path):
    out = tmp_path / "syn"
    plates = PlatesConfig()
    frame = synth.generate_dataset(tiny(out, count=12, formats=["@@@ ####", "##-@@@@@"]), plates, progress=False)
    csv = pd.read_csv(out / "labels.csv", dtype=str, keep_default_na=False)
    assert list(csv.columns) == ["image_path", "plate_text"]
    pd.testing.assert_frame_equal(csv, frame)
    codec = PlateCodec.from_config(plates)
    for path, text in zip(csv.image_path, csv.plate_text):
        assert not Path(path).is_absolute() and (out / path).is_file()
        image = cv2.imread(str(out / path))
        assert image.shape == (32, 96, 3)
        codec.check(text)
        assert (text[:3].isalpha() and text[3:].isdigit()) or (text[:2].isdigit() and text[2:].isalpha())
    assert (out / synth.PREVIEW_FILE).is_file()
    manifest = read_plate_manifest(out, codec, skip_invalid=False)  # what the split stage reads
    assert list(manifest.label) == list(csv.plate_text)


def test_variable_length_formats_give_both_lengths(tmp_path):
    plates = PlatesConfig(slots=7, variable_length=True)
    frame = synth.generate_dataset(tiny(tmp_path / "syn", count=24, formats=["@@ ###", "@@@ ####"]), plates,
                                   progress=False)
    assert set(frame.plate_text.str.len()) == {5, 7}
    for text in frame.plate_text:
        PlateCodec.from_config(plates).check(text)
        assert text[-3:].isdigit() and text[:2].isalpha()


def test_a_crash_midway_leaves_no_output_and_no_temporary_folder(tmp_path, monkeypatch):
    real = synth.render_plate
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(synth, "render_plate", failing)
    with pytest.raises(RuntimeError, match="boom"):
        synth.generate_dataset(tiny(tmp_path / "syn"), PlatesConfig(), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_crash_keeps_the_previous_output_intact(tmp_path, monkeypatch):
    out = tmp_path / "syn"
    synth.generate_dataset(tiny(out), PlatesConfig(), progress=False)
    before = files_of(out)

    def failing(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "render_plate", failing)
    with pytest.raises(KeyboardInterrupt):
        synth.generate_dataset(tiny(out, seed=5), PlatesConfig(), progress=False)
    assert files_of(out) == before
    assert leftovers(tmp_path) == []


def test_a_new_run_replaces_the_old_output_whole(tmp_path):
    out = tmp_path / "syn"
    synth.generate_dataset(tiny(out, count=8), PlatesConfig(), progress=False)
    synth.generate_dataset(tiny(out, count=3, seed=2), PlatesConfig(), progress=False)
    synth.generate_dataset(tiny(tmp_path / "fresh", count=3, seed=2), PlatesConfig(), progress=False)
    assert files_of(out) == files_of(tmp_path / "fresh")
    assert leftovers(tmp_path) == []


def test_worker_processes_give_the_same_files(tmp_path):
    synth.generate_dataset(tiny(tmp_path / "serial", count=10), PlatesConfig(), progress=False, workers=1)
    synth.generate_dataset(tiny(tmp_path / "parallel", count=10), PlatesConfig(), progress=False, workers=2)
    assert files_of(tmp_path / "serial") == files_of(tmp_path / "parallel")


def test_progress_is_reported_on_stderr(tmp_path, capsys):
    synth.generate_dataset(tiny(tmp_path / "syn", count=4), PlatesConfig(), progress=True)
    captured = capsys.readouterr()
    assert "4/4" in captured.err and captured.out == ""


def test_stage_run_writes_the_dataset_of_params(tmp_path):
    from helpers import tiny_params

    params = tiny_params(tmp_path, generate={"count": 6})
    summary = synth.run(params)
    assert summary["images"] == 6
    assert len(pd.read_csv(tmp_path / "data/synthetic/labels.csv")) == 6
