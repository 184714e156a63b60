"""The synthetic plate dataset: labels follow the formats, output is deterministic and atomic."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from transferlab.generate import render as synth
from transferlab.generate import capture as synth_capture
from transferlab.generate import glyphs as synth_glyphs
from transferlab.generate import styles as synth_styles
from transferlab.config import DEFAULT_ALPHABET, CaptureConfig, GenerateConfig, PlatesConfig, StyleWeights, parse_params
from transferlab.data.datasets import read_plate_manifest
from transferlab.errors import TransferlabError
from transferlab.data.plates import PlateCodec


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
    image = synth.render_plate("AB-123 CD", height, width, np.random.default_rng(3), GenerateConfig())
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert image.std() > 10  # a plate, not a flat picture


def test_render_plate_is_a_function_of_its_rng():
    a = synth.render_plate("ABC 1234", 32, 96, np.random.default_rng(7), GenerateConfig())
    b = synth.render_plate("ABC 1234", 32, 96, np.random.default_rng(7), GenerateConfig())
    c = synth.render_plate("ABC 1234", 32, 96, np.random.default_rng(8), GenerateConfig())
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_fonts_are_bundled_with_their_licences():
    folder = resources.files("transferlab.generate").joinpath("fonts")
    names = {p.name for p in folder.iterdir()}
    for spec in synth.FONTS:
        assert spec.file in names
    assert {"OSP-DIN.OFL-1.1.txt", "OCRB.copyright.txt", "routed-gothic.copyright.txt"} <= names
    assert synth.fonts_for("0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ-") == list(range(len(synth.FONTS)))
    # The prefix font: a small subset of Droid Sans Fallback, with its Apache-2.0 licence.
    assert {"DroidSansFallback-plates.ttf", "DroidSansFallback.Apache-2.0.txt",
            "DroidSansFallback.copyright.txt"} <= names
    assert folder.joinpath("DroidSansFallback-plates.ttf").stat().st_size < 50_000
    assert len(synth_glyphs.PREFIX_FONT_GLYPHS) == 37
    assert all(synth_glyphs.prefix_font(c) == synth_glyphs.PREFIX_FONT for c in synth_glyphs.PREFIX_FONT_GLYPHS)
    assert synth_glyphs.undrawable_prefix_glyphs("京Ж沪日") == "Ж日"


@pytest.mark.parametrize("font", range(len(synth.FONTS)))
def test_one_and_capital_i_look_different_in_every_font(font):
    def shape(ch):
        ink = synth._glyph(font, ch, 1)[0]
        rows = np.flatnonzero(ink.max(axis=1))
        return cv2.resize(ink[rows[0]:rows[-1] + 1], (16, 32), interpolation=cv2.INTER_AREA) > 127

    one, eye = shape("1"), shape("I")
    assert (one & eye).sum() / (one | eye).sum() < 0.8


# --- plate styles, prefix glyphs and capture conditions ---------------------------------


def only(style: str) -> dict[str, float]:
    return {name: float(name == style) for name in StyleWeights.model_fields}


def test_styles_of_the_config_are_the_styles_drawn():
    assert list(synth_styles.STYLES) == list(StyleWeights.model_fields)


@pytest.mark.parametrize("style", list(synth_styles.STYLES))
def test_each_style_renders_at_the_configured_size_and_is_deterministic(tmp_path, style):
    cfg = tiny(tmp_path, height=24, width=80, styles=only(style), prefix_glyphs="皖苏")
    label, a = synth.render_sample(cfg, DEFAULT_ALPHABET, 0)
    label_again, b = synth.render_sample(cfg, DEFAULT_ALPHABET, 0)
    _, c = synth.render_sample(cfg, DEFAULT_ALPHABET, 1)
    assert a.shape == (24, 80, 3) and a.dtype == np.uint8 and a.std() > 10
    assert label == label_again and np.array_equal(a, b) and not np.array_equal(a, c)


def test_styles_draw_their_own_plates():
    def plate(style: str) -> np.ndarray:
        return synth_styles._draw_plate("AB 1234", "", 60, 200, np.random.default_rng(4), synth_styles.STYLES[style],
                                        False, synth.fonts_for("AB 1234"))[0]

    plates = {style: plate(style) for style in synth_styles.STYLES}
    assert len({p.tobytes() for p in plates.values()}) == len(plates)
    blue = np.median(plates["cn_blue"].reshape(-1, 3), axis=0)
    assert blue[2] > blue[0] + 80  # a blue body


def test_a_mix_of_styles_picks_each_of_them(tmp_path):
    cfg = tiny(tmp_path, styles={name: 1.0 for name in StyleWeights.model_fields})
    picked = {synth_capture._pick_style(cfg.styles, synth.image_rng(0, i)) for i in range(60)}
    assert picked == set(synth_styles.STYLES.values())


def test_prefix_glyph_is_drawn_but_not_part_of_the_label(tmp_path):
    plain = tiny(tmp_path, styles=only("cn_blue"), formats=["@ #####"], count=2)
    prefixed = plain.model_copy(update={"prefix_glyphs": "皖"})
    for index in range(2):
        label, image = synth.render_sample(plain, DEFAULT_ALPHABET, index)
        label_p, image_p = synth.render_sample(prefixed, DEFAULT_ALPHABET, index)
        assert label_p == label and len(label) == 6
        assert not np.array_equal(image, image_p)
    # On the line of characters: the prefix adds ink on the left, the characters are unchanged.
    line, _ = synth_glyphs.registration_line("A12345", "", 0, 1, 0.05, 0.4)
    line_p, _ = synth_glyphs.registration_line("A12345", "皖", 0, 1, 0.05, 0.4)
    assert line_p.shape[0] == line.shape[0] and line_p.shape[1] > line.shape[1]
    assert np.array_equal(line_p[:, -line.shape[1]:], line) and line_p[:, : line.shape[0] // 2].any()


def test_chinese_plates_get_a_dot_after_the_first_two_glyphs():
    dot = synth_glyphs.SEPARATOR_DOT
    assert synth_styles._dotted("A12345", 1) == f"A{dot}12345"  # after the prefix and one letter
    assert synth_styles._dotted("AB 1234", 2) == f"AB{dot}1234"  # replaces the separator there
    line, _ = synth_glyphs.registration_line(f"A{dot}12", "", 0, 0, 0.05, 0.4)
    plain, _ = synth_glyphs.registration_line("A12", "", 0, 0, 0.05, 0.4)
    assert line.shape[1] > plain.shape[1] and line.sum() > plain.sum()


@pytest.mark.parametrize("font", range(len(synth.FONTS)))
def test_a_bare_one_is_one_upright_stroke_of_the_fonts_weight_height_and_advance(font):
    one, advance = synth_glyphs._glyph(font, "1", 1)
    bare, bare_advance = synth_glyphs._bare_one(font, 1)
    rows = np.flatnonzero(one.max(axis=1))
    bare_rows = np.flatnonzero(bare.max(axis=1))
    assert bare.shape[0] == one.shape[0] and bare_advance == advance
    assert (bare_rows[0], bare_rows[-1]) == (rows[0], rows[-1])  # same baseline and height
    assert (bare[bare_rows] == 255).all()  # every column inked from top to bottom: no flag, no foot
    assert bare.shape[1] < one.shape[1] and bare.sum() < one.sum()  # the flag (and foot) are gone


def test_bare_one_changes_only_the_ones_of_a_line(tmp_path):
    for text, changed in (("A1B71", True), ("AB 234", False)):
        plain, _ = synth_glyphs.registration_line(text, "皖", 0, 1, 0.05, 0.4)
        bare, _ = synth_glyphs.registration_line(text, "皖", 0, 1, 0.05, 0.4, bare_one=True)
        assert (plain.shape != bare.shape or not np.array_equal(plain, bare)) == changed
    cfg = tiny(tmp_path, styles=only("cn_blue"), formats=["@1111#"], prefix_glyphs="皖")
    label, image = synth.render_sample(cfg.model_copy(update={"bare_one": 1.0}), DEFAULT_ALPHABET, 0)
    assert label[1:5] == "1111" and image.shape == (32, 96, 3)
    assert not np.array_equal(image, synth.render_sample(cfg, DEFAULT_ALPHABET, 0)[1])


def test_a_bare_one_beside_an_i_in_the_alphabet_is_one_clear_error(tmp_path):
    cfg = tiny(tmp_path / "syn", bare_one=0.5)
    with pytest.raises(TransferlabError, match="generate.bare_one: a bare-stroke '1' looks like the 'I'"):
        synth.generate_dataset(cfg, PlatesConfig(), progress=False)  # the default alphabet has an I
    assert not (tmp_path / "syn").exists()
    synth.generate_dataset(cfg, PlatesConfig(alphabet=DEFAULT_ALPHABET.replace("I", "")), progress=False)
    assert len(pd.read_csv(tmp_path / "syn" / "labels.csv")) == 8


def test_unknown_style_or_capture_keys_are_rejected():
    with pytest.raises(TransferlabError, match=r"generate\.styles\.jp: unknown key"):
        parse_params({"generate": {"styles": {"eu": 1, "jp": 1}}})
    with pytest.raises(TransferlabError, match=r"generate\.capture\.nigth_ir: unknown key \(did you mean night_ir\?\)"):
        parse_params({"generate": {"capture": {"nigth_ir": 0.1}}})
    with pytest.raises(TransferlabError, match="every style weight is 0"):
        parse_params({"generate": {"styles": {"eu": 0}}})
    with pytest.raises(TransferlabError, match="tight_crop \\+ loose_crop"):
        parse_params({"generate": {"capture": {"tight_crop": 0.6, "loose_crop": 0.6}}})
    with pytest.raises(TransferlabError, match="generate.prefix_glyphs: must not contain white space"):
        parse_params({"generate": {"prefix_glyphs": "京 沪"}})


def test_undrawable_prefix_glyphs_are_one_clear_error(tmp_path):
    with pytest.raises(TransferlabError, match="generate.prefix_glyphs: no bundled font can draw 'Ж'"):
        synth.generate_dataset(tiny(tmp_path / "syn", prefix_glyphs="皖Ж"), PlatesConfig(), progress=False)
    assert not (tmp_path / "syn").exists()


@pytest.mark.parametrize("condition", list(CaptureConfig.model_fields))
def test_each_capture_condition_renders_at_the_configured_size(tmp_path, condition):
    off = {name: 0.0 for name in CaptureConfig.model_fields}
    base = tiny(tmp_path, height=24, width=80, capture=off)
    on = base.model_copy(update={"capture": CaptureConfig(**{**off, condition: 1.0})})
    _, plain = synth.render_sample(base, DEFAULT_ALPHABET, 3)
    _, image = synth.render_sample(on, DEFAULT_ALPHABET, 3)
    assert image.shape == (24, 80, 3) and image.dtype == np.uint8
    assert not np.array_equal(image, plain)
    if condition in ("greyscale", "night_ir"):
        assert np.abs(image.astype(int) - image[..., :1]).max() <= 3  # grey (up to JPEG rounding)


def test_switched_off_looks_take_nothing_from_the_generator():
    # So the default look (eu only, new conditions at 0) renders what it rendered before styles.
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert synth_capture._pick_style(StyleWeights(), rng) is synth_styles.STYLES["eu"]
    assert synth_capture._pick_prefix("", rng) == "" and synth_capture._pick_prefix("皖", rng) == "皖"
    assert not synth_capture._chance(rng, GenerateConfig().bare_one)
    assert not synth_capture._chance(rng, 0.0)
    assert synth_capture._crop_kind(CaptureConfig(), rng) == "normal"
    assert rng.bit_generator.state == state
    synth_capture._pick_style(StyleWeights(us=0.5), rng)
    assert rng.bit_generator.state != state


def test_comparison_preview_puts_real_crops_beside_synthetic_ones(tmp_path):
    synthetic = [synth.render_sample(tiny(tmp_path), DEFAULT_ALPHABET, i)[1] for i in range(4)]
    red = np.zeros((50, 120, 3), np.uint8)
    red[..., 0] = 255
    grey = np.full((20, 70), 90, np.uint8)  # another size, one channel
    path = tmp_path / "compare.png"
    synth.save_comparison_preview(synthetic, [red, grey], path, columns=2)
    sheet = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    left, right = sheet[:, : sheet.shape[1] // 2], sheet[:, sheet.shape[1] // 2:]
    is_red = (sheet[..., 0] == 255) & (sheet[..., 1] == 0) & (sheet[..., 2] == 0)
    assert is_red[:, : sheet.shape[1] // 2].sum() >= 32 * 96  # the real crop, at the synthetic size
    assert not is_red[:, sheet.shape[1] // 2:].any()
    assert (left == 90).all(axis=2).sum() >= 32 * 96 and right.std() > 10
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_comparison_preview_rejects_what_it_cannot_show(tmp_path):
    path = tmp_path / "compare.png"
    with pytest.raises(TransferlabError, match="at least one synthetic and one real"):
        synth.save_comparison_preview([np.zeros((8, 8, 3), np.uint8)], [], path)
    with pytest.raises(TransferlabError, match="real image 1 is float64"):
        synth.save_comparison_preview([np.zeros((8, 8, 3), np.uint8)], [np.zeros((8, 8), np.uint8), np.zeros((8, 8))],
                                      path)
    assert not path.exists()


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
