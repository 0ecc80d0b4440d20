"""Paths kept where they belong: ``confined`` keeps a path named by a file (a manifest, an
annotation) inside the folder it belongs to; ``check_out_folder`` refuses an output folder that
cannot be written before any work is done, ``check_out_dir`` also one holding an earlier result,
and ``check_outside_photos`` one inside the photo folder it would be read from.

Image names come from files a user or a tool wrote (``manifest.json`` records, annotation
files). Joined to an output or input folder as they are, ``../../x.jpg`` or ``/etc/x`` would read
or write outside the folders the user named. Every such join goes through :func:`confined`.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["check_out_dir", "check_out_folder", "check_outside_photos", "confined"]


def confined(root: str | os.PathLike, relative: str | os.PathLike, *, source: str = "") -> Path:
    """``root`` joined with the relative path ``relative``, refusing one that leaves ``root``.

    Parameters
    ----------
    root : path
        The folder the path must stay in.
    relative : str or path
        A relative path, ``/`` or ``\\`` separated.
    source : str
        Where ``relative`` was read (a file name), for the error message.

    Raises
    ------
    ValueError
        If ``relative`` is empty, absolute (or has a drive), or has a ``..`` part: naming it,
        ``root`` and ``source``.

    Examples
    --------
    >>> confined("/out", "one/IMG_1.jpg").as_posix()
    '/out/one/IMG_1.jpg'
    >>> confined("/out", "../x.jpg")
    Traceback (most recent call last):
    ...
    ValueError: path '../x.jpg' leaves /out: ...
    """
    text = os.fspath(relative)
    rel = PurePosixPath(text.replace("\\", "/"))
    if not text or rel.is_absolute() or PureWindowsPath(text).drive or ".." in rel.parts or rel == PurePosixPath("."):
        where = f" (in {source})" if source else ""
        raise ValueError(f"path {text!r} leaves {root}{where}: image and file names must be relative paths "
                         "inside their folder (no absolute paths, no '..').")
    return Path(root).joinpath(*rel.parts)


def check_out_folder(path: str | os.PathLike, *, what: str = "out", holds: str = "a folder") -> Path:
    """Refuse an output folder before any work: a file where the folder should be, or a place
    this process cannot write (``holds`` says what the folder is for, in the message). Returns
    ``path`` as a Path.

    Raises
    ------
    NotADirectoryError
        If ``path`` (or the nearest existing folder above it) is a file.
    PermissionError
        If the nearest existing folder is not writable.

    Examples
    --------
    >>> check_out_folder("/tmp/boxstrap-doctest/new/folder").name
    'folder'
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {path} is a file; {holds} is written there. Choose a folder path.")
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise NotADirectoryError(f"{what} {path}: {existing} is a file, so no folder can be made there.")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: no permission to write in {existing}.")
    return path


def check_out_dir(out_dir: Path, marker: str, *, overwrite: bool, what: str) -> None:
    """Refuse an output folder before any photo is read: a file, a place that cannot be written, or a
    folder holding an earlier result (``marker``) without ``overwrite``."""
    check_out_folder(out_dir, holds="a folder of annotation files and pictures")
    if (out_dir / marker).exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already holds {what}; pass overwrite=True (--overwrite) to "
                              "replace them, or choose another folder.")


def check_outside_photos(out_dir: Path, source, root: Path) -> None:
    """Refuse an output folder inside the photo folder ``root`` (when ``source`` is a folder): a rerun
    would read the pictures written there as photos."""
    if Path(source).is_dir() and Path(os.path.abspath(out_dir)).is_relative_to(os.path.abspath(root)):
        raise ValueError(f"out {out_dir} is inside the photo folder {root}; choose a folder outside it.")
