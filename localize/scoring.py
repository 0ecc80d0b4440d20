"""Scores of class heatmaps against ground-truth boxes: MaxBoxAcc and MaxBoxAccV2 (the box scores,
IoU, CorLoc and COCO mAP, are :mod:`groundwork.box_scores`).

All boxes are ``(N, 4)`` arrays ``xmin, ymin, xmax, ymax`` in continuous pixel edges (see
:mod:`localize.boxes`), so a box's area is ``(xmax - xmin) * (ymax - ymin)`` with no ``+ 1``;
IoU is :func:`groundwork.box_geometry.box_iou` (pairwise, validated boxes).
(Choe et al.'s reference code works on inclusive indices and adds 1; on boxes tens of pixels
wide the two differ in the third decimal of IoU.)

Metrics
-------
- **BoxAcc(tau, delta)** (Choe et al., "Evaluating Weakly Supervised Object Localization
  Methods Right", CVPR 2020): share of images where, with the heatmap thresholded at ``tau``,
  the best IoU between predicted and ground-truth boxes is >= ``delta``.
  **MaxBoxAcc** = max over tau of BoxAcc(tau, 0.5) with the largest component's box only;
  **MaxBoxAccV2** = mean over delta in (0.3, 0.5, 0.7) of max over tau of BoxAcc(tau, delta),
  with boxes from all components (the best tau is picked per delta).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from groundwork.box_geometry import box_iou
from groundwork.box_scores import (
    V2_IOU_THRESHOLDS,
    check_fraction,
    check_gt_boxes,
    check_same_length,
)
from groundwork.heatmaps import check_heatmap
from groundwork.thread_map import thread_map
from localize.boxes import boxes_at_thresholds

__all__ = ["BoxAccuracy", "CAM_THRESHOLDS", "box_accuracy", "max_box_acc", "max_box_acc_v2"]

log = logging.getLogger(__name__)

#: Choe et al.'s CAM thresholds: 0.00, 0.01, ..., 0.99.
CAM_THRESHOLDS = tuple(round(0.01 * i, 2) for i in range(100))


@dataclass(frozen=True)
class BoxAccuracy:
    """BoxAcc over CAM thresholds (rows) and IoU thresholds (columns), Choe et al.'s protocol.

    Attributes
    ----------
    thresholds : tuple of float
        CAM thresholds tau (fractions of the normalised map).
    iou_thresholds : tuple of float
        IoU thresholds delta.
    accuracy : (len(thresholds), len(iou_thresholds)) ndarray
        BoxAcc(tau, delta).
    multi_contour : bool
        Whether all components' boxes counted (V2) or only the largest's.
    """

    thresholds: tuple[float, ...]
    iou_thresholds: tuple[float, ...]
    accuracy: np.ndarray
    multi_contour: bool

    @property
    def best_thresholds(self) -> tuple[float, ...]:
        """Per IoU threshold, the CAM threshold with the highest BoxAcc (the lowest on ties)."""
        return tuple(self.thresholds[int(i)] for i in np.argmax(self.accuracy, axis=0))

    @property
    def max_accuracy(self) -> tuple[float, ...]:
        """Per IoU threshold, max over CAM thresholds of BoxAcc."""
        return tuple(float(v) for v in self.accuracy.max(axis=0))

    @property
    def mean_max_accuracy(self) -> float:
        """Mean over IoU thresholds of :attr:`max_accuracy` (MaxBoxAccV2 for (0.3, 0.5, 0.7))."""
        return float(np.mean(self.max_accuracy))


def box_accuracy(
    heatmaps: Sequence[np.ndarray],
    gt_boxes: Sequence[np.ndarray],
    *,
    thresholds: Sequence[float] = CAM_THRESHOLDS,
    iou_thresholds: Sequence[float] = V2_IOU_THRESHOLDS,
    multi_contour: bool = True,
    image_sizes: Sequence[tuple[int, int]] | None = None,
) -> BoxAccuracy:
    """BoxAcc of heatmaps against ground-truth boxes at every CAM and IoU threshold.

    Parameters
    ----------
    heatmaps : sequence of (H_i, W_i) arrays
        One class map per image. A flat or NaN map gives no box (a miss at every threshold).
    gt_boxes : sequence of (M_i, 4) arrays
        Ground-truth edge boxes per image, in image pixels; at least one per image.
    thresholds : sequence of float in [0, 1]
        CAM thresholds tau.
    iou_thresholds : sequence of float in (0, 1]
        IoU thresholds delta.
    multi_contour : bool
        True: every component's box counts (MaxBoxAccV2); False: the largest only (MaxBoxAcc).
    image_sizes : sequence of (height, width), optional
        Image size per image if it differs from the heatmap's; boxes are scaled to it.

    Returns
    -------
    BoxAccuracy

    Raises
    ------
    ValueError
        If lengths differ or are zero, a threshold is outside its range, an image has no gt box,
        or a gt box lies outside its image (by more than 1 px).
    TypeError
        If a heatmap is not a real-valued array.
    """
    check_same_length(heatmaps, gt_boxes, "heatmaps")
    taus = tuple(float(t) for t in thresholds)
    deltas = tuple(float(d) for d in iou_thresholds)
    if not taus or not deltas:
        raise ValueError(f"thresholds and iou_thresholds must not be empty. Received: {taus}, {deltas}")
    for t in taus:
        check_fraction(t, "thresholds")
    for d in deltas:
        check_fraction(d, "iou_thresholds", open_low=True)
    if image_sizes is not None and len(image_sizes) != len(heatmaps):
        raise ValueError(f"image_sizes must have one entry per heatmap ({len(heatmaps)}). "
                         f"Received {len(image_sizes)}")
    mode = "all" if multi_contour else "largest"
    checked = []
    for i, (heatmap, gt) in enumerate(zip(heatmaps, gt_boxes, strict=True)):
        h = check_heatmap(heatmap, f"heatmaps[{i}]")
        size = tuple(image_sizes[i]) if image_sizes is not None else h.shape
        checked.append((h, size, check_gt_boxes(gt, size, f"gt_boxes[{i}]")))

    def hits(one) -> np.ndarray:  # (thresholds, IoU thresholds) 0/1 for one image
        h, size, g = one
        out = np.zeros((len(taus), len(deltas)), np.int64)
        for t, boxes in enumerate(boxes_at_thresholds(h, taus, mode=mode, image_size=size)):
            if len(boxes):
                out[t] = box_iou(boxes, g).max() >= np.asarray(deltas)
        return out

    # A hundred thresholds per image: every core takes images (OpenCV and numpy release the GIL).
    correct = np.sum(thread_map(hits, checked), axis=0, dtype=np.int64)  # never empty: checked above
    return BoxAccuracy(taus, deltas, correct / len(heatmaps), bool(multi_contour))


def max_box_acc(heatmaps: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray], **kwargs) -> float:
    """MaxBoxAcc: best-threshold BoxAcc at IoU 0.5, largest component only.

    Keyword arguments ``thresholds`` and ``image_sizes`` go to :func:`box_accuracy`.
    """
    result = box_accuracy(heatmaps, gt_boxes, iou_thresholds=(0.5,), multi_contour=False, **kwargs)
    return result.max_accuracy[0]


def max_box_acc_v2(heatmaps: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray], **kwargs) -> float:
    """MaxBoxAccV2: mean over IoU 0.3/0.5/0.7 of best-threshold BoxAcc, all components' boxes.

    Keyword arguments ``thresholds`` and ``image_sizes`` go to :func:`box_accuracy`.
    """
    result = box_accuracy(heatmaps, gt_boxes, iou_thresholds=V2_IOU_THRESHOLDS, multi_contour=True, **kwargs)
    return result.mean_max_accuracy


