"""Scores of predicted boxes against ground-truth boxes: IoU of the top box, CorLoc, COCO mAP.

All boxes are ``(N, 4)`` arrays ``xmin, ymin, xmax, ymax`` in continuous pixel edges, so a box's
area is ``(xmax - xmin) * (ymax - ymin)`` with no ``+ 1``; IoU is
:func:`groundwork.box_geometry.box_iou` (pairwise, validated boxes).

- **CorLoc**: share of images whose top box (the first one) has IoU >= 0.5 with a ground-truth
  box of that image. An image without a predicted box counts as a miss.
- **Recall over all boxes** and **extra boxes**: every predicted box of a photo matched one-to-one
  to its ground-truth boxes (:func:`match_boxes`): the share of ground-truth boxes found, and the
  predicted boxes that found none.
- **COCO mAP** at IoU 0.5 and averaged over IoU 0.5:0.95, computed by pycocotools on COCO
  objects built in memory (its prints silenced).
- **Score AUROC** (:func:`score_auroc`): how well the boxes' scores rank the right boxes (IoU >=
  0.5 with a ground-truth box) above the wrong ones, the order a reviewer would check them in.

The heatmap scores (MaxBoxAcc) are :mod:`localize.scoring`'s.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence

import numpy as np

from groundwork.box_geometry import box_iou, check_boxes

__all__ = ["V2_IOU_THRESHOLDS", "check_fraction", "check_gt_boxes", "check_same_length", "coco_map", "corloc",
           "match_boxes", "score_auroc", "top_box_iou"]

log = logging.getLogger(__name__)

#: MaxBoxAccV2's IoU thresholds.
V2_IOU_THRESHOLDS = (0.3, 0.5, 0.7)


def top_box_iou(pred_boxes: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray]) -> np.ndarray:
    """Per image, the best IoU of the *first* predicted box with any ground-truth box (0 if none).

    Parameters
    ----------
    pred_boxes : sequence of (N_i, 4) arrays
        Predicted boxes per image, best first.
    gt_boxes : sequence of (M_i, 4) arrays
        Ground-truth boxes per image, same length.

    Returns
    -------
    (n_images,) float64 ndarray

    Raises
    ------
    ValueError
        If the two sequences differ in length or are empty, or a box array is invalid.
    """
    check_same_length(pred_boxes, gt_boxes)
    out = np.zeros(len(gt_boxes), np.float64)
    for i, (pred, gt) in enumerate(zip(pred_boxes, gt_boxes, strict=True)):
        p = check_boxes(pred, f"pred_boxes[{i}]")
        g = check_boxes(gt, f"gt_boxes[{i}]")
        if len(p) and len(g):
            out[i] = box_iou(p[:1], g).max()
    return out


def corloc(pred_boxes: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray], iou_threshold: float = 0.5) -> float:
    """Share of images whose first predicted box has IoU >= ``iou_threshold`` with a gt box.

    Examples
    --------
    >>> corloc([np.array([[0, 0, 10, 10]]), np.zeros((0, 4))],
    ...        [np.array([[1, 1, 10, 10]]), np.array([[0, 0, 5, 5]])])
    0.5
    """
    check_fraction(iou_threshold, "iou_threshold")
    return float(np.mean(top_box_iou(pred_boxes, gt_boxes) >= iou_threshold))


def match_boxes(pred_boxes: np.ndarray, gt_boxes: np.ndarray, *, iou_threshold: float = 0.5,
                pred_labels: Sequence | None = None, gt_labels: Sequence | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """One photo's predicted boxes matched one-to-one to its ground-truth boxes, COCO's way.

    Predicted boxes are taken in the order given (best first); each is matched to the unmatched
    ground-truth box (of the same label, when labels are given) it overlaps most, when that IoU is
    at least ``iou_threshold``.

    Returns
    -------
    pred_matched : (N,) bool ndarray
    gt_matched : (M,) bool ndarray

    Examples
    --------
    >>> pred = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
    >>> [m.tolist() for m in match_boxes(pred, np.array([[0, 0, 10, 10], [20, 20, 29, 29]]))]
    [[True, False, True], [True, True]]
    """
    check_fraction(iou_threshold, "iou_threshold")
    pred = check_boxes(pred_boxes, "pred_boxes")
    gt = check_boxes(gt_boxes, "gt_boxes")
    pred_matched, gt_matched = np.zeros(len(pred), bool), np.zeros(len(gt), bool)
    if not len(pred) or not len(gt):
        return pred_matched, gt_matched
    ious = box_iou(pred, gt)
    if pred_labels is not None and gt_labels is not None:
        same = np.asarray(pred_labels, dtype=object)[:, None] == np.asarray(gt_labels, dtype=object)[None, :]
        ious = np.where(same, ious, -1.0)
    for i in range(len(pred)):
        candidates = np.where(gt_matched, -1.0, ious[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= iou_threshold:
            pred_matched[i] = gt_matched[j] = True
    return pred_matched, gt_matched


def score_auroc(scores: Sequence[float], right: Sequence[bool]) -> float:
    """The chance that a right box scores above a wrong one (ties count half): the area under the
    ROC curve of ``scores`` for ``right``. 0.5 is chance; NaN when every box is right, every box
    is wrong or there is none (nothing to rank).

    Examples
    --------
    >>> score_auroc([0.9, 0.8, 0.3, 0.8], [True, True, False, False])
    0.875
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, np.float64).reshape(-1)
    right = np.asarray(right, bool).reshape(-1)
    if len(scores) != len(right):
        raise ValueError(f"scores and right must have one entry per box. Received {len(scores)} and {len(right)}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite numbers.")
    n_right, n_wrong = int(right.sum()), int((~right).sum())
    if not n_right or not n_wrong:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[right].sum() - n_right * (n_right + 1) / 2) / (n_right * n_wrong))


def check_gt_boxes(gt: object, image_size: tuple[int, int], name: str = "gt_boxes",
                   tolerance: float = 1.0) -> np.ndarray:
    """Validate ground-truth boxes of one image of ``(height, width)``: at least one box, each
    with positive area and inside the image up to ``tolerance`` pixels.

    Raises
    ------
    ValueError
        Naming ``name``, the box and the image size.
    """
    g = check_boxes(gt, name)
    if len(g) == 0:
        raise ValueError(f"{name} is empty: every scored image needs at least one ground-truth box.")
    height, width = image_size
    outside = ((g[:, 0] < -tolerance) | (g[:, 1] < -tolerance)
               | (g[:, 2] > width + tolerance) | (g[:, 3] > height + tolerance))
    if outside.any():
        raise ValueError(f"{name} has boxes outside the {width}x{height} image: {g[outside].tolist()}")
    flat = (g[:, 2] <= g[:, 0]) | (g[:, 3] <= g[:, 1])
    if flat.any():
        raise ValueError(f"{name} has boxes without area: {g[flat].tolist()}")
    return g


def coco_map(
    predictions: Sequence[tuple[np.ndarray, np.ndarray, Sequence[str]]],
    ground_truth: Sequence[tuple[np.ndarray, Sequence[str]]],
    *,
    labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """COCO box mAP via pycocotools, built in memory.

    Parameters
    ----------
    predictions : sequence of (boxes (N, 4), scores (N,), labels (N,))
        Per image, predicted edge boxes, their confidences and class names.
    ground_truth : sequence of (boxes (M, 4), labels (M,))
        Per image (same order), ground-truth edge boxes and class names.
    labels : sequence of str, optional
        The categories; default: the sorted union of all labels. A label outside it is an error.

    Returns
    -------
    dict
        ``{"mAP@0.5": float, "mAP@[.5:.95]": float}``; NaN if there are no ground-truth boxes.
        An image or category without predictions scores 0 for its ground truth.

    Raises
    ------
    ValueError
        If lengths differ or are zero, a per-image array has the wrong length, or a label is unknown.

    Examples
    --------
    >>> gt = [(np.array([[0, 0, 10, 10]]), ["cube"])]
    >>> round(coco_map([(np.array([[0, 0, 10, 10]]), np.array([0.9]), ["cube"])], gt)["mAP@0.5"], 6)
    1.0
    """
    check_same_length(predictions, ground_truth, "predictions", "ground_truth")
    preds, gts, found = [], [], set()
    for i, (item, gt) in enumerate(zip(predictions, ground_truth, strict=True)):
        if len(item) != 3:
            raise ValueError(f"predictions[{i}] must be (boxes, scores, labels). Received {len(item)} items")
        if len(gt) != 2:
            raise ValueError(f"ground_truth[{i}] must be (boxes, labels). Received {len(gt)} items")
        boxes = check_boxes(item[0], f"predictions[{i}] boxes")
        scores = np.asarray(item[1], np.float64).reshape(-1)
        plabels = [str(v) for v in item[2]]
        if len(scores) != len(boxes) or len(plabels) != len(boxes):
            raise ValueError(f"predictions[{i}] must have one score and label per box ({len(boxes)}). "
                             f"Received {len(scores)} scores, {len(plabels)} labels")
        gboxes = check_boxes(gt[0], f"ground_truth[{i}] boxes")
        glabels = [str(v) for v in gt[1]]
        if len(glabels) != len(gboxes):
            raise ValueError(f"ground_truth[{i}] must have one label per box ({len(gboxes)}). "
                             f"Received {len(glabels)}")
        preds.append((boxes, scores, plabels))
        gts.append((gboxes, glabels))
        found.update(plabels, glabels)
    categories = sorted(found) if labels is None else [str(v) for v in labels]
    unknown = sorted(found - set(categories))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the categories {categories}")
    if not any(len(g[0]) for g in gts):
        log.warning("no ground-truth boxes: COCO mAP is undefined (NaN)")
        return {"mAP@0.5": float("nan"), "mAP@[.5:.95]": float("nan")}
    cat_id = {name: k + 1 for k, name in enumerate(categories)}

    def dataset(rows, with_scores):
        anns = []
        for image_id, row in enumerate(rows, start=1):
            boxes, names = row[0], row[-1]
            for j, (box, name) in enumerate(zip(boxes, names, strict=True)):
                w, h = float(box[2] - box[0]), float(box[3] - box[1])
                ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": cat_id[name],
                       "bbox": [float(box[0]), float(box[1]), w, h], "area": w * h, "iscrowd": 0}
                if with_scores:
                    ann["score"] = float(row[1][j])
                anns.append(ann)
        return {"images": [{"id": k} for k in range(1, len(rows) + 1)],
                "categories": [{"id": v, "name": k} for k, v in cat_id.items()],
                "annotations": anns}

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt, coco_dt = COCO(), COCO()
        coco_gt.dataset = dataset(gts, with_scores=False)
        coco_dt.dataset = dataset(preds, with_scores=True)
        coco_gt.createIndex()
        coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {"mAP@0.5": max(float(stats[1]), 0.0), "mAP@[.5:.95]": max(float(stats[0]), 0.0)}


def check_same_length(a: Sequence, b: Sequence, name_a: str = "pred_boxes", name_b: str = "gt_boxes") -> None:
    if len(a) != len(b):
        raise ValueError(f"{name_a} and {name_b} must have the same length (one entry per image). "
                         f"Received {len(a)} and {len(b)}")
    if len(a) == 0:
        raise ValueError(f"{name_a} and {name_b} are empty: nothing to score.")


def check_fraction(value: float, name: str, open_low: bool = False) -> None:
    ok = 0.0 < value <= 1.0 if open_low else 0.0 <= value <= 1.0
    if not ok:
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{name} must be in {interval}. Received: {value!r}")
