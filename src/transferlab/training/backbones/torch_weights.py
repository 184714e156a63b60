"""Read PyTorch state-dict files (the older non-zip format) into numpy, safely.

A ``.pth`` file of this kind is five pickles in a row (magic number, protocol
version, system info, the state dict, the list of storage keys) followed by
the raw bytes of each storage. A pickle can call any importable function while
it loads, so the state dict is read by an unpickler that resolves only an
allow-list of names (an OrderedDict, torch's tensor-rebuild function and the
storage types), each mapped to a harmless numpy stand-in. Anything else, such
as ``os.system``, stops the load with :class:`UnsafeWeightsError`.
torch itself is not needed.
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transferlab.errors import TransferlabError

#: First pickle of every legacy torch file, and the format version it supports.
_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
#: Each storage's bytes are preceded by its element count as a little-endian int64.
_NUMEL_BYTES = 8
_ZIP_SIGNATURE = b"PK\x03\x04"


class UnsafeWeightsError(TransferlabError):
    """A weight file is malformed or asks to run code outside the allow-list."""


# slots + frozen: a hostile pickle's BUILD opcode cannot alter these shared stand-ins.
@dataclass(frozen=True, slots=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and friends: just the numpy dtype."""

    dtype: np.dtype


#: The storage types a state dict may reference (little-endian numpy dtypes).
_STORAGE_TYPES = {
    name: _StorageType(np.dtype(dtype))
    for name, dtype in {
        "FloatStorage": "<f4",
        "DoubleStorage": "<f8",
        "HalfStorage": "<f2",
        "LongStorage": "<i8",
        "IntStorage": "<i4",
        "ShortStorage": "<i2",
        "CharStorage": "i1",
        "ByteStorage": "u1",
        "BoolStorage": "?",
    }.items()
}


@dataclass
class _Storage:
    """A storage referenced by the pickle; its data is read after the pickle ends."""

    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    """A tensor waiting for its storage's bytes (they follow the pickle)."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """Stand-in for ``torch._utils._rebuild_tensor_v2`` (records, does not build)."""
    if not isinstance(storage, _Storage):
        raise UnsafeWeightsError("a tensor in the weight file does not refer to a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


#: (module, name) -> object: the only globals a state-dict pickle may load.
_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): storage_type for name, storage_type in _STORAGE_TYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`_ALLOWED_GLOBALS` and torch storage ids."""

    def __init__(self, file, source: str):
        super().__init__(file)
        self._source = source
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeWeightsError(
                f"refusing to load {self._source}: it references {module}.{name}, which a "
                "PyTorch weight file has no need for (only tensors, storages and OrderedDict "
                "are allowed). The file may be malicious or is not a plain state dict."
            ) from None

    def persistent_load(self, pid):
        # torch writes ('storage', storage_type, key, location, numel[, view]).
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise UnsafeWeightsError(f"unsupported object reference in {self._source}: {pid!r:.80}")
        _, storage_type, key, _location, numel, view = pid
        if storage_type not in _STORAGE_TYPES.values() or not isinstance(key, str):
            raise UnsafeWeightsError(f"malformed storage reference in {self._source}")
        if view is not None:
            raise UnsafeWeightsError(f"storage views (pre-1.0 torch files) are not supported: {self._source}")
        if not isinstance(numel, int) or numel < 0:
            raise UnsafeWeightsError(f"malformed storage size in {self._source}")
        storage = self.storages.setdefault(key, _Storage(storage_type.dtype, numel))
        if storage.dtype != storage_type.dtype or storage.numel != numel:
            raise UnsafeWeightsError(f"storage {key} is declared twice differently in {self._source}")
        return storage


def _read_storage(stream: io.BytesIO, storage: _Storage, key: str, source: str) -> None:
    """Read one storage's element count and bytes from the end of the file."""
    numel = int.from_bytes(stream.read(_NUMEL_BYTES), "little", signed=False)
    if numel != storage.numel:
        raise UnsafeWeightsError(f"storage {key} in {source} has {numel} elements, expected {storage.numel}")
    nbytes = numel * storage.dtype.itemsize
    raw = stream.read(nbytes)
    if len(raw) != nbytes:
        raise UnsafeWeightsError(f"{source} is truncated (storage {key})")
    storage.data = np.frombuffer(raw, dtype=storage.dtype)


def _materialize(ref: _TensorRef, name: str, source: str) -> np.ndarray:
    """Copy a tensor out of its storage, refusing strides that reach outside it."""
    if any(s < 0 for s in ref.shape + ref.strides) or ref.offset < 0:
        raise UnsafeWeightsError(f"tensor {name} in {source} has a negative size, stride or offset")
    if 0 in ref.shape:
        return np.zeros(ref.shape, dtype=ref.storage.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.strides))
    if last >= ref.storage.numel:
        raise UnsafeWeightsError(f"tensor {name} in {source} reaches outside its storage")
    itemsize = ref.storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        ref.storage.data[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * itemsize for s in ref.strides),
        writeable=False,
    )
    return np.array(view)  # a compact copy, detached from the file's buffer


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a legacy (non-zip) PyTorch state-dict file as ``{name: numpy array}``.

    Raises:
        UnsafeWeightsError: the file references anything outside the allow-list,
            is in another format, or is inconsistent.
    """
    source = str(path)
    data = Path(path).read_bytes()
    if data.startswith(_ZIP_SIGNATURE):
        raise UnsafeWeightsError(
            f"{source} is in the newer zip format of torch.save; only the older pickle stream format is supported"
        )
    stream = io.BytesIO(data)

    def next_pickle(unpickler_stream=stream):
        return _RestrictedUnpickler(unpickler_stream, source).load()

    try:
        if next_pickle() != _MAGIC_NUMBER or next_pickle() != _PROTOCOL_VERSION:
            raise UnsafeWeightsError(f"{source} is not a PyTorch weight file of the older pickle format")
        sys_info = next_pickle()
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise UnsafeWeightsError(f"{source} was written on a big-endian machine; not supported")
        unpickler = _RestrictedUnpickler(stream, source)
        state = unpickler.load()
        keys = next_pickle()
    except UnsafeWeightsError:
        raise
    except Exception as exc:  # a truncated or garbled pickle raises many types
        raise UnsafeWeightsError(f"{source} is not a readable PyTorch weight file: {exc}") from exc

    if not isinstance(state, dict) or not isinstance(keys, list) or set(keys) != set(unpickler.storages):
        raise UnsafeWeightsError(f"{source} does not hold a plain state dict")
    for key in keys:
        _read_storage(stream, unpickler.storages[key], key, source)

    result = {}
    for name, value in state.items():
        if not isinstance(name, str) or not isinstance(value, _TensorRef):
            raise UnsafeWeightsError(f"{source} holds a non-tensor entry {name!r:.80}; expected a plain state dict")
        result[name] = _materialize(value, name, source)
    return result
