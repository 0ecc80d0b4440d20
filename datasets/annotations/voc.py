"""Pascal VOC XML: one ``<annotation>`` file per image, 1-based inclusive ``<bndbox>`` (VOC devkit).

An image ``one/a.jpg`` is written to ``OUT/one/a.xml`` with ``<filename>a.jpg</filename>``; on
reading, the XML's folder relative to the root read is put back in front of ``<filename>``.
Elements written by other tools (``<path>``, ``<source>``, ``<segmented>``, ``<pose>``,
``<truncated>``, ``<difficult>``, ``<occluded>``, CVAT's ``<attributes>``) are ignored. Scores are
written as a non-standard ``<score>`` element inside ``<object>`` (VOC readers ignore unknown
elements) and read back from it.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from datasets.annotations.annotation import (
    ImageAnnotation,
    check_labels,
    fmt_number,
    make_annotation,
    number,
)
from groundwork.atomic import write_bytes
from groundwork.paths import confined

__all__ = ["read_voc", "write_voc"]


def read_voc(path: str | os.PathLike, labels: Sequence[str] | None = None) -> list[ImageAnnotation]:
    """Read one VOC XML file, or every ``*.xml`` below a folder (sorted by path).

    Parameters
    ----------
    path : path-like
        An XML file or a folder of them (searched recursively).
    labels : sequence of str, optional
        Allowed object names; others are an error.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or a folder holds no XML file.
    ValueError
        If an XML is malformed, lacks ``<filename>``, ``<size>`` or a ``<bndbox>`` value, a name
        is unknown or a box lies outside its image; the message names the XML file and the object.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*.xml"))
        if not files:
            raise FileNotFoundError(f"No VOC .xml files below {path}")
        return [_read_one(f, f.parent.relative_to(path), labels) for f in files]
    if not path.is_file():
        raise FileNotFoundError(f"No VOC annotation file or folder at {path}")
    return [_read_one(path, Path("."), labels)]


def write_voc(annotations: Sequence[ImageAnnotation], out: str | os.PathLike,
              labels: Sequence[str] | None = None) -> Path:
    """Write one VOC XML per image below the folder ``out`` (atomically) and return ``out``.

    Raises
    ------
    ValueError
        If a box label is not in ``labels``, or two images would map to the same XML file.
    """
    check_labels(annotations, labels)
    out = Path(out)
    targets: dict[Path, str] = {}
    for ann in annotations:
        rel = PurePosixPath(ann.image)
        target = confined(out, rel.parent / (rel.stem + ".xml"), source=f"the image name {ann.image!r}")
        if target in targets:
            raise ValueError(f"images {targets[target]!r} and {ann.image!r} would both be written to {target}")
        targets[target] = ann.image
    for target, ann in zip(targets, annotations, strict=True):
        write_bytes(target, _to_xml(ann))
    return out


def _to_xml(ann: ImageAnnotation) -> bytes:
    rel = PurePosixPath(ann.image)
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = str(rel.parent) if str(rel.parent) != "." else ""
    ET.SubElement(root, "filename").text = rel.name
    size = ET.SubElement(root, "size")
    for key, value in (("width", ann.width), ("height", ann.height), ("depth", 3)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for box in ann.boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = box.label
        for key in ("pose", "truncated", "difficult"):
            ET.SubElement(obj, key).text = "Unspecified" if key == "pose" else "0"
        if box.score is not None:
            ET.SubElement(obj, "score").text = f"{box.score:.6g}"
        bnd = ET.SubElement(obj, "bndbox")
        for key, value in (("xmin", box.xmin + 1), ("ymin", box.ymin + 1), ("xmax", box.xmax), ("ymax", box.ymax)):
            ET.SubElement(bnd, key).text = str(fmt_number(value))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _read_one(path: Path, folder: Path, labels: Sequence[str] | None) -> ImageAnnotation:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise ValueError(f"{path} is not valid XML: {error}") from None
    if root.tag != "annotation":
        raise ValueError(f"{path} is not a VOC annotation: root element is <{root.tag}>, expected <annotation>")
    filename = (root.findtext("filename") or "").strip()
    if not filename:
        raise ValueError(f"{path} has no <filename>")
    image = PurePosixPath(*folder.parts, filename).as_posix() if folder.parts else filename
    size = root.find("size")
    if size is None:
        raise ValueError(f"{path} (image {image!r}) has no <size>")
    dims = {}
    for key in ("width", "height"):
        value = number((size.findtext(key) or "").strip() or None, f"{path} (image {image!r}): <size><{key}>")
        dims[key] = int(value) if value.is_integer() else value
    raw = []
    for i, obj in enumerate(root.iter("object")):
        where = f"{path} (image {image!r}): object {i}"
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise ValueError(f"{where} has no <name>")
        bnd = obj.find("bndbox")
        if bnd is None:
            raise ValueError(f"{where} ({name!r}) has no <bndbox>")
        x0, y0, x1, y1 = (number((bnd.findtext(k) or "").strip() or None, f"{where} ({name!r}): <{k}>")
                          for k in ("xmin", "ymin", "xmax", "ymax"))
        score = obj.findtext("score")
        score = None if score is None else number(score.strip(), f"{where}: <score>")
        raw.append((name, x0 - 1.0, y0 - 1.0, x1, y1, score))
    return make_annotation(path, image, dims["width"], dims["height"], raw, labels)
