"""Score a file of predicted boxes against a file of ground-truth boxes (``boxstrap evaluate-boxes``).

Both files may be in any format :mod:`datasets.annotations` reads (VOC, COCO, YOLO, Create ML,
boxes JSON); the metrics are those of :mod:`groundwork.box_scores` (MaxBoxAcc, in :mod:`localize.scoring`,
needs heatmaps and is computed by ``boxstrap localize`` and the benchmark instead):

- CorLoc and mean IoU of each image's top box (highest score; file order without scores),
- BoxAcc at IoU 0.3/0.5/0.7 with *any* predicted box (Choe et al.'s V2 rule at a fixed threshold),
  and their mean,
- recall over all ground-truth boxes at IoU 0.5 (each predicted box, best first, matched to at most
  one ground-truth box of its class) and the extra boxes per photo (predicted boxes that matched
  none): what one box per photo misses on photos of several objects, and what fragments cost,
- COCO mAP@0.5 and mAP@[.5:.95] (a box without a score counts as score 1),
- the AUROC of the scores for a right box (IoU >= 0.5 with a ground-truth box of its class in
  its photo; a second box on a found object is right too): how well they put the wrong boxes
  first for a reviewer.

Images are matched by the path the files give them; when the two files live in different
folders, by the resolved path, then by a file name that is unique on both sides.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from groundwork.box_geometry import box_iou
from groundwork.box_scores import V2_IOU_THRESHOLDS, coco_map, match_boxes, score_auroc, top_box_iou

__all__ = ["BoxEvaluation", "evaluate_annotations", "evaluate_box_files", "match_photos"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoxEvaluation:
    """Scores of predicted boxes against ground truth (see the module docstring)."""

    n_images: int
    n_scored: int
    n_gt_boxes: int
    n_pred_boxes: int
    n_unmatched_pred: int
    corloc: float
    mean_iou: float
    box_acc: tuple[tuple[float, float], ...]
    map50: float
    map50_95: float
    recall50: float = float("nan")
    extra_per_photo: float = float("nan")
    score_auroc: float = float("nan")
    n_wrong_boxes: int = 0

    def rows(self) -> list[tuple[str, str]]:
        """(metric, value) rows for a printed table."""
        out = [
            ("ground-truth images", str(self.n_images)),
            ("  with boxes (scored for CorLoc/IoU/BoxAcc)", str(self.n_scored)),
            ("ground-truth boxes", str(self.n_gt_boxes)),
            ("predicted boxes", str(self.n_pred_boxes)),
            ("predicted images not in ground truth (ignored)", str(self.n_unmatched_pred)),
            ("CorLoc (top box IoU >= 0.5)", f"{self.corloc:.3f}"),
            ("mean IoU of the top box", f"{self.mean_iou:.3f}"),
        ]
        out += [(f"BoxAcc@{delta:g} (any box)", f"{acc:.3f}") for delta, acc in self.box_acc]
        out += [
            ("BoxAcc mean over IoU " + "/".join(f"{d:g}" for d, _ in self.box_acc),
             f"{np.mean([a for _, a in self.box_acc]):.3f}"),
            ("recall over all boxes (IoU >= 0.5, one-to-one)", f"{self.recall50:.3f}"),
            ("extra boxes per photo (matching no box)", f"{self.extra_per_photo:.3f}"),
            ("COCO mAP@0.5", f"{self.map50:.3f}"),
            ("COCO mAP@[.5:.95]", f"{self.map50_95:.3f}"),
            (f"AUROC of the scores, right boxes above the {self.n_wrong_boxes} wrong (IoU < 0.5)",
             f"{self.score_auroc:.3f}"),
        ]
        return out

    def to_dict(self) -> dict:
        return {"n_images": self.n_images, "n_scored": self.n_scored, "n_gt_boxes": self.n_gt_boxes,
                "n_pred_boxes": self.n_pred_boxes, "n_unmatched_pred": self.n_unmatched_pred,
                "corloc": self.corloc, "mean_iou": self.mean_iou,
                "box_acc": {f"{d:g}": a for d, a in self.box_acc},
                "map50": self.map50, "map50_95": self.map50_95, "recall50": self.recall50,
                "extra_per_photo": self.extra_per_photo, "score_auroc": self.score_auroc,
                "n_wrong_boxes": self.n_wrong_boxes}


def evaluate_box_files(pred: str | os.PathLike, gt: str | os.PathLike, *, pred_format: str | None = None,
                       gt_format: str | None = None) -> BoxEvaluation:
    """Read both annotation files and score ``pred`` against ``gt``.

    Raises
    ------
    FileNotFoundError
        If a file is missing.
    ValueError
        If a file is broken (bad JSON, boxes outside their image, missing keys: the readers'
        messages), ``pred`` uses none of the labels ``gt`` knows, or no image matches.

    Notes
    -----
    Ground truth for some of the classes (a user who boxed a few photos of one class) is scored as
    it is: ``pred``'s boxes of the other classes are boxes of another class there (they find no
    true box), and a warning names those labels.
    """
    from datasets.annotations import read_annotations

    gt_anns = read_annotations(gt, gt_format)
    known = sorted({b.label for a in gt_anns for b in a.boxes} | {a.label for a in gt_anns if a.label})
    try:
        pred_anns = read_annotations(pred, pred_format, labels=known)
    except ValueError as error:
        if "label" not in str(error):
            raise
        hint = ValueError(f"{error}\nThe ground truth {gt} knows the labels {known}; "
                          "are the two files about the same classes?")
        try:
            pred_anns = read_annotations(pred, pred_format)
        except ValueError:
            raise hint from None
        used = {b.label for a in pred_anns for b in a.boxes} | {a.label for a in pred_anns if a.label}
        if not used & set(known):
            raise hint from None
        others = sorted(used - set(known))
        count = sum(b.label in others for a in pred_anns for b in a.boxes)
        log.warning("%s has labels the ground truth %s does not know: %s (%d boxes). The ground truth is "
                    "taken to hold only its own classes %s: boxes of the others count as boxes of another "
                    "class (they find no true box).", pred, gt, ", ".join(map(repr, others)), count, known)
        known = known + others
    return evaluate_annotations(pred_anns, gt_anns, pred_root=_root(pred), gt_root=_root(gt), labels=known)


def evaluate_annotations(pred: Sequence, gt: Sequence, *, pred_root: Path | None = None,
                         gt_root: Path | None = None, labels: Sequence[str] | None = None) -> BoxEvaluation:
    """Score ``ImageAnnotation`` lists (see :func:`evaluate_box_files`); roots resolve image paths.

    Raises
    ------
    ValueError
        If ``gt`` is empty or no predicted image matches a ground-truth image.
    """
    if len(gt) == 0:
        raise ValueError("the ground truth holds no images: nothing to score.")
    match = match_photos(pred, gt, pred_root=pred_root, gt_root=gt_root)
    if pred and not any(m is not None for m in match):
        raise ValueError(f"no predicted image matches a ground-truth image (e.g. predicted {pred[0].image!r}, "
                         f"ground truth {gt[0].image!r}); are the two files about the same images?")
    used = {m for m in match if m is not None}
    preds, gts, tops, boxes_all = [], [], [], []
    for g, m in zip(gt, match, strict=True):
        gboxes = g.xyxy()
        if m is None:
            pboxes, pscores, plabels = np.zeros((0, 4)), np.zeros((0,)), ()
        else:
            p = pred[m]
            order = np.argsort(-np.nan_to_num(p.scores(), nan=-np.inf), kind="stable")
            pboxes = p.xyxy()[order]
            pscores = np.nan_to_num(p.scores(), nan=1.0)[order]
            plabels = tuple(np.asarray(p.labels(), dtype=object)[order])
        preds.append((pboxes, pscores, plabels))
        gts.append((gboxes, g.labels()))
        if len(gboxes):
            tops.append(pboxes)
            boxes_all.append((pboxes, gboxes))
    n_scored = len(boxes_all)
    if n_scored:
        ious = top_box_iou(tops, [g for _, g in boxes_all])
        best = np.array([box_iou(p, g).max() if len(p) else 0.0 for p, g in boxes_all])
        corloc, mean_iou = float(np.mean(ious >= 0.5)), float(np.mean(ious))
        box_acc = tuple((d, float(np.mean(best >= d))) for d in V2_IOU_THRESHOLDS)
    else:
        log.warning("no ground-truth image has a box: CorLoc, IoU and BoxAcc are undefined")
        corloc = mean_iou = float("nan")
        box_acc = tuple((d, float("nan")) for d in V2_IOU_THRESHOLDS)
    maps = coco_map(preds, gts, labels=labels)
    found = [match_boxes(p, g, pred_labels=pl, gt_labels=gl) for (p, _, pl), (g, gl) in zip(preds, gts, strict=True)]
    n_gt_boxes = sum(len(g[0]) for g in gts)
    recall50 = sum(int(f[1].sum()) for f in found) / n_gt_boxes if n_gt_boxes else float("nan")
    extra = sum(int((~f[0]).sum()) for f in found) / len(gt)
    right = np.concatenate([_right_boxes(p, pl, g, gl) for (p, _, pl), (g, gl) in zip(preds, gts, strict=True)])
    scores = np.concatenate([s for _, s, _ in preds])
    return BoxEvaluation(
        n_images=len(gt), n_scored=n_scored, n_gt_boxes=sum(len(g[0]) for g in gts),
        n_pred_boxes=sum(len(p[0]) for p in preds), n_unmatched_pred=len(pred) - len(used),
        corloc=corloc, mean_iou=mean_iou, box_acc=box_acc,
        map50=maps["mAP@0.5"], map50_95=maps["mAP@[.5:.95]"], recall50=recall50, extra_per_photo=extra,
        score_auroc=score_auroc(scores, right), n_wrong_boxes=int((~right).sum()),
    )


def _right_boxes(pred: np.ndarray, pred_labels: Sequence, gt: np.ndarray, gt_labels: Sequence) -> np.ndarray:
    """Which predicted boxes overlap a ground-truth box of their label by IoU >= 0.5."""
    if not len(pred) or not len(gt):
        return np.zeros(len(pred), bool)
    same = np.asarray(pred_labels, dtype=object)[:, None] == np.asarray(gt_labels, dtype=object)[None, :]
    return np.any((box_iou(pred, gt) >= 0.5) & same, axis=1)


def match_photos(pred: Sequence, gt: Sequence, *, pred_root: Path | None = None,
                 gt_root: Path | None = None) -> list[int | None]:
    """For each ground-truth image, the index of its predicted image (or ``None``).

    Tried in order: the same path string; the same resolved path (each relative to its file's
    folder); the same file name, when that name is unique on both sides.
    """
    by_name = {p.image: i for i, p in enumerate(pred)}
    by_path = {}
    if pred_root is not None and gt_root is not None:
        by_path = {os.path.normpath(pred_root / p.image): i for i, p in enumerate(pred)}
    base_pred = _unique_basenames([p.image for p in pred])
    base_gt = _unique_basenames([g.image for g in gt])
    out: list[int | None] = []
    for g in gt:
        i = by_name.get(g.image)
        if i is None and by_path:
            i = by_path.get(os.path.normpath(gt_root / g.image))
        if i is None:
            name = Path(g.image).name
            if name in base_gt:
                i = base_pred.get(name)
        out.append(i)
    missing = sum(i is None for i in out)
    if missing:
        log.warning("%d of %d ground-truth images have no predictions (they count as misses)", missing, len(gt))
    return out


def _unique_basenames(paths: Sequence[str]) -> dict[str, int]:
    seen: dict[str, int] = {}
    dup = set()
    for i, p in enumerate(paths):
        name = Path(p).name
        if name in seen:
            dup.add(name)
        seen[name] = i
    return {k: v for k, v in seen.items() if k not in dup}


def _root(path: str | os.PathLike) -> Path:
    path = Path(path).resolve()
    return path if path.is_dir() else path.parent
