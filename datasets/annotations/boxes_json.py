"""boxstrap's own ground-truth boxes JSON (the format of ``valid_boxes.json``).

A list of records ``{"file", "width", "height", "label", "boxes": [[xmin, ymin, xmax, ymax], ...]}``
with 0-based *inclusive* pixel indices and ``file`` relative to the JSON's folder. Optional keys:
``"scores"`` (one per box, written when boxes carry scores) and ``"note"`` (ignored). Every box of a
record has the record's ``label``; an image whose boxes have several labels is written as one
record per label and merged again on reading.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from datasets.annotations.annotation import (
    ImageAnnotation,
    check_labels,
    fmt_number,
    load_json,
    make_annotation,
    number,
)
from groundwork.atomic import write_json

__all__ = ["read_boxes_json", "write_boxes_json"]


def read_boxes_json(path: str | os.PathLike, labels: Sequence[str] | None = None) -> list[ImageAnnotation]:
    """Read a boxes JSON file.

    Parameters
    ----------
    path : path-like
        The JSON file.
    labels : sequence of str, optional
        Allowed labels (record labels included); others are an error.

    Returns
    -------
    list of ImageAnnotation
        One per distinct ``file``, in file order; ``label`` is the record's label.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not valid JSON, a record lacks a key or has a bad value, a label is
        unknown, or a box lies outside its image; the message names the file and the record.
    """
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: a boxes JSON file holds a list of records. Received a {type(data).__name__}")
    merged: dict[str, ImageAnnotation] = {}
    for n, rec in enumerate(data):
        where = f"{path}: record {n}"
        if not isinstance(rec, dict):
            raise ValueError(f"{where} must be an object. Received: {rec!r}")
        missing = [k for k in ("file", "width", "height", "label", "boxes") if k not in rec]
        if missing:
            raise ValueError(f"{where} lacks the keys {missing}. Received keys: {sorted(rec)}")
        image, label = rec["file"], rec["label"]
        if not isinstance(image, str) or not image:
            raise ValueError(f"{where}: 'file' must be a non-empty string. Received: {image!r}")
        if not isinstance(label, str) or not label:
            raise ValueError(f"{where}: 'label' must be a non-empty string. Received: {label!r}")
        if labels is not None and label not in labels:
            raise ValueError(f"{where} (image {image!r}) has unknown label {label!r}. Known labels: {list(labels)}")
        boxes = rec["boxes"]
        scores = rec.get("scores")
        if not isinstance(boxes, list):
            raise ValueError(f"{where}: 'boxes' must be a list. Received: {boxes!r}")
        if scores is not None and (not isinstance(scores, list) or len(scores) != len(boxes)):
            raise ValueError(f"{where}: 'scores' must be a list with one score per box. Received: {scores!r}")
        raw = []
        for i, b in enumerate(boxes):
            if not isinstance(b, list | tuple) or len(b) != 4:
                raise ValueError(f"{where} (image {image!r}): box {i} must be [xmin, ymin, xmax, ymax]. "
                                 f"Received: {b!r}")
            x0, y0, x1, y1 = (number(v, f"{where} (image {image!r}): box {i} coordinate") for v in b)
            score = None if scores is None or scores[i] is None else number(scores[i], f"{where}: score {i}")
            raw.append((label, x0, y0, x1 + 1.0, y1 + 1.0, score))
        ann = make_annotation(path, image, rec["width"], rec["height"], raw, labels, label)
        previous = merged.get(image)
        if previous is not None:
            if (previous.width, previous.height) != (ann.width, ann.height):
                raise ValueError(f"{where}: image {image!r} appears again with another size "
                                 f"({ann.width}x{ann.height}, before {previous.width}x{previous.height})")
            ann = ImageAnnotation(image, ann.width, ann.height, previous.boxes + ann.boxes, previous.label)
        merged[image] = ann
    return list(merged.values())


def write_boxes_json(annotations: Sequence[ImageAnnotation], path: str | os.PathLike,
                     labels: Sequence[str] | None = None) -> Path:
    """Write ``annotations`` as a boxes JSON file (atomically) and return its path.

    Coordinates become 0-based inclusive indices (``xmax - 1``), written as integers when whole.
    An image without boxes is written with its image-level ``label``.

    Raises
    ------
    ValueError
        If a box label is not in ``labels``, or an image has neither boxes nor a ``label``.
    """
    check_labels(annotations, labels)
    records = []
    for ann in annotations:
        groups: dict[str, list] = {}
        for box in ann.boxes:
            groups.setdefault(box.label, []).append(box)
        if not groups:
            if ann.label is None:
                raise ValueError(f"image {ann.image!r} has no boxes and no label; the boxes JSON needs a label")
            groups[ann.label] = []
        for label, boxes in groups.items():
            rec = {"file": ann.image, "width": ann.width, "height": ann.height, "label": label,
                   "boxes": [[fmt_number(b.xmin), fmt_number(b.ymin), fmt_number(b.xmax - 1.0),
                              fmt_number(b.ymax - 1.0)] for b in boxes]}
            if any(b.score is not None for b in boxes):
                rec["scores"] = [None if b.score is None else round(b.score, 6) for b in boxes]
            records.append(rec)
    return write_json(path, records)

