"""A pseudo box around a group of objects, split into the box model's boxes inside it; a pseudo
box of one object averaged with the box model's box of it.

``localize`` gives a photo one pseudo box, so where several objects stand together it boxes the
group. The box model trained on those boxes gives each object a peak of its own (the ``"centres"``
head), and on the photos it learned from it often finds the group's members separately. Where two
or more of its boxes lie inside a photo's pseudo box, they replace it; a photo of one object keeps
its pseudo box (README's suite table: on the animal photos with 20 hand boxes, recall over every
animal 0.653 -> 0.749, CorLoc 0.818 -> 0.849, the block photos' CorLoc unchanged; the rule's
tables are in benchmarks/NOTES.md, "Groups split by the box model" and "The split with the box
model trained without crops").

A pseudo box that is not split is averaged with the box model's box that overlaps it most, where
they overlap enough (:func:`fuse_box`): two boxes made by different means err in different
directions (README's suite table: with 20 hand boxes, CorLoc after the split and the averaging
0.862 on the animals and 0.971 on the blocks; benchmarks/NOTES.md, "The pseudo box averaged with
the box model's").

The refined boxes are scored by the box model (:func:`model_scores`): each by the score of the
model's box that overlaps it most, times their IoU.
"""

from __future__ import annotations

import numpy as np

from groundwork.box_geometry import box_ioa, box_iou, cxcywh_to_xyxy

__all__ = ["NESTED", "fuse_box", "model_scores", "split_groups"]

#: A box model's box lying at least this share inside another of the group's is a part of it (a
#: block's face inside the block), not an object of its own (benchmarks/NOTES.md, "Groups split
#: by the box model": it kept 5 of 6 split block photos whole and changed nothing on the animals).
NESTED = 0.9


def split_groups(box: np.ndarray, boxes: np.ndarray, scores: np.ndarray, *,
                 min_inside: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The box model's boxes that split ``box``, or None when it stays whole.

    Parameters
    ----------
    box : (4,) ndarray
        A photo's pseudo box, ``(cx, cy, w, h)`` in any unit shared with ``boxes``.
    boxes : (K, 4) ndarray
        The box model's boxes of the same photo (after its non-maximum suppression), ``(cx, cy, w, h)``.
    scores : (K,) ndarray
        Their confidences.
    min_inside : float in (0, 1]
        A box counts when at least this share of its area lies inside ``box``
        (:attr:`detector.box_train_config.BoxTrainConfig.split_inside`).

    Returns
    -------
    (boxes, scores) or None
        The boxes that count and their scores, in the given order, when there are two or more
        (a box :data:`NESTED` inside another of them does not count); else None.

    Examples
    --------
    >>> group = np.array([0.5, 0.5, 0.8, 0.4])
    >>> found = np.array([[0.3, 0.5, 0.3, 0.4], [0.7, 0.5, 0.3, 0.4], [0.5, 0.9, 0.2, 0.2]])
    >>> split_groups(group, found, np.array([0.9, 0.8, 0.7]), min_inside=0.7)[1].tolist()
    [0.9, 0.8]
    >>> split_groups(group, found[:1], np.array([0.9]), min_inside=0.7) is None
    True
    """
    _check_share("min_inside", min_inside)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores).reshape(-1)
    if len(boxes) < 2:
        return None
    inner = cxcywh_to_xyxy(boxes, dtype=np.float64)
    outer = cxcywh_to_xyxy(np.reshape(box, (1, 4)), dtype=np.float64)
    members = np.flatnonzero(box_ioa(inner, outer)[:, 0] >= min_inside)
    if len(members) < 2:
        return None
    share = box_ioa(inner[members], inner[members])  # [i, j]: the share of member i inside member j
    np.fill_diagonal(share, 0.0)
    members = members[share.max(axis=1) < NESTED]
    if len(members) < 2:
        return None
    return boxes[members].astype(np.float32), scores[members]


def fuse_box(box: np.ndarray, boxes: np.ndarray, *, min_iou: float) -> np.ndarray | None:
    """The mean of ``box`` and the one of ``boxes`` that overlaps it most, or None when none
    overlaps it by ``min_iou``.

    Parameters
    ----------
    box : (4,) ndarray
        A photo's pseudo box, ``(cx, cy, w, h)`` in any unit shared with ``boxes``.
    boxes : (K, 4) ndarray
        The box model's boxes of the same photo (after its non-maximum suppression), ``(cx, cy, w, h)``.
    min_iou : float in (0, 1]
        The least IoU of the two boxes averaged
        (:attr:`detector.box_train_config.BoxTrainConfig.fuse_iou`).

    Returns
    -------
    (4,) float32 ndarray or None
        The averaged box, ``(cx, cy, w, h)`` (the mean of the corners: the same as the mean of
        centre and size).

    Examples
    --------
    >>> fuse_box(np.array([0.5, 0.5, 0.4, 0.4]), np.array([[0.9, 0.9, 0.1, 0.1], [0.6, 0.5, 0.4, 0.4]]),
    ...          min_iou=0.3).tolist()
    [0.550000011920929, 0.5, 0.4000000059604645, 0.4000000059604645]
    >>> fuse_box(np.array([0.5, 0.5, 0.4, 0.4]), np.array([[0.9, 0.9, 0.1, 0.1]]), min_iou=0.3) is None
    True
    """
    _check_share("min_iou", min_iou)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return None
    own = np.asarray(box, np.float64).reshape(4)
    overlap = box_iou(cxcywh_to_xyxy(own[None], dtype=np.float64), cxcywh_to_xyxy(boxes, dtype=np.float64))[0]
    best = int(np.argmax(overlap))
    if overlap[best] < min_iou:
        return None
    return ((own + boxes[best]) / 2).astype(np.float32)


def model_scores(own: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each of a photo's pseudo boxes scored by the box model: the score of the model's box that
    overlaps it most, times their IoU (0 where none overlaps it).

    A pseudo box the model boxes alike, and is sure of, scores high; one it boxes otherwise (a
    group where it finds the animals, a part where it finds the whole) or doubts scores low. With
    ``detect``'s scores (the confidence times the cells' agreement) this ranks right pseudo boxes
    above wrong ones better than their own scores, which are the map's mean inside a box or the
    model's confidence by how the box was made (``benchmarks/NOTES.md``, "The refined pseudo
    boxes scored by the box model").

    Parameters
    ----------
    own : (N, 4) ndarray
        The pseudo boxes, ``(cx, cy, w, h)`` in any unit shared with ``boxes``.
    boxes : (K, 4) ndarray
        The box model's boxes of the same photo, ``(cx, cy, w, h)``.
    scores : (K,) ndarray
        Their scores.

    Returns
    -------
    (N,) float64 ndarray

    Examples
    --------
    >>> model_scores(np.array([[0.5, 0.5, 0.4, 0.4], [0.1, 0.1, 0.1, 0.1]]),
    ...              np.array([[0.6, 0.5, 0.4, 0.4], [0.5, 0.5, 0.6, 0.6]]), np.array([0.8, 0.9])).round(3).tolist()
    [0.48, 0.0]
    """
    own = np.asarray(own, np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f"scores must give one score per box ({len(boxes)}). Received: {len(scores)}")
    if not len(own) or not len(boxes):
        return np.zeros(len(own))
    overlap = box_iou(cxcywh_to_xyxy(own, dtype=np.float64), cxcywh_to_xyxy(boxes, dtype=np.float64))
    best = np.argmax(overlap, axis=1)
    return scores[best] * overlap[np.arange(len(own)), best]


def _check_share(name: str, value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1]. Received: {value!r}")
