"""COCO object-detection JSON: ``{"images", "annotations", "categories"}``, ``bbox = [x, y, w, h]``.

``bbox`` is in continuous 0-based pixel edges, the in-memory convention. Extra keys written by
other tools (``info``, ``licenses``, ``segmentation``, ``iscrowd``, ``area``, CVAT's
``attributes``, Roboflow's ``extra``...) are ignored. Scores are written as each annotation's
``"score"`` (the key COCO detection results use) and read back from it.
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

__all__ = ["read_coco", "write_coco"]


def read_coco(path: str | os.PathLike, labels: Sequence[str] | None = None) -> list[ImageAnnotation]:
    """Read a COCO JSON file.

    Parameters
    ----------
    path : path-like
        The JSON file.
    labels : sequence of str, optional
        Allowed labels; a box of another category is an error (categories without boxes are fine).

    Returns
    -------
    list of ImageAnnotation
        One per entry of ``images`` (boxes or not), in file order; ``image`` is ``file_name``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not JSON, misses ``images``/``annotations``/``categories``, an annotation
        refers to an unknown image or category, a bbox is malformed or outside its image, or a
        label is unknown; the message names the file, the image and the annotation.
    """
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations")):
        raise ValueError(f"{path} is not a COCO file: expected an object with lists 'images' and 'annotations'")
    categories = data.get("categories")
    if not isinstance(categories, list):
        raise ValueError(f"{path} is not a COCO file: expected a list 'categories'")
    names: dict[object, str] = {}
    for c in categories:
        if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str):
            raise ValueError(f"{path}: each category needs an 'id' and a 'name'. Received: {c!r}")
        names[c["id"]] = c["name"]
    images: dict[object, dict] = {}
    for im in data["images"]:
        if not isinstance(im, dict) or not all(k in im for k in ("id", "file_name", "width", "height")):
            raise ValueError(f"{path}: each image needs 'id', 'file_name', 'width' and 'height'. Received: {im!r}")
        if im["id"] in images:
            raise ValueError(f"{path}: image id {im['id']!r} appears twice")
        images[im["id"]] = im
    raw: dict[object, list] = {key: [] for key in images}
    for n, a in enumerate(data["annotations"]):
        where = f"{path}: annotation {n}"
        if not isinstance(a, dict) or not all(k in a for k in ("image_id", "category_id", "bbox")):
            raise ValueError(f"{where} needs 'image_id', 'category_id' and 'bbox'. Received: {a!r}")
        if a["image_id"] not in images:
            raise ValueError(f"{where} (id {a.get('id')!r}) refers to image_id {a['image_id']!r}, "
                             "which is not in 'images'")
        image = images[a["image_id"]]["file_name"]
        if a["category_id"] not in names:
            raise ValueError(f"{where} (image {image!r}) has category_id {a['category_id']!r}, which is not "
                             f"in 'categories' (ids {sorted(names, key=str)})")
        bbox = a["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise ValueError(f"{where} (image {image!r}): bbox must be [x, y, width, height]. Received: {bbox!r}")
        x, y, w, h = (number(v, f"{where} (image {image!r}): bbox value") for v in bbox)
        score = a.get("score")
        score = None if score is None else number(score, f"{where}: score")
        raw[a["image_id"]].append((names[a["category_id"]], x, y, x + w, y + h, score))
    return [make_annotation(path, im["file_name"], im["width"], im["height"], raw[key], labels)
            for key, im in images.items()]


def write_coco(annotations: Sequence[ImageAnnotation], path: str | os.PathLike,
               labels: Sequence[str] | None = None) -> Path:
    """Write ``annotations`` as one COCO JSON file (atomically) and return its path.

    Categories get ids ``1..C`` in ``labels`` order (default: the sorted box labels); images
    ids ``1..N`` in order; each annotation has ``area = w * h``, ``iscrowd = 0`` and an empty
    ``segmentation``, so pycocotools can evaluate against it.

    Raises
    ------
    ValueError
        If a box label is not in ``labels``.
    """
    labels = check_labels(annotations, labels)
    ids = {name: i + 1 for i, name in enumerate(labels)}
    images, anns = [], []
    for image_id, ann in enumerate(annotations, start=1):
        images.append({"id": image_id, "file_name": ann.image, "width": ann.width, "height": ann.height})
        for box in ann.boxes:
            entry = {"id": len(anns) + 1, "image_id": image_id, "category_id": ids[box.label],
                     "bbox": [fmt_number(box.xmin), fmt_number(box.ymin), fmt_number(box.width),
                              fmt_number(box.height)],
                     "area": fmt_number(box.width * box.height), "iscrowd": 0, "segmentation": []}
            if box.score is not None:
                entry["score"] = round(box.score, 6)
            anns.append(entry)
    categories = [{"id": i, "name": name, "supercategory": "none"} for name, i in ids.items()]
    return write_json(path, {"info": {"description": "written by boxstrap"}, "images": images,
                             "annotations": anns, "categories": categories})
