"""YOLO txt (Ultralytics / Roboflow layout): ``labels/<image>.txt`` beside ``images/<image>``, and ``data.yaml``.

Each line is ``class cx cy w h`` normalised to the image size (the in-memory continuous
convention divided by width/height), optionally followed by a confidence (Ultralytics'
``save_conf``), which is how scores are written. A polygon line (``class x1 y1 x2 y2 ...``, YOLO
segmentation exports) is read as the box around its points. ``data.yaml`` holds ``names`` (a list,
or a ``{id: name}`` mapping) and ``nc``; other keys (``train``, ``val``, ``roboflow``...) are
ignored.

The txt files do not store image sizes: the reader opens the header of ``images/<image>`` (found
by replacing the last ``labels`` folder of a label file's path with ``images``). An image under
``images/`` without a label file has no boxes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from datasets.annotations.annotation import (
    ImageAnnotation,
    check_labels,
    image_size,
    make_annotation,
    number,
)
from datasets.images import IMAGE_SUFFIXES
from groundwork.atomic import write_text
from groundwork.paths import confined

__all__ = ["DATA_YAML", "read_yolo", "write_yolo"]

DATA_YAML = "data.yaml"


def read_yolo(path: str | os.PathLike, labels: Sequence[str] | None = None) -> list[ImageAnnotation]:
    """Read a YOLO dataset folder (or its ``data.yaml``).

    Parameters
    ----------
    path : path-like
        The folder holding ``data.yaml`` and ``labels/``/``images/`` folders (at any depth, as
        in Roboflow's ``train/labels``), or the ``data.yaml`` file itself.
    labels : sequence of str, optional
        Allowed labels; a box of another class is an error.

    Returns
    -------
    list of ImageAnnotation
        One per image, sorted by image path; ``image`` is relative to the folder.

    Raises
    ------
    FileNotFoundError
        If the folder, ``data.yaml`` or an image a label file needs is missing.
    ValueError
        If ``data.yaml`` has no usable ``names``, a line is malformed, a class id is out of range,
        a label is unknown or a box lies outside its image; the message names the file and line.
    """
    path = Path(path)
    root = path.parent if path.is_file() else path
    yaml_path = path if path.is_file() else path / DATA_YAML
    if not root.is_dir():
        raise FileNotFoundError(f"No YOLO dataset folder at {path}")
    if not yaml_path.is_file():
        raise FileNotFoundError(f"No {DATA_YAML} in {root}: a YOLO dataset needs one with the class names")
    names = _read_names(yaml_path)
    label_files = {f: _image_for(f) for f in sorted(root.rglob("*.txt")) if "labels" in f.relative_to(root).parts}
    out: dict[str, ImageAnnotation] = {}
    for txt, image_path in label_files.items():
        if image_path is None:
            raise FileNotFoundError(f"{txt}: no image for this label file (looked for "
                                    f"{_images_stem(txt)}{{{','.join(IMAGE_SUFFIXES)}}})")
        width, height = image_size(image_path, txt)
        raw = [_parse_line(line, txt, n, names, width, height)
               for n, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), start=1) if line.strip()]
        image = image_path.relative_to(root).as_posix()
        out[image] = make_annotation(txt, image, width, height, raw, labels)
    for image_path in sorted(root.rglob("*")):
        rel = image_path.relative_to(root)
        if image_path.suffix.lower() in IMAGE_SUFFIXES and "images" in rel.parts and rel.as_posix() not in out:
            width, height = image_size(image_path, yaml_path)
            out[rel.as_posix()] = ImageAnnotation(rel.as_posix(), width, height)
    return [out[k] for k in sorted(out)]


def write_yolo(annotations: Sequence[ImageAnnotation], out: str | os.PathLike,
               labels: Sequence[str] | None = None) -> Path:
    """Write ``OUT/labels/<image stem>.txt`` per image and ``OUT/data.yaml`` (atomically); return ``out``.

    An image ``images/x/a.jpg`` or ``x/a.jpg`` goes to ``labels/x/a.txt`` (a leading ``images/``
    is dropped). The images themselves are not copied: put them at ``OUT/images/<same path>``
    for the folder to be a complete dataset. Class ids follow ``labels`` (default: sorted box
    labels); coordinates get 6 decimals.

    Raises
    ------
    ValueError
        If a box label is not in ``labels``, or two images map to the same label file.
    """
    labels = check_labels(annotations, labels)
    out = Path(out)
    ids = {name: i for i, name in enumerate(labels)}
    files: dict[Path, str] = {}
    texts = []
    for ann in annotations:
        rel = PurePosixPath(ann.image)
        parts = rel.parent.parts[1:] if rel.parts[0] == "images" else rel.parent.parts
        target = confined(out / "labels", PurePosixPath(*parts, rel.stem + ".txt"),
                          source=f"the image name {ann.image!r}")
        if target in files:
            raise ValueError(f"images {files[target]!r} and {ann.image!r} would both be written to {target}")
        files[target] = ann.image
        lines = []
        for b in ann.boxes:
            cx, cy = (b.xmin + b.xmax) / 2 / ann.width, (b.ymin + b.ymax) / 2 / ann.height
            line = f"{ids[b.label]} {cx:.6f} {cy:.6f} {b.width / ann.width:.6f} {b.height / ann.height:.6f}"
            lines.append(line if b.score is None else f"{line} {b.score:.6f}")
        texts.append("".join(line + "\n" for line in lines))
    for target, text in zip(files, texts, strict=True):
        write_text(target, text)
    names = "\n".join(f"  {i}: {_yaml_str(name)}" for i, name in enumerate(labels))
    write_text(out / DATA_YAML, f"# written by boxstrap\npath: .\ntrain: images\nval: images\n"
                                f"nc: {len(labels)}\nnames:\n{names}\n")
    return out


def _parse_line(line: str, txt: Path, n: int, names: list[str], width: int, height: int):
    where = f"{txt}: line {n}"
    fields = line.split()
    cls = number(fields[0], f"{where}: class id")
    if not cls.is_integer() or not 0 <= cls < len(names):
        raise ValueError(f"{where}: class id {fields[0]!r} is not one of 0..{len(names) - 1} ({names})")
    values = [number(v, f"{where}: value") for v in fields[1:]]
    score = None
    if len(values) in (4, 5):
        cx, cy, w, h = values[:4]
        score = values[4] if len(values) == 5 else None
        x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
    elif len(values) >= 6 and len(values) % 2 == 0:  # polygon
        xs, ys = values[0::2], values[1::2]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    else:
        raise ValueError(f"{where}: expected 'class cx cy w h [score]' or a polygon. Received: {line.strip()!r}")
    return (names[int(cls)], x0 * width, y0 * height, x1 * width, y1 * height, score)


def _images_stem(txt: Path) -> Path:
    parts = list(txt.parts)
    i = len(parts) - 1 - parts[::-1].index("labels")
    parts[i] = "images"
    return Path(*parts).with_suffix("")


def _image_for(txt: Path) -> Path | None:
    stem = _images_stem(txt)
    for suffix in IMAGE_SUFFIXES:
        for candidate in (stem.with_name(stem.name + suffix), stem.with_name(stem.name + suffix.upper())):
            if candidate.is_file():
                return candidate
    return None


def _read_names(yaml_path: Path) -> list[str]:
    import yaml

    text = yaml_path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"{yaml_path} is not valid YAML: {error}") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            keys = []
        if keys != list(range(len(names))):
            raise ValueError(f"{yaml_path}: 'names' ids must be 0..{len(names) - 1}. Received: {sorted(names)}")
        names = [names[k] if k in names else names[str(k)] for k in keys]
    if not isinstance(names, list) or not names or not all(isinstance(n, str | int) for n in names):
        raise ValueError(f"{yaml_path} needs 'names': a list of class names or a {{id: name}} mapping. "
                         f"Received: {names!r}")
    return [str(n) for n in names]


def _yaml_str(name: str) -> str:
    return json.dumps(name, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar
