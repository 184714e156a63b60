import pytest

from helpers import write_params
from transferlab.config import Params, load_params, parse_params
from transferlab.errors import TransferlabError


def error_of(raw: dict) -> str:
    with pytest.raises(TransferlabError) as info:
        parse_params(raw)
    return str(info.value)


def test_defaults_are_valid_and_match_the_original_question():
    params = Params()
    assert params.plates.slots == 7 and len(params.plates.alphabet) == 35 and "O" not in params.plates.alphabet


def test_the_shipped_params_file_is_valid():
    params = load_params("params.yaml")
    assert params.task == "plates"


def test_the_shipped_augment_section_is_the_schema_default():
    """The in-domain recipe takes a key that differs from its schema default for one set by hand
    (augment.copies among them), so params.yaml's augment section must be the defaults, mode too."""
    assert load_params("params.yaml").augment == Params().augment
    assert Params().augment.mode == "offline"


def test_unknown_key_suggests_the_right_one():
    assert "augment.strenght: unknown key (did you mean strength?)" in error_of({"augment": {"strenght": 0.5}})


def test_unknown_section_is_rejected():
    assert "tsak: unknown key (did you mean task?)" in error_of({"tsak": "plates"})


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"augment": {"strength": 1.5}}, "augment.strength"),
        ({"augment": {"copies": -1}}, "augment.copies"),
        ({"split": {"val_fraction": 0.6, "test_fraction": 0.5}}, "val_fraction + test_fraction must be < 1"),
        ({"task": "plate"}, "task"),
        ({"plates": {"alphabet": "AAB"}}, "repeated characters 'A'"),
        ({"plates": {"pad_char": "A"}}, "pad_char"),
        ({"generate": {"formats": ["@@@ ###"]}}, "generate.formats[0]"),
        ({"generate": {"formats": ["@@@ #O##"]}}, "not in plates.alphabet"),
    ],
)
def test_out_of_range_and_inconsistent_values_name_the_key(raw, expected):
    assert expected in error_of(raw)


def test_several_problems_are_reported_together():
    message = error_of({"augment": {"strength": 2, "copiez": 1}})
    assert "augment.strength" in message and "augment.copiez" in message


def test_load_params_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(TransferlabError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("augment: [unclosed")
    with pytest.raises(TransferlabError, match="not valid YAML"):
        load_params(bad)


def test_params_round_trip_through_yaml(tmp_path):
    params = parse_params({"augment": {"strength": 0.7}})
    assert load_params(write_params(tmp_path / "p.yaml", params)) == params


def test_lists_written_in_two_places_agree():
    """Names the schema, the CLI and the registries each spell out: one cannot drift from the other."""
    from typing import get_args

    from transferlab import cli
    from transferlab.config.base import BackboneName, Strategy
    from transferlab.config.experiments import StudyArm
    from transferlab.inference.export import FORMATS
    from transferlab.training.backbones.registry import BACKBONES

    assert set(get_args(BackboneName)) == set(BACKBONES)
    assert set(get_args(StudyArm)) == set(get_args(Strategy)) | {"probe"}
    export_format = next(p for p in cli.main.commands["export"].params if p.name == "fmt")
    assert list(export_format.type.choices) == list(FORMATS)
