"""One entry point for every annotation format: :func:`read_annotations` and :func:`write_annotations`.

=============  ==========================================  ==========================
name           on disk                                     module
=============  ==========================================  ==========================
``voc``        folder of one ``.xml`` per image            :mod:`.voc`
``coco``       one ``.json`` (images/annotations/cats)     :mod:`.coco`
``yolo``       folder with ``data.yaml`` and ``labels/``   :mod:`.yolo`
``createml``   one ``.json`` list of ``{image, annots}``   :mod:`.createml`
``boxes-json`` one ``.json`` list of ``{file, boxes}``     :mod:`.boxes_json`
=============  ==========================================  ==========================
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from datasets.annotations.annotation import ImageAnnotation
from datasets.annotations.boxes_json import read_boxes_json, write_boxes_json
from datasets.annotations.coco import read_coco, write_coco
from datasets.annotations.createml import read_createml, write_createml
from datasets.annotations.voc import read_voc, write_voc
from datasets.annotations.yolo import DATA_YAML, read_yolo, write_yolo

__all__ = ["FORMATS", "detect_format", "read_annotations", "write_annotations"]

log = logging.getLogger(__name__)

READERS = {"voc": read_voc, "coco": read_coco, "yolo": read_yolo, "createml": read_createml,
           "boxes-json": read_boxes_json}
WRITERS = {"voc": write_voc, "coco": write_coco, "yolo": write_yolo, "createml": write_createml,
           "boxes-json": write_boxes_json}
#: Format names, in the order of the table above.
FORMATS = tuple(READERS)


def detect_format(path: str | os.PathLike) -> str:
    """Guess the format of ``path`` from its layout and, for JSON, its top-level keys.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the format cannot be told; the message lists the formats.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No annotations at {path}")
    if path.is_dir():
        if (path / DATA_YAML).is_file():
            return "yolo"
        if next(path.rglob("*.xml"), None) is not None:
            return "voc"
    elif path.suffix.lower() == ".xml":
        return "voc"
    elif path.suffix.lower() in (".yaml", ".yml"):
        return "yolo"
    elif path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        except RecursionError:
            raise ValueError(f"{path} is nested too deeply to be an annotation file") from None
        if isinstance(data, dict) and "images" in data and "annotations" in data:
            return "coco"
        if isinstance(data, list) and data and isinstance(data[0], dict):
            if "image" in data[0]:
                return "createml"
            if "file" in data[0] and "boxes" in data[0]:
                return "boxes-json"
    raise ValueError(f"Cannot tell the annotation format of {path}; pass fmt, one of {list(FORMATS)}")


def read_annotations(path: str | os.PathLike, fmt: str | None = None,
                     labels: Sequence[str] | None = None) -> list[ImageAnnotation]:
    """Read annotations of any supported format (``fmt`` guessed from ``path`` when ``None``).

    Parameters
    ----------
    path : path-like
        File or folder, as the format keeps it (see the module table).
    fmt : {"voc", "coco", "yolo", "createml", "boxes-json"}, optional
    labels : sequence of str, optional
        Allowed labels; a box with another label is an error.

    Returns
    -------
    list of ImageAnnotation

    Raises
    ------
    ValueError
        If ``fmt`` is unknown, cannot be guessed, or the file is broken (see each reader).
    FileNotFoundError
        If ``path`` (or an image whose size the format needs) does not exist.

    Examples
    --------
    >>> anns = read_annotations("valid_boxes.json")  # doctest: +SKIP
    >>> anns[0].xyxy()                                # doctest: +SKIP
    array([[294., 234., 363., 324.]])
    """
    if fmt is None:
        fmt = detect_format(path)
    if fmt not in READERS:
        raise ValueError(f"fmt must be one of {list(FORMATS)}. Received: {fmt!r}")
    start = time.perf_counter()
    anns = READERS[fmt](path, labels=labels)
    log.info("read %d images, %d boxes (%s) from %s in %.2f s", len(anns),
             sum(len(a.boxes) for a in anns), fmt, path, time.perf_counter() - start)
    return anns


def write_annotations(annotations: Sequence[ImageAnnotation], out: str | os.PathLike, fmt: str,
                      labels: Sequence[str] | None = None) -> Path:
    """Write ``annotations`` in format ``fmt`` to ``out`` (a file or a folder, per the table); atomic per file.

    ``labels`` fixes the class order (COCO category ids, YOLO class ids); default: sorted box labels.

    Raises
    ------
    ValueError
        If ``fmt`` is unknown or a box label is not in ``labels``.
    TypeError
        If ``annotations`` holds something other than :class:`ImageAnnotation`.
    """
    if fmt not in WRITERS:
        raise ValueError(f"fmt must be one of {list(FORMATS)}. Received: {fmt!r}")
    if isinstance(annotations, ImageAnnotation):
        raise TypeError("annotations must be a sequence of ImageAnnotation, not a single one; wrap it in a list")
    result = WRITERS[fmt](list(annotations), out, labels=labels)
    log.info("wrote %d images (%s) to %s", len(annotations), fmt, result)
    return result
