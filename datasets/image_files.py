"""List the image files under a folder, the one way every stage does it.

:func:`image_files` walks a folder recursively and keeps the files whose name ends in one of
:data:`datasets.images.IMAGE_SUFFIXES` (any case), sorted. Hidden files and folders (a name
starting with ``.``: ``.DS_Store``, macOS's ``._IMG_0001.JPG`` resource forks, ``.git/``) are
skipped, so a folder copied from a Mac lists only its photos. Decode each file with
:func:`datasets.tf_input.read_rgb`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from datasets.images import IMAGE_SUFFIXES

__all__ = ["image_files"]

log = logging.getLogger(__name__)


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files under ``folder`` and its sub-folders, sorted.

    Parameters
    ----------
    folder : str or PathLike
        The folder to search. Symbolic links to folders are not followed.

    Returns
    -------
    list of Path
        ``folder / relative_path`` of each file whose suffix (case-insensitive) is in
        :data:`datasets.images.IMAGE_SUFFIXES`, in sorted order; files and folders whose name
        starts with ``.`` below ``folder`` are left out. Empty when there is none.

    Raises
    ------
    TypeError
        If ``folder`` is not a str or PathLike.
    FileNotFoundError
        If ``folder`` does not exist.
    NotADirectoryError
        If ``folder`` is a file.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     for name in ("b.JPG", "a/c.png", "._b.JPG", "notes.txt"):
    ...         (Path(tmp) / name).parent.mkdir(exist_ok=True)
    ...         (Path(tmp) / name).touch()
    ...     [p.relative_to(tmp).as_posix() for p in image_files(tmp)]
    ['a/c.png', 'b.JPG']
    """
    if not isinstance(folder, str | os.PathLike):
        raise TypeError(f"folder must be a str or PathLike. Received: {type(folder).__name__}")
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"folder {folder} does not exist. Give a folder of images.")
    if not folder.is_dir():
        raise NotADirectoryError(f"folder {folder} is a file, not a folder of images.")
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # do not descend into hidden folders
        for name in filenames:
            path = Path(dirpath) / name
            if not name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                found.append(path)
    found.sort()
    log.debug("found %d image files under %s", len(found), folder)
    return found
