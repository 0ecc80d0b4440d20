"""Read a PyTorch legacy (pre-zip) weights file into numpy arrays, without torch and without trust.

A legacy file (``torch.save(..., _use_new_zipfile_serialization=False)``, and every ``.pth`` from
before PyTorch 1.6) is a sequence of pickles followed by raw storage bytes:

1. the magic number ``0x1950a86a20f9469cfc6c``;
2. the protocol version ``1001``;
3. a ``sys_info`` dict (``little_endian``, ``type_sizes``, ...);
4. the state dict: a ``collections.OrderedDict`` of tensors, each pickled as a call of
   ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
   backward_hooks)`` whose storage is a persistent id
   ``('storage', torch.FloatStorage, key, location, numel[, view_metadata])``;
5. the list of storage keys; then, for each key in that order, the element count as a
   little-endian int64 followed by ``count * itemsize`` bytes of little-endian data.

The file is untrusted input: a pickle can call any importable function. Every pickle here is read
by an unpickler that resolves only ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2``
and the ``torch.*Storage`` type names, each mapped onto a stand-in of this module; any other
global is refused with :class:`UnsafeWeightsError` before it is imported. The header pickles
resolve no global at all. Each pickle's opcodes are scanned before it is unpickled, so a memo index
far beyond the pickle's length cannot make the unpickler allocate gigabytes; and the tensors may
not expand (through zero strides) to more than :data:`_MAX_EXPANSION` times the file's size.
"""

from __future__ import annotations

import collections
import hashlib
import io
import logging
import math
import os
import pickle
import pickletools
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["UnsafeWeightsError", "read_torch_legacy"]

log = logging.getLogger(__name__)

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_MAX_NDIM = 32
_MAX_EXPANSION = 16
_ZIP_SIGNATURE = b"PK\x03\x04"
# Errors a damaged pickle or a wrong-typed value can raise while unpickling or building arrays.
_READ_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                KeyError, OverflowError, MemoryError, RecursionError)


class UnsafeWeightsError(ValueError):
    """A weights file asked to load a Python global that is not a tensor or an ``OrderedDict``."""


class _Damaged(Exception):
    """Raised inside the reader for a damaged file; turned into a ``ValueError`` naming the file."""


class _Sealed:
    """Base of the stand-ins: a pickle's BUILD opcode cannot change one after it was checked."""

    def __setstate__(self, state):
        raise _Damaged(f"a pickle tries to change a {type(self).__name__.strip('_')} after it was made")


@dataclass(frozen=True)
class _StorageType(_Sealed):
    """Stand-in for a ``torch.*Storage`` class: its name and the dtype of its bytes in the file.

    Not callable, so a pickle that tries to call a storage type fails instead of running code.
    """

    name: str
    dtype: np.dtype


# torch storage type -> little-endian dtype of its bytes. Bool and BFloat16 are converted on output.
_STORAGE_TYPES = {
    name: _StorageType(name, np.dtype(code))
    for name, code in (("FloatStorage", "<f4"), ("DoubleStorage", "<f8"), ("HalfStorage", "<f2"),
                       ("BFloat16Storage", "<u2"), ("LongStorage", "<i8"), ("IntStorage", "<i4"),
                       ("ShortStorage", "<i2"), ("CharStorage", "i1"), ("ByteStorage", "u1"),
                       ("BoolStorage", "u1"))
}


@dataclass(frozen=True)
class _StorageRef(_Sealed):
    """A storage named by a persistent id: ``numel`` elements of ``kind``, possibly a view into it."""

    kind: _StorageType
    key: str
    numel: int
    view_offset: int
    view_numel: int


@dataclass(frozen=True)
class _TensorRef(_Sealed):
    """A tensor as the pickle describes it; its bytes come after the pickle."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _is_int(value) -> bool:
    return type(value) is int


def _int_tuple(value, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(_is_int(v) and v >= 0 for v in value):
        raise _Damaged(f"a tensor's {what} is {value!r}, not a tuple of non-negative ints")
    if len(value) > _MAX_NDIM:
        raise _Damaged(f"a tensor has {len(value)} dimensions (at most {_MAX_NDIM} are read)")
    return value


class _RebuildTensor(_Sealed):
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: checks its arguments, returns a :class:`_TensorRef`.

    An object rather than a function, so a pickle cannot set attributes on it.
    """

    def __call__(self, *args) -> _TensorRef:
        if len(args) not in (6, 7):
            raise _Damaged(f"_rebuild_tensor_v2 called with {len(args)} arguments instead of 6")
        storage, offset, shape, stride, requires_grad, hooks = args[:6]
        if not isinstance(storage, _StorageRef):
            raise _Damaged(f"a tensor's storage is a {type(storage).__name__}, not a storage")
        if not _is_int(offset) or offset < 0:
            raise _Damaged(f"a tensor's storage offset is {offset!r}, not a non-negative int")
        shape, stride = _int_tuple(shape, "size"), _int_tuple(stride, "stride")
        if len(shape) != len(stride):
            raise _Damaged(f"a tensor's size {shape} and stride {stride} differ in length")
        if not isinstance(requires_grad, bool):
            raise _Damaged(f"a tensor's requires_grad is {requires_grad!r}, not a bool")
        if not (hooks is None or (isinstance(hooks, dict) and not hooks)):
            raise _Damaged("a tensor carries backward hooks (a weights file has none)")
        if len(args) == 7 and not (args[6] is None or (isinstance(args[6], dict) and not args[6])):
            raise _Damaged(f"a tensor carries metadata {args[6]!r} (a weights file has none)")
        return _TensorRef(storage, offset, shape, stride)


# The only globals a state dict may name, and what each one becomes.
_ALLOWED_GLOBALS = {("collections", "OrderedDict"): collections.OrderedDict,
                    ("torch._utils", "_rebuild_tensor_v2"): _RebuildTensor()}
_ALLOWED_GLOBALS.update({("torch", name): kind for name, kind in _STORAGE_TYPES.items()})


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler resolving only :data:`_ALLOWED_GLOBALS` (``tensors=True``) or no global at all."""

    def __init__(self, stream: io.BytesIO, path: Path, *, tensors: bool):
        super().__init__(stream, encoding="utf-8")
        self._stream, self._path, self._tensors = stream, path, tensors
        self.storages: dict[str, _StorageRef] = {}

    def load(self):
        """Scan the next pickle's opcodes, then unpickle it."""
        start = self._stream.tell()
        for count, (opcode, argument, _) in enumerate(pickletools.genops(self._stream), start=1):
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and argument > count:
                raise _Damaged(f"a pickle stores its opcode {count} at memo index {argument} (a valid pickle "
                               "numbers them in order)")
        self._stream.seek(start)
        return super().load()

    def find_class(self, module: str, name: str):
        if self._tensors and (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[module, name]
        allowed = "only tensors and OrderedDict are allowed" if self._tensors else "its header holds only numbers and dicts"
        raise UnsafeWeightsError(
            f"weights file {self._path}: refused to load {f'{module}.{name}'!r} ({allowed}); the file is not "
            "a PyTorch weights file or has been tampered with"
        )

    def persistent_load(self, pid) -> _StorageRef:
        if not self._tensors:
            raise _Damaged("the header refers to a storage")
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise _Damaged(f"unexpected persistent id {pid!r:.200} (expected ('storage', type, key, location, numel))")
        kind, key, location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not isinstance(kind, _StorageType):
            raise _Damaged(f"persistent id {pid!r:.200} names {kind!r}, not a torch storage type")
        if not isinstance(key, str) or not isinstance(location, str) or not _is_int(numel) or numel < 0:
            raise _Damaged(f"persistent id {pid!r:.200} is not (str key, str location, int numel)")
        view_offset, view_numel = 0, numel
        if view is not None:
            if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                    and _is_int(view[1]) and _is_int(view[2]) and view[1] >= 0 and view[2] >= 0):
                raise _Damaged(f"persistent id {pid!r:.200} has a view that is not (str key, int offset, int size)")
            view_offset, view_numel = view[1], view[2]
            if view_offset + view_numel > numel:
                raise _Damaged(f"storage {key!r} of {numel} elements has a view [{view_offset}, "
                               f"{view_offset + view_numel}) beyond its end")
        known = self.storages.get(key)
        if known is not None and (known.kind, known.numel) != (kind, numel):
            raise _Damaged(f"storage {key!r} is named as {known.numel} x {known.kind.name} and as "
                           f"{numel} x {kind.name}")
        self.storages.setdefault(key, _StorageRef(kind, key, numel, 0, numel))
        return _StorageRef(kind, key, numel, view_offset, view_numel)


def read_torch_legacy(path: str | os.PathLike, *, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read the state dict of a PyTorch legacy weights file as numpy arrays, in the file's order.

    Parameters
    ----------
    path : str or path
        A file written by ``torch.save`` in the legacy (non-zip) format.
    expected_sha256 : str, optional
        Hex SHA-256 the file must have; checked before anything is unpickled.

    Returns
    -------
    dict of str to ndarray
        ``{name: array}`` in the order of the file. Each array is a C-contiguous copy with the
        tensor's shape (``()`` for a 0-d tensor) and dtype: float32/float64/float16,
        int64/int32/int16/int8, uint8 or bool; bfloat16 tensors are returned as float32.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    UnsafeWeightsError
        (a ``ValueError``) If a pickle names any global other than ``collections.OrderedDict``,
        ``torch._utils._rebuild_tensor_v2`` and ``torch.*Storage``.
    ValueError
        If the SHA-256 differs from ``expected_sha256`` (or that is not 64 hex digits), or the file
        is not a legacy PyTorch file or is damaged: wrong magic number or protocol version, a zip
        file, a short read, a storage whose size disagrees with its tensors, a tensor outside its
        storage, a missing storage, trailing bytes, a memo index beyond the pickle, tensors expanding
        to more than 16 times the file's size. The message names the file and the problem.

    Examples
    --------
    >>> arrays = read_torch_legacy("efficientnet-lite0.pth")  # doctest: +SKIP
    >>> arrays["_conv_stem.weight"].shape  # doctest: +SKIP
    (32, 3, 3, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    started = time.perf_counter()
    data = path.read_bytes()
    if expected_sha256 is not None:
        _check_sha256(path, data, expected_sha256)
    stream, stage = io.BytesIO(data), "the magic number"
    try:
        if data[:4] == _ZIP_SIGNATURE:
            raise _Damaged("is a zip-format PyTorch file (torch.save's default since PyTorch 1.6); only the "
                           "legacy format is read")
        _check_header(stream, path)
        stage = "the state dict"
        unpickler = _RestrictedUnpickler(stream, path, tensors=True)
        tensors = _check_state_dict(unpickler.load())
        stage = "the list of storage keys"
        keys = _check_keys(_RestrictedUnpickler(stream, path, tensors=False).load(), unpickler.storages)
        stage = "the storages"
        storages = _read_storages(data, stream.tell(), keys, unpickler.storages)
        _check_expansion(tensors, len(data))
        arrays = {name: _materialize(ref, storages[ref.storage.key]) for name, ref in tensors.items()}
    except UnsafeWeightsError:
        raise
    except _Damaged as error:
        raise ValueError(f"weights file {path}: {error}") from None
    except _READ_ERRORS as error:
        raise ValueError(f"weights file {path} is damaged or not a PyTorch legacy file: reading {stage} "
                         f"failed ({type(error).__name__}: {error})") from None
    log.info("Read %d tensors from %s (%d bytes) in %.2f s", len(arrays), path, len(data),
             time.perf_counter() - started)
    return arrays


def _check_sha256(path: Path, data: bytes, expected: str) -> None:
    """Refuse ``data`` (the bytes then parsed, so the file cannot change in between) unless it hashes right."""
    if not isinstance(expected, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", expected):
        raise ValueError(f"expected_sha256 must be 64 hex digits; received expected_sha256={expected!r}")
    found = hashlib.sha256(data).hexdigest()
    if found != expected.lower():
        raise ValueError(f"weights file {path} has SHA-256 {found}, expected {expected.lower()}; the file is "
                         "damaged, a different version or has been tampered with")


def _check_header(stream: io.BytesIO, path: Path) -> None:
    """Read and check the magic number, protocol version and sys_info pickles."""
    magic = _RestrictedUnpickler(stream, path, tensors=False).load()
    if not _is_int(magic) or magic != MAGIC_NUMBER:
        shown = hex(magic) if _is_int(magic) else f"a {type(magic).__name__}"
        raise _Damaged(f"not a PyTorch legacy weights file: it starts with {shown:.40}, not the magic number "
                       f"{hex(MAGIC_NUMBER)}")
    protocol = _RestrictedUnpickler(stream, path, tensors=False).load()
    if not _is_int(protocol) or protocol != PROTOCOL_VERSION:
        raise _Damaged(f"unsupported protocol version {protocol!r:.40} (only {PROTOCOL_VERSION} is read)")
    sys_info = _RestrictedUnpickler(stream, path, tensors=False).load()
    if not isinstance(sys_info, dict):
        raise _Damaged(f"its sys_info is a {type(sys_info).__name__}, not a dict")
    if sys_info.get("little_endian") is False:
        raise _Damaged("was written on a big-endian machine; only little-endian files are read")


def _check_state_dict(state) -> dict[str, _TensorRef]:
    if not isinstance(state, dict):
        raise _Damaged(f"holds a {type(state).__name__}, not a state dict (an OrderedDict of tensors)")
    for name, value in state.items():
        if not isinstance(name, str):
            raise _Damaged(f"its state dict has a key {name!r:.80} that is not a string")
        if not isinstance(value, _TensorRef):
            raise _Damaged(f"its state dict maps {name!r} to a {type(value).__name__}, not a tensor (a training "
                           "checkpoint? save model.state_dict() alone)")
    return dict(state)


def _check_keys(keys, storages: dict[str, _StorageRef]) -> list[str]:
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise _Damaged(f"its list of storage keys is a {type(keys).__name__}, not a list of strings")
    if len(set(keys)) != len(keys):
        raise _Damaged("its list of storage keys names a storage twice")
    missing = sorted(set(storages) - set(keys))
    if missing:
        raise _Damaged(f"storage keys {missing[:5]} used by tensors are missing from the list of storages")
    unused = sorted(set(keys) - set(storages))
    if unused:
        raise _Damaged(f"the list of storages names {unused[:5]}, which no tensor uses")
    return keys


def _read_storages(data: bytes, position: int, keys: list[str],
                   storages: dict[str, _StorageRef]) -> dict[str, np.ndarray]:
    """Each storage's elements (views into ``data``) from ``position`` on, in the order of ``keys``.

    A storage is its element count (little-endian int64) then its bytes; the file must end after the last.
    """
    elements = {}
    for key in keys:
        storage = storages[key]
        if position + 8 > len(data):
            raise _Damaged(f"the file ends early (truncated?): the element count of storage {key!r} needs 8 "
                           f"bytes, {len(data) - position} remain")
        count = int.from_bytes(data[position:position + 8], "little", signed=True)
        position += 8
        if count != storage.numel:
            raise _Damaged(f"storage {key!r} holds {count} elements, its tensors say {storage.numel}")
        nbytes = count * storage.kind.dtype.itemsize
        if position + nbytes > len(data):
            raise _Damaged(f"the file ends early (truncated?): storage {key!r} ({count} x {storage.kind.name}) "
                           f"needs {nbytes} bytes, {len(data) - position} remain")
        elements[key] = np.frombuffer(data, dtype=storage.kind.dtype, count=count, offset=position)
        position += nbytes
    if position != len(data):
        raise _Damaged(f"{len(data) - position} unexpected bytes follow the last storage")
    return elements


def _check_expansion(tensors: dict[str, _TensorRef], file_size: int) -> None:
    """Refuse tensors whose copies would exceed :data:`_MAX_EXPANSION` times the file's size."""
    total = sum(math.prod(ref.shape) * ref.storage.kind.dtype.itemsize for ref in tensors.values())
    if total > _MAX_EXPANSION * max(file_size, 1 << 20):
        raise _Damaged(f"its tensors would take {total} bytes, over {_MAX_EXPANSION} times the file's "
                       f"{file_size} bytes (zero strides repeating a storage); refusing to expand them")


def _materialize(ref: _TensorRef, storage: np.ndarray) -> np.ndarray:
    """Copy the tensor ``ref`` out of its storage's elements, checking it lies within them."""
    source = ref.storage
    elements = storage[source.view_offset:source.view_offset + source.view_numel]
    if 0 in ref.shape:
        if ref.offset > elements.size:
            raise _Damaged(f"a tensor starts at element {ref.offset} of storage {source.key!r}, which has "
                           f"{elements.size}")
        view = np.zeros(ref.shape, dtype=elements.dtype)
    else:
        last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))
        if last >= elements.size:
            raise _Damaged(f"a tensor of size {ref.shape}, stride {ref.stride} at offset {ref.offset} reaches "
                           f"element {last} of storage {source.key!r}, which has {elements.size}")
        itemsize = elements.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(elements[ref.offset:], shape=ref.shape,
                                               strides=tuple(s * itemsize for s in ref.stride), writeable=False)
    if source.kind.name == "BoolStorage":
        return np.array(view != 0, order="C")
    if source.kind.name == "BFloat16Storage":
        return (view.astype(np.uint32) << 16).view(np.float32).copy(order="C")
    return np.array(view, dtype=view.dtype.newbyteorder("="), order="C", copy=True)
