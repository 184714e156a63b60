"""Plate label inference: formats, weights and characters like the labels; plates.* and generate.formats auto."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from helpers import tiny_params, write_params, write_plate_csv
from transferlab import split
from transferlab.data import prepared
from transferlab.generate import render as synth
from transferlab.config import DEFAULT_ALPHABET, load_params
from transferlab.errors import TransferlabError
from transferlab.generate.formats import (
    LabelModel,
    infer_label_model,
    label_skeleton,
    plates_record,
    resolve_plates,
    sample_labels,
    sample_uniform_plate,
)
from transferlab.io import read_json

SAMPLES = 2000
TOLERANCE = 0.03  # 2,000 draws: a share's standard error is at most 0.011


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def development_like_labels(n: int = 1000, seed: int = 0) -> list[str]:
    """Three layouts: 70 % 'A' + 5 mixed/digit characters (6 long, 'A' in ~90 % of them),
    20 % '@@-####' always ending in 7, 10 % '#@@ ##' (5 long); no I, O or Q anywhere."""
    rng = np.random.default_rng(seed)
    letters, digits = "ABCDEFGHJKLMNPRSTUVWXYZ", "0123456789"

    def pick(pool: str, k: int = 1) -> str:
        return "".join(rng.choice(list(pool), k))

    labels = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.7:
            first = "A" if rng.random() < 0.9 else pick("BCDEF")
            labels.append(first + pick(letters) + pick(digits, 4))
        elif kind < 0.9:
            labels.append(pick(letters, 2) + "-" + pick(digits, 3) + "7")
        else:
            labels.append(pick(digits) + pick(letters, 2) + " " + pick(digits, 2))
    return labels


def shares(items) -> dict:
    counts = Counter(items)
    return {k: v / sum(counts.values()) for k, v in counts.items()}


# --- inference ------------------------------------------------------------------------


def test_patterns_weights_lengths_and_alphabet_are_inferred():
    labels = development_like_labels()
    model = infer_label_model(labels)
    assert model.labels == 1000 and model.slots == 6 and model.variable_length
    assert model.lengths == {k: v for k, v in sorted(Counter(len(label_skeleton(t)[0]) for t in labels).items())}
    assert model.alphabet == "".join(sorted(set("".join(labels)) - set(" -")))  # digits, then letters
    assert not set("IOQ -") & set(model.alphabet)
    # '7' ends 100 % of the 20 % pattern: a literal; 'A' starts 90 % of the first: stays '@'
    assert model.formats == ["@@####", "@@-###7", "#@@ ##"]
    expected = shares(label_skeleton(t)[1] for t in labels)
    assert model.weights == pytest.approx([expected["@@####"], expected["@@-####"], expected["#@@ ##"]])
    first = model.position_counts()[0]
    assert first["A"] == sum(t[0] == "A" for t in labels) and sum(first.values()) == 1000


def test_literal_needs_a_regular_position_in_enough_labels():
    assert infer_label_model(["AB123"] * 19).formats == ["@@###"]  # 19 alike: too few to call it a rule
    assert infer_label_model(["AB123"] * 20).formats == ["AB123"]
    assert infer_label_model(["AB123"] * 19 + ["AB124"]).formats == ["AB123"]  # 95 % at the last position
    assert infer_label_model(["AB123"] * 18 + ["AB124", "AB125"]).formats == ["AB12#"]  # 90 %: it varies


def test_separators_are_part_of_the_format_not_of_the_label():
    model = infer_label_model(["AB-12 C", " XY-34 Z ", "QR-56 P"])
    assert model.formats == ["@@-## @"] and model.alphabet == "123456ABCPQRXYZ" and model.lengths == {5: 3}
    assert all(label[2] == "-" and label[5] == " " for label in sample_labels(model, 50, 0))
    assert all(len(label) == 5 for label in sample_labels(model, 50, 0, separators=False))


def test_the_model_is_json_and_round_trips():
    model = infer_label_model(development_like_labels(200))
    data = json.loads(json.dumps(model.to_dict()))
    assert data["slots"] == 6 and data["patterns"][0]["format"] == model.formats[0]
    assert LabelModel.from_dict(data) == model
    assert sample_labels(LabelModel.from_dict(data), 20, 3) == sample_labels(model, 20, 3)


def test_no_labels_is_an_error():
    with pytest.raises(TransferlabError, match="every label is empty"):
        infer_label_model(["", "  ", "-"])


# --- sampling -------------------------------------------------------------------------


def test_samples_have_the_patterns_lengths_and_characters_of_the_labels():
    labels = development_like_labels()
    model = infer_label_model(labels)
    samples = sample_labels(model, SAMPLES, seed=0)
    for name, real, synthetic in [
        ("pattern", shares(label_skeleton(t)[1] for t in labels), shares(label_skeleton(t)[1] for t in samples)),
        ("length", shares(len(label_skeleton(t)[0]) for t in labels), shares(len(label_skeleton(t)[0]) for t in samples)),
        ("first character", shares(t[0] for t in labels), shares(t[0] for t in samples)),
    ]:
        assert set(synthetic) <= set(real), name
        for key, share in real.items():
            assert synthetic.get(key, 0.0) == pytest.approx(share, abs=TOLERANCE), (name, key)
    assert all(t.endswith("7") for t in samples if "-" in t)
    assert sample_labels(model, 50, seed=0) == samples[:50]
    assert sample_labels(model, 50, seed=1) != samples[:50]


def test_symbols_never_seen_are_never_sampled_even_for_rare_patterns():
    labels = development_like_labels(300) + ["ZZZ999", "ZZY998"]  # a pattern seen twice borrows from the others
    model = infer_label_model(labels)
    seen = set("".join(labels))
    samples = sample_labels(model, SAMPLES, seed=0)
    assert set("".join(samples)) <= seen
    rare = [t for t in samples if label_skeleton(t)[1] == "@@@###"]
    assert rare and len(set(rare)) > 2  # not only the two labels replayed


def test_uniform_plates_keep_layouts_and_literals_but_flatten_skewed_characters():
    labels = development_like_labels()  # 'A' first in ~63 % of the labels; '@@-####' always ends in 7
    model = infer_label_model(labels)
    rng = np.random.default_rng(0)
    samples = [sample_uniform_plate(model, rng)[1] for _ in range(SAMPLES)]
    real_layouts = shares(label_skeleton(t)[1] for t in labels)
    for layout, share in shares(label_skeleton(t)[1] for t in samples).items():
        assert share == pytest.approx(real_layouts[layout], abs=TOLERANCE), layout
    assert all(t.endswith("7") for t in samples if "-" in t)  # a literal stays a rule
    six = [t for t in samples if len(t) == 6 and t.isalnum()]  # the 'A' layout (the 5-character one has a space)
    letters = [c for c in model.alphabet if c.isalpha()]  # a letter there: any letter of the labels, equally often
    assert shares(t[0] for t in six)["A"] == pytest.approx(1 / len(letters), abs=TOLERANCE)
    assert set("".join(samples)) <= set(model.alphabet) | {" ", "-"}
    # only the kinds the labels show at a position: 6-character labels never start with a digit
    assert {t[:2].isalpha() for t in six} == {True} and {t[2:].isdigit() for t in six} == {True}
    assert {t[0] for t in six} == set(letters)  # not only the six letters the labels start with


def test_generate_uniform_share_draws_that_share_uniformly(tmp_path):
    labels = development_like_labels(100)
    params = tiny_params(tmp_path, plates={"slots": 6, "variable_length": True},
                         generate={"count": 8, "uniform_share": 0.0})
    model = infer_label_model(labels)
    like = synth.generate_dataset(params.generate, params.plates, progress=False, labels=model)
    assert list(like.plate_text) == [synth.render_sample(params.generate, params.plates.alphabet, i, model)[0]
                                     for i in range(8)]
    flat = params.generate.model_copy(update={"uniform_share": 1.0})
    rng = synth.image_rng(flat.seed, 0)
    rng.random()  # the share's draw
    assert synth.render_sample(flat, params.plates.alphabet, 0, model)[0] == sample_uniform_plate(model, rng)[0]


def test_an_alphabet_symbol_absent_from_the_labels_is_never_rendered(tmp_path):
    labels = development_like_labels(100)
    model = infer_label_model(labels)
    params = tiny_params(tmp_path, plates={"slots": 6, "variable_length": True}, generate={"count": 16})
    frame = synth.generate_dataset(params.generate, params.plates, progress=False, labels=model)
    rendered = set("".join(frame.plate_text))
    assert rendered <= set(model.alphabet) and not rendered & set("IOQ")  # though plates.alphabet has I and Q
    assert read_json(tmp_path / "data/synthetic" / synth.LABEL_MODEL_FILE) == model.to_dict()


def test_weighted_explicit_formats_are_drawn_by_weight(tmp_path):
    params = tiny_params(tmp_path, generate={"formats": ["@@@ ####", "## ##"], "format_weights": [3, 1]},
                         plates={"variable_length": True})
    rng = np.random.default_rng(0)
    lengths = shares(len(synth.sample_plate_text(params.generate, DEFAULT_ALPHABET, rng)[0]) for _ in range(SAMPLES))
    assert lengths[7] == pytest.approx(0.75, abs=TOLERANCE) and lengths[4] == pytest.approx(0.25, abs=TOLERANCE)


# --- params.yaml: auto ----------------------------------------------------------------


def six_character_csv(tmp_path, labels=None):
    labels = labels or [f"{c}{d}K{n:03d}" for c, d, n in zip("ABCDEFGHJK" * 3, "7" * 30, range(30))]
    return write_plate_csv(tmp_path / "plates", labels)


def params_file(tmp_path, **sections):
    return write_params(tmp_path / "params.yaml", tiny_params(tmp_path, data={"source": str(tmp_path / "plates")},
                                                              **sections))


def test_a_six_character_csv_with_six_slots_needs_no_generate_formats(tmp_path):
    six_character_csv(tmp_path)
    for generate in ({}, {"formats": ["@@@ ####"]}):  # the shipped params.yaml lists a 7-character format
        params = tiny_params(tmp_path, data={"source": str(tmp_path / "plates")}, plates={"slots": 6},
                             generate=generate)
        assert split.run(params)["total"] == 30
    assert synth.run(params)["images"] == 0  # nothing reads synthetic plates: generate renders none
    pretraining = params.model_copy(update={"pretrain": params.pretrain.model_copy(update={"enabled": True})})
    with pytest.raises(TransferlabError, match=r"generate.formats\[0\].*7 characters"):  # only generating needs it
        synth.run(pretraining)


def test_auto_alphabet_and_slots_are_resolved_for_every_stage_and_recorded(tmp_path):
    labels = [text for n in range(5) for text in (f"AB-12{n}4", f"XY 98{n + 5}", f"ZZ55{n}", f"A1B2C{n}D")]
    six_character_csv(tmp_path, labels)
    path = params_file(tmp_path, plates={"alphabet": "auto", "slots": "auto"})
    params = load_params(path)
    expected = {"alphabet": "0123456789ABCDXYZ", "slots": 7, "variable_length": True}
    assert plates_record(params) == expected and params.plates.alphabet == expected["alphabet"]
    assert resolve_plates(params) is params  # nothing left to resolve
    split.run(load_params(path))
    assert read_json("metrics/data.json")["plates"] == expected
    assert prepared.read_meta(tmp_path / "data/prepared")["plates"] == expected
    assert set(prepared.load_split(tmp_path / "data/prepared", "train").frame.label) <= {t.replace("-", "").replace(" ", "")
                                                                                      for t in labels}


def test_auto_slots_with_equal_lengths_keeps_fixed_length(tmp_path):
    six_character_csv(tmp_path)
    params = load_params(params_file(tmp_path, plates={"slots": "auto"}))
    assert (params.plates.slots, params.plates.variable_length) == (6, False)
    assert params.plates.alphabet == DEFAULT_ALPHABET


def test_generate_formats_auto_imitates_the_source_labels(tmp_path):
    six_character_csv(tmp_path)
    params = load_params(params_file(tmp_path, plates={"slots": 6}, generate={"formats": "auto", "count": 12},
                                     pretrain={"enabled": True}))  # pretraining reads the synthetic plates
    synth.run(params)
    frame = pd.read_csv(tmp_path / "data/synthetic/labels.csv", dtype=str)
    assert all(t[:2].isalnum() and t[1] == "7" and t[2] == "K" and t[3:].isdigit() for t in frame.plate_text)
    recorded = read_json(tmp_path / "data/synthetic" / synth.LABEL_MODEL_FILE)
    assert recorded["slots"] == 6 and recorded["patterns"][0]["format"] == "@7K0##"  # 30 labels: fixed 7, K, 0


def test_generate_formats_auto_on_the_built_in_demo_draws_the_default_format(tmp_path):
    params = tiny_params(tmp_path, generate={"formats": "auto", "count": 8})
    frame = synth.generate_dataset(params.generate, params.plates, progress=False)
    assert all(len(t) == 7 and t[:3].isalpha() and t[3:].isdigit() for t in frame.plate_text)


@pytest.mark.parametrize("sections, fragment", [
    ({"task": "classification", "plates": {"alphabet": "auto"}},
     "plates.alphabet: auto reads plate labels, but task is classification"),
    ({"plates": {"slots": "auto"}, "data": {"source": "SYNTHETIC"}},
     "plates.slots: auto reads the labels of data.source, but data.source is the output of generate"),
    ({"plates": {"slots": 0}}, "plates.slots: Input should be greater than or equal to 1"),
    ({"plates": {"slots": "many"}}, "plates.slots: Input should be a valid integer"),
    ({"generate": {"formats": "@@@ ####"}}, "generate.formats: Input should be a valid list"),
    ({"generate": {"formats": ["@@@ ####"], "format_weights": [1, 2]}},
     "generate.format_weights: 2 weight(s) for 1 format(s)"),
    ({"generate": {"format_weights": [1]}}, "generate.format_weights: formats: auto takes its weights from the labels"),
    ({"generate": {"formats": ["@@@ ####"], "uniform_share": 0.5}}, "generate.uniform_share: only with formats: auto"),
])
def test_bad_auto_and_format_settings_name_the_key(tmp_path, sections, fragment):
    if sections.get("data", {}).get("source") == "SYNTHETIC":  # the generator's output, under tmp_path
        sections["data"]["source"] = str(tmp_path / "data/synthetic")
    with pytest.raises(TransferlabError) as info:
        tiny_params(tmp_path, **sections)
    assert fragment in str(info.value) and str(info.value).count("\n") == 1  # one problem, one line


@pytest.mark.parametrize("content, fragment", [
    (None, "is not a file"),
    ("image_path,text\na.png,AB123\n", "plates.alphabet: auto reads the plate_text column of data.source, but"),
    ("image_path,plate_text\na.png,AB_12\n",
     "plates.alphabet: auto: the labels of data.source use the pad character '_'"),
    ("image_path,plate_text\na.png, \n", "every label is empty"),
])
def test_auto_with_an_unusable_source_names_the_key(tmp_path, content, fragment):
    if content is not None:
        (tmp_path / "plates").mkdir()
        (tmp_path / "plates/labels.csv").write_text(content)
    with pytest.raises(TransferlabError, match="plates.alphabet") as info:
        load_params(params_file(tmp_path, plates={"alphabet": "auto"}))
    assert fragment in str(info.value)
