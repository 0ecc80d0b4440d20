"""Write PyTorch legacy weights files from numpy arrays, without torch, for the reader's tests.

The pickles are assembled from opcodes: plain values (names, ints, tuples) are cut out of
``pickle.dumps``; the globals ``torch._utils._rebuild_tensor_v2`` and ``torch.FloatStorage`` and the
storages' persistent ids are written as ``torch.save`` writes them (protocol 2, GLOBAL, BINPERSID,
REDUCE). :func:`opcode_global` and :func:`pickled_state` also build hostile files.
"""

from __future__ import annotations

import pickle
import pickletools

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
SYS_INFO = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
STORAGE_TYPES = {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
                 "int64": "LongStorage", "int32": "IntStorage", "int16": "ShortStorage", "int8": "CharStorage",
                 "uint8": "ByteStorage", "bool": "BoolStorage"}


def pickled(value) -> bytes:
    """A whole protocol-2 pickle of a plain value (an int, dict, list of str...)."""
    return pickle.dumps(value, protocol=2)


def opcode_value(value) -> bytes:
    """The opcodes pushing a plain ``value`` onto the unpickler's stack (no PROTO, no STOP)."""
    return pickletools.optimize(pickle.dumps(value, protocol=2))[2:-1]


def opcode_global(module: str, name: str) -> bytes:
    """The GLOBAL opcode pushing ``module.name``, whatever it is."""
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def opcode_call(function: bytes, *args: bytes) -> bytes:
    """Opcodes calling ``function`` (opcodes pushing a callable) with ``args`` (opcodes pushing values)."""
    return function + pickle.MARK + b"".join(args) + pickle.TUPLE + pickle.REDUCE


def opcode_tensor(type_name: str, key: str, numel: int, offset: int, shape, stride, view=None) -> bytes:
    """``_rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())`` as torch pickles it."""
    persistent_id = (pickle.MARK + opcode_value("storage") + opcode_global("torch", type_name)
                     + b"".join(opcode_value(v) for v in (key, "cpu", numel, view)) + pickle.TUPLE + pickle.BINPERSID)
    hooks = opcode_global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
    return opcode_call(opcode_global("torch._utils", "_rebuild_tensor_v2"), persistent_id,
                       opcode_value(offset), opcode_value(tuple(shape)), opcode_value(tuple(stride)),
                       pickle.NEWFALSE, hooks)


def pickled_state(items: list[tuple[str, bytes]]) -> bytes:
    """A whole pickle of ``OrderedDict(items)``, each value given as the opcodes pushing it."""
    body = b"".join(opcode_value(name) + value for name, value in items)
    return (pickle.PROTO + b"\x02" + opcode_global("collections", "OrderedDict") + pickle.EMPTY_TUPLE
            + pickle.REDUCE + pickle.MARK + body + pickle.SETITEMS + pickle.STOP)


def storage_bytes(elements: np.ndarray, *, count: int | None = None) -> bytes:
    """A storage's record: its element count (int64, little-endian) then its little-endian bytes."""
    elements = np.asarray(elements).ravel()
    count = elements.size if count is None else count
    return count.to_bytes(8, "little", signed=True) + elements.astype(elements.dtype.newbyteorder("<")).tobytes()


def contiguous_stride(shape) -> tuple[int, ...]:
    """The element strides of a C-contiguous tensor of ``shape``."""
    return tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))


def header(*, magic=MAGIC_NUMBER, protocol=PROTOCOL_VERSION, sys_info=None) -> bytes:
    """The three header pickles: magic number, protocol version, sys_info."""
    return pickled(magic) + pickled(protocol) + pickled(SYS_INFO if sys_info is None else sys_info)


def legacy_bytes(storages: dict[str, np.ndarray], tensors: dict[str, tuple], *,
                 types: dict[str, str] | None = None) -> bytes:
    """A legacy file of tensors viewing shared storages.

    ``storages`` maps a key to its 1-D elements; ``tensors`` maps a name to ``(key, offset, shape,
    stride)``; ``types`` overrides a storage's torch type name (e.g. ``"BFloat16Storage"``).
    """
    types = {key: (types or {}).get(key) or STORAGE_TYPES[str(a.dtype)] for key, a in storages.items()}
    items = [(name, opcode_tensor(types[key], key, storages[key].size, offset, shape, stride))
             for name, (key, offset, shape, stride) in tensors.items()]
    return (header() + pickled_state(items) + pickled(list(storages))
            + b"".join(storage_bytes(a) for a in storages.values()))


def arrays_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A legacy file holding each array as a contiguous tensor in a storage of its own."""
    storages = {str(i): np.asarray(a).ravel() for i, a in enumerate(arrays.values())}
    tensors = {name: (str(i), 0, np.shape(a), contiguous_stride(np.shape(a))) for i, (name, a) in enumerate(arrays.items())}
    return legacy_bytes(storages, tensors)
