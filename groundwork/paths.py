"""``confined``: a path named by a file (a manifest, an annotation) kept inside the folder it belongs to.

Image names come from files a user or a tool wrote (``manifest.json`` records, annotation
files). Joined to an output or input folder as they are, ``../../x.jpg`` or ``/etc/x`` would read
or write outside the folders the user named. Every such join goes through :func:`confined`.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath


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
