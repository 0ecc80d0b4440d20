"""The images a parity check runs on: decoded once, resized once, the same pixels for both models."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.image_files import image_files
from datasets.manifest import FILENAME as MANIFEST_FILENAME
from datasets.manifest import load_manifest
from datasets.preprocessing import Preprocessing
from datasets.tf_input import read_rgb

__all__ = ["VerifyImages", "load_verify_images"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyImages:
    """RGB images at the model's input size and where they came from.

    Attributes
    ----------
    names : tuple of str
        Each image's path relative to the source folder.
    pixels : (N, H, W, 3) uint8 ndarray
    skipped : tuple of dict
        ``{"file", "reason"}`` for files that could not be decoded.
    """

    names: tuple[str, ...]
    pixels: np.ndarray
    skipped: tuple[dict[str, str], ...] = ()


def load_verify_images(
    source: str | os.PathLike, preprocessing: Preprocessing, *, split: str = "valid", max_images: int | None = None
) -> VerifyImages:
    """Decode and resize the images of a folder, or of one split of a prepared dataset.

    Each image is decoded by :func:`datasets.tf_input.read_rgb`; one that cannot be is logged,
    listed in ``skipped`` and left out.

    Parameters
    ----------
    source : path
        A folder of images (:func:`datasets.image_files.image_files`: searched recursively,
        sorted, hidden files skipped), an image file, or a prepared dataset folder with
        ``manifest.json`` (then the records of ``split`` are used; ``DIR:SPLIT`` names the
        split in the path itself).
    preprocessing : Preprocessing
        Its :meth:`~datasets.preprocessing.Preprocessing.resize` makes the pixels.
    split : str
        Split of a prepared dataset.
    max_images : int, optional
        Use the first ``max_images`` images only.

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist or holds no readable image.
    """
    source = Path(source)
    text = str(source)
    if not source.exists() and ":" in text and Path(text.rsplit(":", 1)[0]).is_dir():
        text, split = text.rsplit(":", 1)  # "PREPARED_DIR:valid"
        source = Path(text)
    if not source.exists():
        raise FileNotFoundError(f"images: no such folder {source}. Give a folder of images or a prepared dataset.")
    if (source / MANIFEST_FILENAME).is_file():
        manifest = load_manifest(source)
        paths = [manifest.image_path(r) for r in manifest.split(split)]
        root = manifest.root
    elif source.is_dir():
        paths = image_files(source)
        root = source
    else:
        paths, root = [source], source.parent
    if max_images is not None:
        paths = paths[:max_images]
    names, pixels, skipped = [], [], []
    for path in paths:
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        try:
            pixels.append(read_rgb(path, preprocessing))
            names.append(name)
        except (FileNotFoundError, ValueError) as error:
            log.warning("%s; skipped", error)
            skipped.append({"file": name, "reason": str(error)})
    if not pixels:
        raise FileNotFoundError(f"images: no readable image in {source}"
                                + (f" (split {split!r})" if (source / MANIFEST_FILENAME).is_file() else ""))
    log.info("read %d images from %s (%d skipped)", len(pixels), source, len(skipped))
    return VerifyImages(tuple(names), np.stack(pixels), tuple(skipped))
