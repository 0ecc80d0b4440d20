"""Heatmap to pseudo bounding boxes: threshold, contours, bounding rectangles.

Pixel convention
----------------
Boxes are ``(xmin, ymin, xmax, ymax)`` in **continuous pixel-edge coordinates, 0-based**, the
in-memory convention of :mod:`datasets.annotations`: a component covering pixel columns 10..19
gives ``xmin = 10, xmax = 20``. ``cv2.boundingRect``'s ``(x, y, w, h)`` maps to
``(x, y, x + w, y + h)`` with no offset. The boxes JSON file format stores *inclusive* pixel
indices (``xmax = 19`` here); :mod:`datasets.annotations.boxes_json` converts on reading and
writing, so nothing in :mod:`localize` handles the ``+ 1``.
"""

from __future__ import annotations

import logging
import numbers
from typing import Literal

import cv2
import numpy as np

from groundwork.heatmaps import check_heatmap, normalize_heatmap

__all__ = ["DEFAULT_THRESHOLD", "MODES", "boxes_at_thresholds", "check_image_size", "heatmap_to_boxes", "midpoint_threshold",
           "scale_boxes"]

log = logging.getLogger(__name__)

#: The CAM paper's (Zhou et al., CVPR 2016) threshold: 20% of the map's maximum.
DEFAULT_THRESHOLD = 0.2


def midpoint_threshold(heatmap: np.ndarray) -> float:
    """The threshold used when no box was ever seen: half way from the map's typical level (its
    median, after min-max normalisation) to its peak.

    A fixed fraction of the maximum assumes a background near zero; averaged multi-view class maps
    sit at 0.3-0.5 of their range over most of the photo, so the CAM paper's 0.2 boxes the whole
    photo. On the 88 checked block photos (no box used) GrabCut seeded at this midpoint reached
    CorLoc 0.705 against 0.045 at 0.2 and 0.58 at Otsu's threshold (benchmarks/NOTES.md).

    Examples
    --------
    >>> h = np.zeros((4, 4)); h[0, 0] = 1.0
    >>> midpoint_threshold(h)
    0.5
    """
    h = np.asarray(heatmap, np.float64)
    lo, hi = float(np.min(h)), float(np.max(h))
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return 0.5
    return float((np.median((h - lo) / (hi - lo)) + 1.0) / 2.0)
MODES = ("largest", "all")
SCORES = ("mean", "peak")


def heatmap_to_boxes(
    heatmap: np.ndarray,
    *,
    threshold: float | Literal["otsu"] = DEFAULT_THRESHOLD,
    min_area: float = 1,
    mode: Literal["largest", "all"] = "largest",
    score: Literal["mean", "peak"] = "mean",
    image_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn a class heatmap into boxes around its high-heat components.

    The heatmap is min-max normalised to [0, 1] (for a non-negative map whose minimum is 0 this is
    "a fraction of the maximum"), thresholded (``>= threshold``), and every outer contour
    (``cv2.findContours``, 8-connected) becomes a box (``cv2.boundingRect``).

    Parameters
    ----------
    heatmap : (H, W) array_like of real numbers
        Class activation map, any real dtype. NaN/inf anywhere, or a flat map, gives no box.
    threshold : float in [0, 1] or "otsu"
        Fraction of the normalised map's range at or above which a pixel is "on"; ``"otsu"``
        picks it by Otsu's method on the normalised map. 0 makes the whole image one box.
    min_area : float >= 0
        Components with fewer "on" pixels (in heatmap pixels) are dropped.
    mode : {"largest", "all"}
        ``"largest"``: at most one box, the component with the most "on" pixels.
        ``"all"``: one box per component of at least ``min_area`` pixels.
    score : {"mean", "peak"}
        Box score: mean or maximum normalised heat over the component's "on" pixels.
    image_size : (height, width), optional
        Size of the image the boxes are for, if it differs from the heatmap's: boxes are scaled
        from heatmap pixels to image pixels (outward to whole pixels) and clipped to the image.

    Returns
    -------
    boxes : (N, 4) float64 ndarray
        ``xmin, ymin, xmax, ymax`` in continuous pixel edges (see the module docstring), sorted
        by score, highest first (ties: larger component first). ``N`` is 0 or 1 for "largest".
    scores : (N,) float64 ndarray
        In [0, 1].

    Raises
    ------
    TypeError
        If ``heatmap`` is not a real-valued array, or ``threshold`` is neither a number nor "otsu".
    ValueError
        If ``heatmap`` is not 2-D or empty, ``threshold`` is outside [0, 1], ``min_area`` is
        negative, ``mode``/``score`` are unknown, or ``image_size`` is not two positive ints.

    Examples
    --------
    >>> h = np.zeros((8, 10)); h[2:5, 3:7] = 1.0
    >>> boxes, scores = heatmap_to_boxes(h, threshold=0.5)
    >>> boxes
    array([[3., 2., 7., 5.]])
    >>> scores
    array([1.])
    """
    h = check_heatmap(heatmap)
    thr = _check_threshold(threshold)
    if isinstance(min_area, bool) or not isinstance(min_area, numbers.Real) or not min_area >= 0:
        raise ValueError(f"min_area must be a number >= 0. Received: min_area={min_area!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}. Received: score={score!r}")
    target = _check_image_size(image_size, h.shape)
    empty = np.zeros((0, 4), np.float64), np.zeros((0,), np.float64)

    norm = normalize_heatmap(h)
    if norm is None:
        return empty
    if thr == "otsu":
        thr = otsu_threshold(norm)
    return _threshold_boxes(norm, thr, min_area, mode, score, target)


def boxes_at_thresholds(heatmap: np.ndarray, thresholds, *, mode: Literal["largest", "all"] = "largest",
                        image_size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """:func:`heatmap_to_boxes`' boxes at each of several thresholds (numbers in [0, 1]), the map
    checked and normalised once: what a threshold sweep reads (:func:`localize.scoring.box_accuracy`).

    Examples
    --------
    >>> h = np.zeros((8, 10)); h[2:5, 3:7] = 0.5; h[3, 4] = 1.0
    >>> [b.tolist() for b in boxes_at_thresholds(h, [0.4, 0.9])]
    [[[3.0, 2.0, 7.0, 5.0]], [[4.0, 3.0, 5.0, 4.0]]]
    """
    h = check_heatmap(heatmap)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    taus = [_check_threshold(t) for t in thresholds]
    if "otsu" in taus:
        raise ValueError("boxes_at_thresholds takes numbers in [0, 1], not 'otsu'")
    target = _check_image_size(image_size, h.shape)
    norm = normalize_heatmap(h)
    if norm is None:
        return [np.zeros((0, 4), np.float64) for _ in taus]
    return [_threshold_boxes(norm, tau, 1, mode, "mean", target)[0] for tau in taus]


def _threshold_boxes(norm: np.ndarray, thr: float, min_area: float, mode: str, score: str,
                     target: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`heatmap_to_boxes` from its normalised map and a numeric threshold on."""
    empty = np.zeros((0, 4), np.float64), np.zeros((0,), np.float64)
    mask = (norm >= thr).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return empty

    # Per outer contour: its "on" pixels are the mask inside the filled contour (holes and any
    # component nested in them belong to it). Work inside each bounding rectangle only.
    rects = np.array([cv2.boundingRect(c) for c in contours], np.int64).reshape(-1, 4)
    areas = np.zeros(len(contours), np.float64)
    scores = np.zeros(len(contours), np.float64)
    for i, (contour, (x, y, rw, rh)) in enumerate(zip(contours, rects, strict=True)):
        inside = np.zeros((rh, rw), np.uint8)
        cv2.drawContours(inside, [contour], 0, color=1, thickness=cv2.FILLED, offset=(-int(x), -int(y)))
        on = (inside > 0) & (mask[y:y + rh, x:x + rw] > 0)
        areas[i] = on.sum()
        if areas[i]:
            values = norm[y:y + rh, x:x + rw][on]
            scores[i] = values.mean() if score == "mean" else values.max()
    boxes = np.column_stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2],
                             rects[:, 1] + rects[:, 3]]).astype(np.float64)

    keep = np.flatnonzero((areas >= min_area) & (areas > 0))
    if keep.size == 0:
        return empty
    if mode == "largest":
        keep = keep[[int(np.argmax(areas[keep]))]]
    else:
        keep = keep[np.lexsort((-areas[keep], -scores[keep]))]
    boxes, scores = boxes[keep], scores[keep]
    if target is not None:
        boxes = scale_boxes(boxes, norm.shape, target)
    return boxes, scores


def otsu_threshold(norm: np.ndarray) -> float:
    """Otsu's threshold of a normalised heatmap (values in [0, 1]), as a fraction in [0, 1].

    Computed by OpenCV on the map quantised to 256 levels; the returned fraction reproduces
    OpenCV's mask (``level > t``) under :func:`heatmap_to_boxes`' ``>= threshold`` rule.
    """
    levels = np.round(np.clip(np.asarray(norm, np.float64), 0.0, 1.0) * 255).astype(np.uint8)
    if levels.min() == levels.max():
        return 1.0
    t, _ = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float((t + 0.5) / 255)


def scale_boxes(boxes: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Scale ``(N, 4)`` edge boxes from a ``(height, width)`` grid to another, outward to whole
    pixels, clipped to ``[0, width] x [0, height]`` of the target."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
    out = boxes * np.array([sx, sy, sx, sy])
    # Round outward, with a little slack so exact multiples do not grow by a pixel.
    out[:, :2] = np.floor(out[:, :2] + 1e-9)
    out[:, 2:] = np.ceil(out[:, 2:] - 1e-9)
    return clip_boxes(out, to_size)


def clip_boxes(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Clip ``(N, 4)`` edge boxes to an image of ``(height, width)``."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    height, width = image_size
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return boxes


def _check_threshold(threshold: object) -> float | str:
    if isinstance(threshold, str):
        if threshold == "otsu":
            return threshold
        raise ValueError(f"threshold must be a number in [0, 1] or 'otsu'. Received: threshold={threshold!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a number in [0, 1] or 'otsu'. Received: threshold={threshold!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1] or 'otsu'. Received: threshold={threshold!r}")
    return float(threshold)


def _check_image_size(image_size: object, shape: tuple[int, int]) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = check_image_size(image_size)
    return None if size == tuple(shape) else size


def check_image_size(image_size: object) -> tuple[int, int]:
    """Return ``(height, width)`` as ints.

    Raises
    ------
    ValueError
        Unless ``image_size`` is two positive ints (echoing what was received).
    """
    try:
        size = tuple(image_size)  # type: ignore[arg-type]
    except TypeError:
        size = ()
    if (len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in size)
            or min(size) < 1):
        raise ValueError(f"image_size must be (height, width), two positive ints. Received: {image_size!r}")
    return int(size[0]), int(size[1])
