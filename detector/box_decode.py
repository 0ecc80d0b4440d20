"""Boxes from a box model's outputs: Core ML's non-maximum suppression, reproduced in numpy.

The ``"centres"`` head gives every cell of the feature grid a box and a confidence per class;
the exported detector ends in Core ML's non-maximum suppression, and :func:`non_max_suppression`
does the same here, so ``boxstrap detect`` writes the boxes an app gets from Vision, and verify
compares them box by box.
"""

from __future__ import annotations

import numpy as np

from groundwork.box_geometry import cxcywh_to_xyxy, matched_box_iou

__all__ = ["CONFIDENCE_THRESHOLD", "IOU_THRESHOLD", "non_max_suppression"]

#: The exported detector's and ``detect``'s defaults (benchmarks/NOTES.md, "Several boxes per photo").
IOU_THRESHOLD = 0.45
CONFIDENCE_THRESHOLD = 0.3


def non_max_suppression(confidence: np.ndarray, coordinates: np.ndarray, *, iou_threshold: float = IOU_THRESHOLD,
                        confidence_threshold: float = CONFIDENCE_THRESHOLD, return_index: bool = False):
    """Core ML's class-agnostic non-maximum suppression (``pickTop.perClass = False``).

    Parameters
    ----------
    confidence : (N, C) ndarray
    coordinates : (N, 4) ndarray
        ``(cx, cy, w, h)``.
    return_index : bool
        Also return the kept rows' indices.

    Returns
    -------
    confidence : (K, C) ndarray, coordinates : (K, 4) ndarray[, index : (K,) int ndarray]
        The boxes kept, highest confidence first: a box is kept when its highest class
        confidence reaches ``confidence_threshold`` and it overlaps no kept box by more than
        ``iou_threshold``.

    Examples
    --------
    >>> conf = np.array([[0.9, 0.0], [0.8, 0.0], [0.0, 0.7], [0.1, 0.1]])
    >>> boxes = np.array([[0.3, 0.3, 0.2, 0.2], [0.31, 0.3, 0.2, 0.2], [0.7, 0.7, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1]])
    >>> non_max_suppression(conf, boxes, iou_threshold=0.5, confidence_threshold=0.25, return_index=True)[2].tolist()
    [0, 2]
    """
    confidence = np.asarray(confidence, np.float64)
    confidence = confidence.reshape(-1, confidence.shape[-1])
    coordinates = np.asarray(coordinates, np.float64).reshape(-1, 4)
    best = confidence.max(axis=1) if confidence.shape[1] else np.zeros(len(confidence))
    order = [i for i in np.argsort(-best, kind="stable") if best[i] >= confidence_threshold]
    boxes = cxcywh_to_xyxy(coordinates, dtype=np.float32).astype(np.float64)
    kept: list[int] = []
    for i in order:
        if not kept or np.all(
                matched_box_iou(np.repeat(boxes[i:i + 1], len(kept), 0), boxes[kept]) <= iou_threshold):
            kept.append(i)
    index = np.asarray(kept, np.int64)
    if return_index:
        return confidence[index], coordinates[index], index
    return confidence[index], coordinates[index]
