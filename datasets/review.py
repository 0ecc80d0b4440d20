"""What a person checks boxes with: ``review.json`` in review order, an overlay per photo, contact sheets.

:func:`write_review` writes them for ``localize`` and ``detect`` alike, in the order of
:func:`review_order`.

:func:`render_overlay` draws one image with its heatmap (jet colormap, blended) and boxes with
label and score; :func:`render_contact_sheets` lays many images out as a grid of thumbnails with
their boxes, lowest confidence first and file names printed small, so hundreds can be scanned
in a minute. Both return RGB uint8 arrays; :func:`write_png` saves one atomically.
Boxes are continuous pixel edges (see :mod:`datasets.annotations`).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from datasets.photo_items import PhotoItem
from groundwork.atomic import write_bytes, write_json
from groundwork.box_geometry import check_boxes
from groundwork.heatmaps import check_heatmap, normalize_heatmap
from groundwork.paths import confined
from groundwork.thread_map import thread_imap, thread_map

__all__ = ["GT_COLOR", "MIN_CONFIDENCE", "PRED_COLOR", "ReviewItem", "joint_confidence", "render_contact_sheets",
           "render_overlay", "review_note", "review_order", "write_png", "write_review"]

log = logging.getLogger(__name__)

#: A photo whose class probability is below this is flagged for review ("low confidence"): by
#: localize and detect. Chosen over the suite's sets (benchmarks/NOTES.md, "Which photos are
#: flagged as doubtful"): at most about one photo in twenty of the model's own classes on the
#: worse set (0-3.7% at 0.9) and four in ten photos of other things (0.37-0.43); 0.5 flagged
#: nothing at all with two classes.
MIN_CONFIDENCE = 0.9


def review_note(boxes: int, confidence: float, min_confidence: float = MIN_CONFIDENCE, *, no_box: str) -> str:
    """Why a photo is flagged for review (``review.json``'s note), or ``""``: it has no box (``no_box``
    says why), its class probability ``confidence`` is below ``min_confidence``, or both.

    Examples
    --------
    >>> review_note(0, 0.42, no_box="empty heatmap")
    'no box: empty heatmap; low confidence (0.42)'
    >>> review_note(1, 0.95, no_box="empty heatmap")
    ''
    """
    reasons = [f"no box: {no_box}"] if boxes == 0 else []
    if confidence < min_confidence:
        reasons.append(f"low confidence ({confidence:.2f})")
    return "; ".join(reasons)

PRED_COLOR = (255, 40, 40)      # RGB: predicted boxes
GT_COLOR = (40, 220, 40)        # RGB: ground-truth boxes
TEXT_COLOR = (255, 255, 255)
BACKGROUND = (32, 32, 32)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class ReviewItem:
    """One image of a contact sheet.

    Attributes
    ----------
    rgb : (H, W, 3) uint8 ndarray
        The image (a thumbnail is enough; see :meth:`shrunk`).
    boxes : (N, 4) ndarray
        Predicted boxes in ``rgb``'s pixels.
    scores : (N,) ndarray
        Their scores; the item's confidence is the highest (no box: lowest possible).
    caption : str
        Printed under the thumbnail (the file name).
    labels : tuple of str
        Optional box labels, one per box.
    confidence : float or None
        Sort key; default ``max(scores)``, ``-inf`` without boxes.
    """

    rgb: np.ndarray
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,)))
    caption: str = ""
    labels: tuple[str, ...] = ()
    confidence: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rgb", _check_rgb(self.rgb, "ReviewItem rgb"))
        boxes = check_boxes(self.boxes, "ReviewItem boxes")
        scores = np.asarray(self.scores, np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise ValueError(f"ReviewItem scores must have one value per box ({len(boxes)}). Received {len(scores)}")
        if self.labels and len(self.labels) != len(boxes):
            raise ValueError(f"ReviewItem labels must be empty or one per box ({len(boxes)}). "
                             f"Received {len(self.labels)}")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", tuple(str(v) for v in self.labels))
        if self.confidence is None:
            object.__setattr__(self, "confidence", float(scores.max()) if len(scores) else -math.inf)

    def shrunk(self, max_side: int) -> ReviewItem:
        """This item with the image shrunk to ``max_side`` (longer side) and boxes scaled with it."""
        height, width = self.rgb.shape[:2]
        factor = min(1.0, max_side / max(height, width))
        if factor == 1.0:
            return self
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = cv2.resize(self.rgb, size, interpolation=cv2.INTER_AREA)
        sx, sy = size[0] / width, size[1] / height
        return ReviewItem(small, self.boxes * np.array([sx, sy, sx, sy]), self.scores, self.caption,
                          self.labels, self.confidence)


def render_overlay(
    rgb: np.ndarray,
    *,
    heatmap: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    gt_boxes: np.ndarray | None = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """The image with its heatmap blended in (jet) and boxes drawn with label and score.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 ndarray
    heatmap : (h, w) array_like, optional
        Resized to the image (bilinear) and min-max normalised; flat or NaN maps are not drawn.
    boxes : (N, 4) array_like, optional
        Predicted boxes (red), in image pixels.
    scores : (N,) array_like, optional
    labels : sequence of N str, optional
    gt_boxes : (M, 4) array_like, optional
        Ground-truth boxes (green).
    alpha : float in [0, 1]
        Weight of the heatmap colours.

    Returns
    -------
    (H, W, 3) uint8 ndarray
        RGB.

    Raises
    ------
    TypeError, ValueError
        On a non-uint8 or non-(H, W, 3) image, invalid boxes, lengths that differ, or ``alpha``
        outside [0, 1].

    Examples
    --------
    >>> out = render_overlay(np.zeros((32, 48, 3), np.uint8), boxes=[[4, 4, 20, 20]], scores=[0.9])
    >>> out.shape, out.dtype
    ((32, 48, 3), dtype('uint8'))
    """
    image = _check_rgb(rgb, "rgb")
    if isinstance(alpha, bool) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]. Received: alpha={alpha!r}")
    out = image.copy()
    height, width = image.shape[:2]
    if heatmap is not None:
        norm = normalize_heatmap(check_heatmap(heatmap))
        if norm is not None:
            norm = cv2.resize(norm.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
            colors = cv2.applyColorMap(np.round(norm.clip(0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
            colors = cv2.cvtColor(colors, cv2.COLOR_BGR2RGB)
            out = cv2.addWeighted(image, 1.0 - float(alpha), colors, float(alpha), 0.0)
    thickness = max(1, round(max(height, width) / 320))
    text_scale = max(0.35, max(height, width) / 1280)
    if gt_boxes is not None:
        for box in check_boxes(gt_boxes, "gt_boxes"):
            _draw_box(out, box, GT_COLOR, thickness)
    pred = check_boxes(boxes if boxes is not None else np.zeros((0, 4)), "boxes")
    score_arr = None if scores is None else np.asarray(scores, np.float64).reshape(-1)
    if score_arr is not None and len(score_arr) != len(pred):
        raise ValueError(f"scores must have one value per box ({len(pred)}). Received {len(score_arr)}")
    if labels is not None and len(labels) != len(pred):
        raise ValueError(f"labels must have one entry per box ({len(pred)}). Received {len(labels)}")
    for i, box in enumerate(pred):
        _draw_box(out, box, PRED_COLOR, thickness)
        text = " ".join(t for t in (
            str(labels[i]) if labels is not None else "",
            f"{score_arr[i]:.2f}" if score_arr is not None else "") if t)
        if text:
            _draw_label(out, text, int(box[0]), int(box[1]), PRED_COLOR, text_scale)
    return out


def render_contact_sheets(
    items: Sequence[ReviewItem],
    *,
    columns: int = 8,
    rows: int = 6,
    thumb_size: int = 160,
) -> list[np.ndarray]:
    """Grids of thumbnails with their boxes, lowest confidence first.

    Parameters
    ----------
    items : sequence of ReviewItem
    columns, rows : int >= 1
        Thumbnails per sheet row and rows per sheet.
    thumb_size : int >= 16
        Cell size in pixels; each image is shrunk to fit (aspect kept) above a caption strip.

    Returns
    -------
    list of (rows * (thumb_size + caption), columns * thumb_size, 3) uint8 ndarrays
        One per ``columns * rows`` items (the last sheet may have fewer rows). Each cell shows
        the thumbnail, its boxes with scores, and the caption with the confidence.

    Raises
    ------
    TypeError
        If an item is not a :class:`ReviewItem`.
    ValueError
        If ``items`` is empty or a size parameter is out of range.
    """
    for name, value, low in (("columns", columns, 1), ("rows", rows, 1), ("thumb_size", thumb_size, 16)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}. Received: {name}={value!r}")
    if len(items) == 0:
        raise ValueError("items is empty: nothing to put on a contact sheet.")
    for item in items:
        if not isinstance(item, ReviewItem):
            raise TypeError(f"items must be ReviewItem instances. Received: {type(item).__name__}")
    ordered = sorted(items, key=lambda it: (it.confidence, it.caption))
    caption_h = 14
    cell_h = thumb_size + caption_h
    per_sheet = columns * rows
    sheets = []
    for start in range(0, len(ordered), per_sheet):
        chunk = ordered[start:start + per_sheet]
        n_rows = math.ceil(len(chunk) / columns)
        sheet = np.full((n_rows * cell_h, columns * thumb_size, 3), BACKGROUND, np.uint8)
        for k, item in enumerate(chunk):
            r, c = divmod(k, columns)
            _draw_cell(sheet, item, r * cell_h, c * thumb_size, thumb_size, caption_h)
        sheets.append(sheet)
    return sheets


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG, atomically; returns the path.

    Raises
    ------
    TypeError, ValueError
        If ``rgb`` is not an (H, W, 3) uint8 array.
    """
    image = _check_rgb(rgb, "rgb")
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 encodes any valid uint8 image
        raise ValueError(f"could not encode a {image.shape} image as PNG")
    out = write_bytes(path, data.tobytes())
    log.info("wrote %s (%d bytes)", out, len(data))
    return out


def _draw_cell(sheet: np.ndarray, item: ReviewItem, top: int, left: int, size: int, caption_h: int) -> None:
    thumb = item.shrunk(size)
    h, w = thumb.rgb.shape[:2]
    y0, x0 = top + (size - h), left + (size - w) // 2  # bottom-aligned, over its caption
    cell = thumb.rgb.copy()
    for i, box in enumerate(thumb.boxes):
        _draw_box(cell, box, PRED_COLOR, 1)
        _draw_label(cell, f"{thumb.scores[i]:.2f}", int(box[0]), int(box[1]), PRED_COLOR, 0.3)
    sheet[y0:y0 + h, x0:x0 + w] = cell
    conf = "no box" if not math.isfinite(item.confidence) else f"{item.confidence:.2f}"
    text = f"{conf} {item.caption}"
    max_chars = max(4, size // 6)
    if len(text) > max_chars:  # cut the middle: names differ at their ends (IMG_0123.JPG)
        head = (max_chars - 2) // 2
        text = text[:head] + ".." + text[len(text) - (max_chars - 2 - head):]
    cv2.putText(sheet, text, (left + 2, top + size + caption_h - 4), FONT, 0.3, TEXT_COLOR, 1, cv2.LINE_AA)


def _draw_box(image: np.ndarray, box: np.ndarray, color: tuple[int, int, int], thickness: int) -> None:
    h, w = image.shape[:2]
    x0, y0 = int(np.clip(np.floor(box[0]), 0, w - 1)), int(np.clip(np.floor(box[1]), 0, h - 1))
    x1, y1 = int(np.clip(np.ceil(box[2]) - 1, 0, w - 1)), int(np.clip(np.ceil(box[3]) - 1, 0, h - 1))
    cv2.rectangle(image, (x0, y0), (x1, y1), color, thickness)


def _draw_label(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], scale: float) -> None:
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    h, w = image.shape[:2]
    x = int(np.clip(x, 0, max(0, w - tw - 2)))
    y = int(np.clip(y, th + base + 2, h))  # above the box, inside the image
    cv2.rectangle(image, (x, y - th - base - 2), (x + tw + 2, y), color, cv2.FILLED)
    cv2.putText(image, text, (x + 1, y - base - 1), FONT, scale, TEXT_COLOR, 1, cv2.LINE_AA)


def _check_rgb(rgb: object, name: str) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 (H, W, 3) image. Received dtype: {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ValueError(f"{name} must be an (H, W, 3) image. Received shape: {arr.shape}")
    return np.ascontiguousarray(arr)


def joint_confidence(classifier: Sequence[float], box_model: Sequence[float]) -> np.ndarray:
    """Each photo's confidence for the review order from two that rank different mistakes: the
    mean of its rank fractions (0 the least confident, 1 the most; ties share their mean rank).

    ``classifier`` is the classifier's probability of the photo's class, ``box_model`` the box
    model's confidence in its best box in the photo (0 where it keeps none). The classifier's
    doubt finds photos unlike the rest of their class; the box model's, photos whose object it
    boxes in no way it learned. Their ranks are averaged rather than their values, whose scales
    differ. Chosen by ``benchmarks/review_loop.py`` (README, "What a review buys").

    Examples
    --------
    >>> joint_confidence([0.99, 0.6, 0.9], [0.8, 0.9, 0.3]).round(3).tolist()
    [0.75, 0.5, 0.25]
    """
    from scipy.stats import rankdata

    a = np.asarray(classifier, np.float64).reshape(-1)
    b = np.asarray(box_model, np.float64).reshape(-1)
    if len(a) != len(b):
        raise ValueError(f"classifier and box_model must give one confidence per photo. Received: {len(a)} and "
                         f"{len(b)}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("confidences must be finite numbers.")
    if len(a) < 2:
        return np.ones(len(a))
    return ((rankdata(a) - 1) + (rankdata(b) - 1)) / (2 * (len(a) - 1))


def review_order(confidence: Sequence[float], groups: Sequence[int | None] | None = None) -> np.ndarray:
    """The order a person checks photos in: one photo of every capture group before a second of
    any, the groups most in doubt first, each group's least confident photo first.

    A capture group's photos are shots of one scene (a burst). Once one of them is corrected, the
    localizer rerun with it boxes the others alike, so a second photo of a group waits until every
    group has shown one. A group's doubt is the summed ``1 - confidence`` of its photos (about how
    many of them the classifier doubts); the groups take their turns by it, most first, and ties
    go to the least confident photo. Photos without a group are groups of one, so without groups
    this is lowest confidence first (``benchmarks/NOTES.md``, "The review order by capture group").

    Parameters
    ----------
    confidence : (N,) floats
        Each photo's confidence (the classifier's probability of its class, or the box's).
    groups : N ints or None, optional
        Each photo's capture group (:attr:`datasets.photo_items.PhotoItem.group`), None for none.

    Returns
    -------
    (N,) int ndarray
        Photo indices in review order.

    Raises
    ------
    ValueError
        If ``groups`` does not give one entry per photo.

    Examples
    --------
    >>> review_order([0.9, 0.2, 0.5]).tolist()
    [1, 2, 0]
    >>> review_order([0.3, 0.4, 0.2, 0.9], groups=[7, 7, None, 8]).tolist()  # group 7 doubts most
    [0, 2, 3, 1]
    """
    confidence = np.asarray(confidence, np.float64).reshape(-1)
    n = len(confidence)
    if groups is None:
        groups = [None] * n
    if len(groups) != n:
        raise ValueError(f"groups must give one capture group per photo ({n}). Received: {len(groups)}")
    keys = [("photo", i) if g is None else ("group", int(g)) for i, g in enumerate(groups)]
    by_confidence = np.argsort(confidence, kind="stable")
    doubt: dict[tuple, float] = {}
    turn = np.zeros(n, np.int64)
    shown: dict[tuple, int] = {}
    for i in by_confidence:
        doubt[keys[i]] = doubt.get(keys[i], 0.0) + 1.0 - float(confidence[i])
        turn[i] = shown.get(keys[i], 0)
        shown[keys[i]] = turn[i] + 1
    rank = np.empty(n, np.int64)
    rank[by_confidence] = np.arange(n)
    return np.asarray(sorted(range(n), key=lambda i: (turn[i], -doubt[keys[i]], rank[i])), np.int64)


def write_review(out_dir: Path, items: Sequence[PhotoItem], images: Sequence[np.ndarray],
                 boxes: Sequence[np.ndarray], scores: Sequence[np.ndarray], classes: Sequence[str],
                 confidence: np.ndarray, notes: Sequence[str], *, heatmaps: Sequence[np.ndarray] | None = None,
                 overlays: bool = True, progress: bool = True) -> None:
    """``review.json`` (in :func:`review_order`), contact sheets (lowest confidence first) and (with
    ``overlays``) one picture per image: its box, class and score, over its heatmap when given."""
    from groundwork.progress import progress_bar

    order = review_order(confidence, [item.group for item in items])
    write_json(out_dir / "review.json", [
        {"image": items[i].name, "class": classes[i], "confidence": float(confidence[i]),
         "box": boxes[i][0].tolist() if len(boxes[i]) else None, "boxes": len(boxes[i]), "note": notes[i]}
        for i in order])
    # Drawing and PNG encoding run in OpenCV, which releases the GIL: every core draws pictures.
    review = thread_map(lambda i: ReviewItem(
        images[i], boxes[i], scores[i], caption=Path(items[i].name).name, labels=(classes[i],) * len(boxes[i]),
        confidence=float(confidence[i])).shrunk(200), range(len(items)))
    sheets_dir = out_dir / "contact_sheets"
    shutil.rmtree(sheets_dir, ignore_errors=True)
    sheets = render_contact_sheets(review)
    thread_map(lambda k: write_png(sheets_dir / f"sheet_{k + 1:03d}.png", sheets[k]), range(len(sheets)))
    if overlays:
        def overlay(i: int) -> Path:
            picture = render_overlay(images[i], heatmap=None if heatmaps is None else heatmaps[i], boxes=boxes[i],
                                     scores=scores[i], labels=[classes[i]] * len(boxes[i]))
            return write_png(confined(out_dir / "overlays", Path(items[i].name).with_suffix(".png"),
                                      source=f"the image name {items[i].name!r}"), picture)

        for _ in progress_bar(thread_imap(overlay, range(len(items))), total=len(items), desc="overlays", unit="img",
                              enabled=progress):
            pass
