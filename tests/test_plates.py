import numpy as np
import pytest

from transferlab.config import PlatesConfig
from transferlab.data.plates import LabelError, PlateCodec


def test_fixed_length_codec_round_trips_with_35_classes():
    codec = PlateCodec.from_config(PlatesConfig())
    indices = codec.encode("AB12345")
    assert indices.shape == (7,) and codec.num_classes == 35
    assert codec.decode(indices) == "AB12345"


def test_variable_length_pads_with_an_extra_class():
    codec = PlateCodec.from_config(PlatesConfig(variable_length=True))
    assert codec.num_classes == 36
    encoded = codec.encode("AB12")
    assert list(encoded[4:]) == [35, 35, 35]
    assert codec.decode(encoded) == "AB12"


@pytest.mark.parametrize("text, message", [("AB1234O", "not in the alphabet"), ("AB123456", "at most 7"),
                                           ("AB12", "must have 7"), ("", "empty")])
def test_bad_labels_say_what_is_wrong(text, message):
    with pytest.raises(LabelError, match=message):
        PlateCodec.from_config(PlatesConfig()).encode(text)


def test_encode_many_stacks():
    codec = PlateCodec.from_config(PlatesConfig())
    assert codec.encode_many(["AAAAAAA", "1111111"]).shape == (2, 7)
    assert np.array_equal(codec.encode_many([]), np.zeros((0, 7), np.int64))
