"""Atomic file output: a reader never sees a half-written file, an interrupted run leaves none.

Every file boxstrap writes that another step reads back (manifests, configs, metrics,
annotation files, images) goes through these helpers: the data is written to a temporary
file in the destination folder, flushed to disk, then renamed over the destination in one
``os.replace``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_open", "write_bytes", "write_json", "write_text"]


@contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing; it appears whole at the end of the ``with`` block or not at all.

    Raises
    ------
    PermissionError
        If the destination folder cannot be written; the message names it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except PermissionError as error:
        raise PermissionError(
            f"Cannot write into {path.parent}: permission denied. Choose an output folder you can write to."
        ) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give outputs the usual mode
        os.replace(tmp, path)
    except BaseException:
        # KeyboardInterrupt included: the destination keeps its old content (or stays absent).
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_open(path) as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented UTF-8 JSON to ``path`` atomically and return the path."""
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
