"""Boxes from a box model's outputs: Core ML's non-maximum suppression, reproduced in numpy.

The ``"centres"`` head gives every cell of the feature grid a box and a confidence per class;
the exported detector ends in Core ML's non-maximum suppression, and :func:`non_max_suppression`
does the same here, so ``boxstrap detect`` writes the boxes an app gets from Vision, and verify
compares them box by box.

The score boxstrap writes for a kept box is its confidence times its :func:`box_agreement`, the
share of the confidence of the cells whose boxes overlap it that lies in cells boxing the same
object, averaged over COCO's IoU thresholds (:func:`detector_boxes`): it ranks right boxes above
wrong ones better than the confidence alone (``benchmarks/NOTES.md``, "The cells' agreement as
the box's confidence").
Vision returns the confidence alone: the agreement needs every cell's box beside the kept one,
and Core ML's suppression gives back only the kept boxes.
"""

from __future__ import annotations

import numpy as np

from groundwork.box_geometry import box_iou, cxcywh_to_xyxy, matched_box_iou

__all__ = ["AGREEMENT_IOUS", "CONFIDENCE_THRESHOLD", "IOU_THRESHOLD", "box_agreement", "detector_boxes",
           "non_max_suppression", "scored_suppression"]

#: The exported detector's and ``detect``'s defaults (benchmarks/NOTES.md, "Several boxes per photo").
IOU_THRESHOLD = 0.45
CONFIDENCE_THRESHOLD = 0.3
#: The IoUs at which two cells' boxes count as boxing the same object (:func:`box_agreement`), its
#: share averaged over them: COCO's, 0.5 to 0.95 in steps of 0.05, as mAP@[.5:.95] averages over
#: them, so a cell boxing the object a little apart counts for less than one boxing it alike.
AGREEMENT_IOUS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


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


def box_agreement(confidence: np.ndarray, coordinates: np.ndarray, *, match_ious=AGREEMENT_IOUS,
                  rows: np.ndarray | None = None) -> np.ndarray:
    """How much the cells agree on each cell's box: of the confidence of every cell whose box
    overlaps it, the share in cells whose boxes overlap it by at least an IoU of ``match_ious``,
    averaged over them.

    Near 1 where the confident cells around an object all box it alike; lower where they box
    something else as well (a group as one and its animals one by one, a part and the whole), the
    boxes that are wrong more often. A cell's own confidence counts (its box matches itself), so
    a box no other cell overlaps has agreement 1.

    Parameters
    ----------
    confidence : (N, C) ndarray
        Each cell's class confidences; a cell weighs its highest.
    coordinates : (N, 4) ndarray
        ``(cx, cy, w, h)`` in [0, 1] of the photo; clipped to it as the boxes written are.
    match_ious : sequence of float
        The IoUs at which a cell's box matches; one of them gives a plain share.
    rows : (K,) int ndarray, optional
        The cells whose agreement is wanted (the kept boxes'), each against every cell; default all.

    Returns
    -------
    (N,) or (K,) float64 ndarray in [0, 1]

    Examples
    --------
    Two cells box one object alike (IoU 0.9: they match at nine of the ten IoUs), a third boxes it
    with its neighbour as one (IoU 0.4 with each: no match):

    >>> conf = np.array([[0.8], [0.6], [0.4]])
    >>> boxes = np.array([[0.3, 0.5, 0.2, 0.4], [0.31, 0.5, 0.2, 0.4], [0.45, 0.5, 0.5, 0.4]])
    >>> box_agreement(conf, boxes).round(3).tolist()
    [0.744, 0.733, 0.222]
    >>> box_agreement(conf, boxes, match_ious=[0.5]).round(3).tolist()
    [0.778, 0.778, 0.222]
    """
    confidence = np.asarray(confidence, np.float64)
    weight = confidence.reshape(len(confidence), -1).max(axis=1) if confidence.size else np.zeros(len(confidence))
    boxes = np.clip(cxcywh_to_xyxy(np.asarray(coordinates, np.float64).reshape(-1, 4)), 0, 1)
    wanted = boxes if rows is None else boxes[np.asarray(rows, np.int64).reshape(-1)]
    if not len(wanted):
        return np.zeros(0)
    iou = box_iou(wanted, boxes)
    overlapping = (iou > 0) @ weight
    matching = np.mean([(iou >= t) @ weight for t in np.atleast_1d(np.asarray(match_ious, np.float64))], axis=0)
    return np.divide(matching, overlapping, out=np.ones(len(wanted)), where=overlapping > 0)


def scored_suppression(confidence: np.ndarray, coordinates: np.ndarray, *, iou_threshold: float = IOU_THRESHOLD,
                       confidence_threshold: float = CONFIDENCE_THRESHOLD
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The boxes :func:`non_max_suppression` keeps, in its order (highest confidence first), with
    their scores as boxstrap writes them: each box's confidence times its :func:`box_agreement`.

    Returns
    -------
    confidence : (K, C) ndarray, coordinates : (K, 4) ndarray
        As :func:`non_max_suppression` returns them.
    scores : (K,) float64 ndarray

    Examples
    --------
    >>> conf = np.array([[0.8], [0.6], [0.4]])
    >>> boxes = np.array([[0.3, 0.5, 0.2, 0.4], [0.31, 0.5, 0.2, 0.4], [0.45, 0.5, 0.5, 0.4]])
    >>> kept_confidence, kept, scores = scored_suppression(conf, boxes, confidence_threshold=0.35)
    >>> kept[:, 0].tolist(), scores.round(3).tolist()
    ([0.3, 0.45], [0.596, 0.089])
    """
    kept_confidence, kept, index = non_max_suppression(confidence, coordinates, iou_threshold=iou_threshold,
                                                       confidence_threshold=confidence_threshold, return_index=True)
    if not len(index):
        return kept_confidence, kept, np.zeros(0)
    return kept_confidence, kept, kept_confidence.max(axis=1) * box_agreement(confidence, coordinates, rows=index)


def detector_boxes(confidence: np.ndarray, coordinates: np.ndarray, *, iou_threshold: float = IOU_THRESHOLD,
                   confidence_threshold: float = CONFIDENCE_THRESHOLD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One photo's boxes as boxstrap writes them: the boxes :func:`non_max_suppression` keeps,
    each scored by its confidence times its :func:`box_agreement` (:func:`scored_suppression`),
    best score first.

    Returns
    -------
    coordinates : (K, 4) ndarray
        ``(cx, cy, w, h)`` of the kept boxes.
    scores : (K,) float64 ndarray
    classes : (K,) int64 ndarray
        Each box's class of highest confidence.

    Examples
    --------
    >>> conf = np.array([[0.8], [0.6], [0.4]])
    >>> boxes = np.array([[0.3, 0.5, 0.2, 0.4], [0.31, 0.5, 0.2, 0.4], [0.65, 0.5, 0.2, 0.4]])
    >>> kept, scores, _ = detector_boxes(conf, boxes)
    >>> kept[:, 0].tolist(), scores.round(3).tolist()
    ([0.3, 0.65], [0.766, 0.4])
    """
    kept_confidence, kept, scores = scored_suppression(confidence, coordinates, iou_threshold=iou_threshold,
                                                       confidence_threshold=confidence_threshold)
    if not len(kept):
        return kept, scores, np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")
    return kept[order], scores[order], kept_confidence.argmax(axis=1)[order]
