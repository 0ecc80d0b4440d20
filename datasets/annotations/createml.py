"""Apple Create ML object-detection JSON.

``[{"image": "a.jpg", "annotations": [{"label": "one", "coordinates": {"x", "y", "width",
"height"}}]}]`` with ``x``/``y`` the box *centre* in pixels (continuous edges, so ``xmin = x -
width / 2``). Scores are written as each annotation's ``"confidence"`` (the key Create ML/Turi
Create predictions use) and read back from it; other extra keys are ignored.

The format does not store image sizes: the reader opens the header of each image, relative to
the JSON's folder (or ``images_root``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from datasets.annotations.annotation import (
    ImageAnnotation,
    check_labels,
    fmt_number,
    image_size,
    load_json,
    make_annotation,
    number,
)
from groundwork.atomic import write_json
from groundwork.paths import confined

__all__ = ["read_createml", "write_createml"]


def read_createml(path: str | os.PathLike, labels: Sequence[str] | None = None,
                  images_root: str | os.PathLike | None = None) -> list[ImageAnnotation]:
    """Read a Create ML JSON file.

    Parameters
    ----------
    path : path-like
        The JSON file.
    labels : sequence of str, optional
        Allowed labels; others are an error.
    images_root : path-like, optional
        Folder the ``image`` names are relative to (default: the JSON's folder).

    Raises
    ------
    FileNotFoundError
        If the JSON or an image it names is missing.
    ValueError
        If the file is not JSON, an entry or a box is malformed, a label is unknown or a box lies
        outside its image; the message names the file, the entry and the box.
    """
    path = Path(path)
    data = load_json(path)
    root = path.parent if images_root is None else Path(images_root)
    if not isinstance(data, list):
        raise ValueError(f"{path}: a Create ML file holds a list of images. Received a {type(data).__name__}")
    out = []
    for n, entry in enumerate(data):
        where = f"{path}: entry {n}"
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str) or not entry["image"]:
            raise ValueError(f"{where} needs an 'image' name. Received: {entry!r}")
        image = entry["image"]
        boxes = entry.get("annotations", [])
        if not isinstance(boxes, list):
            raise ValueError(f"{where} (image {image!r}): 'annotations' must be a list. Received: {boxes!r}")
        # Sizes come from the images themselves: only ones beside the file are opened.
        width, height = image_size(confined(root, image, source=f"{where} of a Create ML file"), path)
        raw = []
        for i, a in enumerate(boxes):
            c = a.get("coordinates") if isinstance(a, dict) else None
            if not isinstance(c, dict) or not isinstance(a.get("label"), str) or not all(
                    k in c for k in ("x", "y", "width", "height")):
                raise ValueError(f"{where} (image {image!r}): box {i} needs 'label' and 'coordinates' "
                                 f"{{x, y, width, height}}. Received: {a!r}")
            x, y, w, h = (number(c[k], f"{where} (image {image!r}): box {i} {k}")
                          for k in ("x", "y", "width", "height"))
            score = a.get("confidence")
            score = None if score is None else number(score, f"{where}: box {i} confidence")
            raw.append((a["label"], x - w / 2, y - h / 2, x + w / 2, y + h / 2, score))
        out.append(make_annotation(path, image, width, height, raw, labels))
    return out


def write_createml(annotations: Sequence[ImageAnnotation], path: str | os.PathLike,
                   labels: Sequence[str] | None = None) -> Path:
    """Write ``annotations`` as a Create ML JSON file (atomically) and return its path.

    Raises
    ------
    ValueError
        If a box label is not in ``labels``.
    """
    check_labels(annotations, labels)
    entries = []
    for ann in annotations:
        boxes = []
        for b in ann.boxes:
            item = {"label": b.label, "coordinates": {
                "x": fmt_number((b.xmin + b.xmax) / 2), "y": fmt_number((b.ymin + b.ymax) / 2),
                "width": fmt_number(b.width), "height": fmt_number(b.height)}}
            if b.score is not None:
                item["confidence"] = round(b.score, 6)
            boxes.append(item)
        entries.append({"image": ann.image, "annotations": boxes})
    return write_json(path, entries)
