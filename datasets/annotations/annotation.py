"""The one in-memory form of bounding-box annotations: :class:`Box` and :class:`ImageAnnotation`.

Pixel convention
----------------
Boxes are held in **continuous pixel-edge coordinates, 0-based, xyxy**: ``xmin``/``ymin`` are the
left/top edges of the first covered pixel, ``xmax``/``ymax`` the right/bottom edges of the last
one. A box covering exactly pixel columns 10..19 has ``xmin=10, xmax=20`` and width ``xmax - xmin
= 10``; a box covering the whole image is ``(0, 0, width, height)``. This is the convention of
COCO (``[x, y, w, h]``), YOLO (normalised centre and size) and Create ML (centre and size in
pixels), so those convert without offsets. The two index-based formats convert on the way in and
out:

=============  ===============================  =====================================
format         on file                          in memory
=============  ===============================  =====================================
boxes JSON     0-based, inclusive pixel indices ``xmin = x0``, ``xmax = x1 + 1``
Pascal VOC     1-based, inclusive (VOC devkit)  ``xmin = x0 - 1``, ``xmax = x1``
COCO           ``[x, y, w, h]``, 0-based edges  ``xmin = x``, ``xmax = x + w``
YOLO           normalised ``cx cy w h``         ``xmin = (cx - w / 2) * width``
Create ML      centre ``x, y``, size, pixels    ``xmin = x - width / 2``
=============  ===============================  =====================================

Readers clip a box that sticks out of the image by at most :data:`TOLERANCE` pixels (tools
disagree about off-by-one conventions) and reject anything further out with an error naming the
file, the image and the box.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Box", "ImageAnnotation", "TOLERANCE", "check_labels", "fmt_number", "image_size", "load_json",
           "make_annotation", "number"]

#: How far (pixels) a box read from a file may extend past the image before it is an error;
#: boxes within it are clipped to the image.
TOLERANCE = 1.0


@dataclass(frozen=True)
class Box:
    """One labelled box in pixel xyxy (continuous edges, 0-based; see the module docstring).

    Parameters
    ----------
    label : str
        Class name, non-empty.
    xmin, ymin, xmax, ymax : float
        Edges in pixels; ``xmax > xmin`` and ``ymax > ymin``.
    score : float or None
        Detector confidence, ``None`` for ground truth.

    Raises
    ------
    TypeError
        If ``label`` is not a string or a coordinate is not a real number.
    ValueError
        If ``label`` is empty, a coordinate or the score is not finite, or the box has no area.

    Examples
    --------
    >>> Box("one", 10, 20, 30, 60).width
    20.0
    """

    label: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    score: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str):
            raise TypeError(f"Box label must be a str. Received: {self.label!r}")
        if not self.label:
            raise ValueError("Box label must be a non-empty string. Received: ''")
        for name in ("xmin", "ymin", "xmax", "ymax"):
            object.__setattr__(self, name, _real(getattr(self, name), name))
        if self.score is not None:
            object.__setattr__(self, "score", _real(self.score, "score"))
        if not (self.xmax > self.xmin and self.ymax > self.ymin):
            raise ValueError(
                f"Box {self.label!r} must have xmax > xmin and ymax > ymin (positive size). "
                f"Received: xmin={self.xmin:g}, ymin={self.ymin:g}, xmax={self.xmax:g}, ymax={self.ymax:g}"
            )

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin

    def xyxy(self) -> tuple[float, float, float, float]:
        """The four edges ``(xmin, ymin, xmax, ymax)``."""
        return (self.xmin, self.ymin, self.xmax, self.ymax)

    def __str__(self) -> str:
        coords = ", ".join(f"{v:g}" for v in self.xyxy())
        score = "" if self.score is None else f", score {self.score:.3g}"
        return f"{self.label!r} [{coords}]{score}"


@dataclass(frozen=True)
class ImageAnnotation:
    """The boxes of one image.

    Parameters
    ----------
    image : str
        Image path as the annotation file names it (relative, forward slashes).
    width, height : int
        Image size in pixels.
    boxes : tuple of Box
        Every box must lie inside ``[0, width] x [0, height]`` (up to :data:`TOLERANCE`).
    label : str or None
        Image-level class (a photo's folder), if known; the boxes JSON format stores it.

    Raises
    ------
    TypeError
        If ``image`` is not a string, the size is not integers, or ``boxes`` holds a non-Box.
    ValueError
        If the size is not positive or a box lies outside the image; the message names both.

    Examples
    --------
    >>> ann = ImageAnnotation("one/a.jpg", 64, 48, (Box("one", 1, 2, 11, 22),))
    >>> ann.xyxy()
    array([[ 1.,  2., 11., 22.]])
    """

    image: str
    width: int
    height: int
    boxes: tuple[Box, ...] = ()
    label: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.image, str) or not self.image:
            raise TypeError(f"ImageAnnotation image must be a non-empty str. Received: {self.image!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"ImageAnnotation {name} must be an int. Received: {value!r} "
                                f"for image {self.image!r}")
            if value <= 0:
                raise ValueError(f"ImageAnnotation {name} must be positive. Received: {value} "
                                 f"for image {self.image!r}")
            object.__setattr__(self, name, int(value))
        boxes = tuple(self.boxes)
        for i, box in enumerate(boxes):
            if not isinstance(box, Box):
                raise TypeError(f"ImageAnnotation boxes must be Box instances. Received: {box!r} "
                                f"(box {i} of image {self.image!r})")
            problem = _outside(box, self.width, self.height, TOLERANCE)
            if problem:
                raise ValueError(f"image {self.image!r} ({self.width}x{self.height}): box {i} {box} {problem}")
        object.__setattr__(self, "boxes", boxes)

    def xyxy(self) -> np.ndarray:
        """Box edges as a float64 ``(N, 4)`` array ``[xmin, ymin, xmax, ymax]`` (``(0, 4)`` if none)."""
        return np.array([b.xyxy() for b in self.boxes], dtype=np.float64).reshape(-1, 4)

    def labels(self) -> tuple[str, ...]:
        """Box labels, in box order."""
        return tuple(b.label for b in self.boxes)

    def scores(self) -> np.ndarray:
        """Box scores as a float64 ``(N,)`` array, NaN where a box has none."""
        return np.array([np.nan if b.score is None else b.score for b in self.boxes], dtype=np.float64)

    @classmethod
    def from_arrays(cls, image: str, width: int, height: int, boxes: np.ndarray,
                    labels: Sequence[str], scores: Sequence[float] | np.ndarray | None = None,
                    label: str | None = None) -> ImageAnnotation:
        """Build from an ``(N, 4)`` xyxy array, ``N`` labels and optionally ``N`` scores.

        Raises
        ------
        ValueError
            If ``boxes`` is not ``(N, 4)`` or the lengths of ``labels``/``scores`` differ from ``N``.
        """
        arr = np.asarray(boxes, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"boxes must be an (N, 4) array. Received shape {arr.shape}")
        if len(labels) != len(arr):
            raise ValueError(f"labels must have one entry per box ({len(arr)}). Received {len(labels)}")
        if scores is not None and len(scores) != len(arr):
            raise ValueError(f"scores must have one entry per box ({len(arr)}). Received {len(scores)}")
        out = tuple(
            Box(str(lab), *map(float, row), score=None if scores is None else float(scores[i]))
            for i, (row, lab) in enumerate(zip(arr, labels, strict=True))
        )
        return cls(image, int(width), int(height), out, label)


def make_annotation(source: str | os.PathLike, image: str, width: int, height: int,
                    raw: Iterable[tuple[str, float, float, float, float, float | None]],
                    labels: Sequence[str] | None = None, label: str | None = None) -> ImageAnnotation:
    """Build an :class:`ImageAnnotation` from coordinates read out of ``source`` (readers' helper).

    Boxes outside the image by at most :data:`TOLERANCE` pixels are clipped to it. Every error
    is re-raised as ``ValueError`` naming ``source``, the image and the box.

    Parameters
    ----------
    raw : iterable of (label, xmin, ymin, xmax, ymax, score)
        In-memory (continuous, 0-based) coordinates; ``score`` may be ``None``.
    labels : sequence of str, optional
        Allowed labels; any other label is an error.
    """
    try:
        if isinstance(width, float) and width.is_integer():
            width = int(width)
        if isinstance(height, float) and height.is_integer():
            height = int(height)
        ImageAnnotation(image, width, height)  # validates the size before the boxes
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: {error}") from None
    boxes = []
    for i, (lab, x0, y0, x1, y1, score) in enumerate(raw):
        where = f"{source}: image {image!r}: box {i}"
        if labels is not None and lab not in labels:
            raise ValueError(f"{where} has unknown label {lab!r}. Known labels: {list(labels)}")
        try:
            box = Box(lab, x0, y0, x1, y1, score)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from None
        problem = _outside(box, width, height, TOLERANCE)
        if problem:
            raise ValueError(f"{where} {box} {problem} (image is {width}x{height})")
        cx0, cy0 = max(box.xmin, 0.0), max(box.ymin, 0.0)
        cx1, cy1 = min(box.xmax, float(width)), min(box.ymax, float(height))
        if not (cx1 > cx0 and cy1 > cy0):
            raise ValueError(f"{where} {box} has no area inside the image ({width}x{height})")
        boxes.append(Box(lab, cx0, cy0, cx1, cy1, box.score))
    return ImageAnnotation(image, width, height, tuple(boxes), label)


def check_labels(annotations: Sequence[ImageAnnotation], labels: Sequence[str] | None) -> tuple[str, ...]:
    """Return the label list to write: ``labels`` if given (every box label must be in it),
    else the sorted set of box labels.

    Raises
    ------
    TypeError
        If ``annotations`` holds something other than :class:`ImageAnnotation`.
    ValueError
        If ``labels`` has duplicates or a box label is not in ``labels``.
    """
    for ann in annotations:
        if not isinstance(ann, ImageAnnotation):
            raise TypeError(f"annotations must be ImageAnnotation instances. Received: {type(ann).__name__}")
    found = {b.label for ann in annotations for b in ann.boxes}
    if labels is None:
        return tuple(sorted(found))
    labels = tuple(labels)
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must not repeat. Received: {list(labels)}")
    for ann in annotations:
        for i, box in enumerate(ann.boxes):
            if box.label not in labels:
                raise ValueError(f"image {ann.image!r}: box {i} {box} has a label not in labels {list(labels)}")
    return labels


def image_size(path: str | os.PathLike, source: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` of an image file as displayed (EXIF rotation applied), header only.

    Raises
    ------
    FileNotFoundError
        If the image is missing; the message names the annotation file ``source`` that needs it.
    ValueError
        If the file is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{source}: image {path} not found; this format does not store image sizes, "
            "so the images must be beside the annotations."
        )
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{source}: cannot read the size of image {path}: {error}") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def number(value: object, what: str) -> float:
    """``float(value)`` for numbers and numeric strings; ``ValueError`` naming ``what`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number. Received: {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number. Received: {value!r}") from None
    except OverflowError:
        raise ValueError(f"{what} must be a finite number. Received one of {len(str(value))} digits") from None


def fmt_number(value: float, digits: int = 3) -> int | float:
    """``value`` as an int if it is whole, else rounded to ``digits`` decimals (for writers)."""
    rounded = round(float(value), digits)
    return int(rounded) if rounded.is_integer() else rounded


def load_json(path: Path) -> object:
    """Parse the JSON file ``path``; ``FileNotFoundError``/``ValueError`` naming it otherwise."""
    if not path.is_file():
        raise FileNotFoundError(f"No annotation file at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be an annotation file") from None


def _real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"Box {name} must be a real number. Received: {value!r}")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError(f"Box {name} must be finite. Received a number of {len(str(value))} digits") from None
    if not math.isfinite(value):
        raise ValueError(f"Box {name} must be finite. Received: {value}")
    return value


def _outside(box: Box, width: int, height: int, tol: float) -> str:
    parts = []
    if box.xmin < -tol:
        parts.append(f"starts {-box.xmin:g} px left of the image")
    if box.ymin < -tol:
        parts.append(f"starts {-box.ymin:g} px above the image")
    if box.xmax > width + tol:
        parts.append(f"extends {box.xmax - width:g} px past the image width {width}")
    if box.ymax > height + tol:
        parts.append(f"extends {box.ymax - height:g} px past the image height {height}")
    return "; ".join(parts)
