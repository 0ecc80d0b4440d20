"""File facts: a file's SHA-256 and the bytes a file or folder takes on disk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["disk_size", "file_sha256"]


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def disk_size(path: str | os.PathLike) -> int:
    """Bytes on disk of a file, or of all files under a folder (an ``.mlpackage``)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
