"""The photos a stage works on: a prepared dataset, a folder per class, or one file.

:func:`find_photos` lists them as :class:`PhotoItem` (the file read, the name annotation files give
it, its known class, the original photo's size and capture group when a prepared dataset's
manifest gives them); :func:`photo_annotation` turns boxes found on a photo read for an item into
an annotation of the user's original photo. ``localize`` and ``detect`` read photos this way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.annotations import Box, ImageAnnotation
from datasets.image_files import image_files
from datasets.images import IMAGE_SUFFIXES
from datasets.manifest import FILENAME as MANIFEST
from datasets.manifest import load_manifest

__all__ = ["PhotoItem", "find_photos", "photo_annotation"]


@dataclass(frozen=True)
class PhotoItem:
    """One photo to work on.

    ``path`` is the file read; ``name`` the image as annotation files name it (relative to the
    source folder); ``label`` its known class or None; ``size`` the ``(width, height)`` the
    annotations are in when it differs from the file read (a prepared image stands in for the
    user's original photo: boxes are scaled back to the original), else None; ``group`` its
    capture group when a prepared dataset's manifest gives one (burst shots share one), else None.
    """

    path: Path
    name: str
    label: str | None
    size: tuple[int, int] | None = None
    group: int | None = None


def find_photos(source: str | os.PathLike, labels: Sequence[str]) -> tuple[Path, list[PhotoItem]]:
    """The images under ``source`` and their known classes.

    ``source`` is a prepared dataset (its manifest gives classes; the images are named and sized
    as the user's original photos when those are under the manifest's source folder), a folder whose
    sub-folders are named after classes (``one/``, ``training/one/``...: the nearest folder named
    like a class gives the label), or a single image file. A folder's images are listed by
    :func:`datasets.image_files.image_files` (recursive, sorted, hidden files skipped).

    Returns
    -------
    root : Path
        The folder image names are relative to.
    items : list of PhotoItem

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist or holds no image.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"images: {source} does not exist.")
    if source.is_file():
        return source.parent, [PhotoItem(source, source.name, None)]
    if (source / MANIFEST).is_file():
        manifest = load_manifest(source)
        original = Path(manifest.settings.get("src", source))
        items = [_manifest_item(manifest, r, original) for r in manifest.records]
        if all(it.size is not None for it in items):
            source = original
    else:
        items = []
        for path in image_files(source):
            rel = path.relative_to(source)
            label = next((part for part in reversed(rel.parts[:-1]) if part in labels), None)
            items.append(PhotoItem(path, rel.as_posix(), label))
    if not items:
        raise FileNotFoundError(f"images: no image ({', '.join(IMAGE_SUFFIXES)}) found under {source}.")
    return source, items


def _manifest_item(manifest, record, original: Path) -> PhotoItem:
    source = Path(os.path.normpath(record.source))  # '<src>/../x.jpg' is not under <src>
    try:
        name = source.relative_to(os.path.normpath(original)).as_posix()
    except ValueError:
        return PhotoItem(manifest.image_path(record), record.path, record.label, group=record.group)
    (sw, sh), (w, h) = record.source_size, record.size
    # source_size is as stored; the photo is seen upright (EXIF), like the prepared image.
    upright = (sw, sh) if (sw >= sh) == (w >= h) else (sh, sw)
    return PhotoItem(manifest.image_path(record), name, record.label, upright, record.group)


def photo_annotation(item: PhotoItem, shape: tuple[int, ...], boxes: np.ndarray, scores: np.ndarray,
                     label: str) -> ImageAnnotation:
    """Boxes found on the image read for ``item`` (of ``shape``) as an annotation of the original photo.

    When a prepared image stood in for the photo (``item.size``), the boxes are scaled back to the
    photo's pixels; they are clipped to it either way.
    """
    height, width = shape[:2]
    out_w, out_h = item.size or (width, height)
    scale = np.array([out_w / width, out_h / height] * 2)
    annotated = tuple(Box(label, *map(float, np.clip(b * scale, 0, [out_w, out_h] * 2)), score=float(s))
                      for b, s in zip(boxes, scores, strict=True))
    return ImageAnnotation(item.name, int(out_w), int(out_h), annotated, label=label)
