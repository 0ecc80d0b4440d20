"""The cell localizer: what the object looks like, learned from the few boxes a user drew.

Choe et al. (CVPR 2020, "Evaluating Weakly Supervised Object Localization Methods Right")
found that no weakly supervised method beat a few-shot baseline trained on the handful of fully
boxed images the weak methods only tune their threshold on. boxstrap asks for those boxes
(``boxes.json`` / ``valid_boxes.json`` beside the class folders, or ``--ground-truth``); this
module spends them on more than one number.

Each cell of the backbone's feature grid is one sample: its descriptor (what the class-map head
reads: EfficientNet-Lite0's block 10 and its context block 13, averaged with the mirrored photo's)
and the image's class-map value there; its target is the fraction of the cell inside the hand
boxes (all of a photo's objects). An L2-regularised logistic regression (fitted with SciPy's L-BFGS) learns
from those samples which cells are object: the class map's evidence and the descriptors' are
weighed by the fit, not by a rule. Its map (the probability that a cell is object) is boxed like a
class map: thresholded at a threshold calibrated on maps of images the fit did not see (an inner
k-fold over capture groups, :func:`fit_cell_localizer`), and cut into a box either as the
thresholded region or by GrabCut, whichever boxed those held-out maps better (GrabCut follows an
object's edges on a plain floor and leaks into clutter).

Everything here is numpy in, numpy out; :func:`save_cell_localizer` and
:func:`load_cell_localizer` keep a fitted localizer as ``cell_localizer.json`` in the model
directory, so ``boxstrap localize MODEL new_photos`` uses it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from groundwork.config import load_config, save_config

__all__ = ["CellLocalizer", "FILENAME", "cell_targets", "choose_cut", "cross_fit", "fit_cell_localizer",
           "group_folds", "load_cell_localizer", "save_cell_localizer"]

log = logging.getLogger(__name__)

FILENAME = "cell_localizer.json"
#: L2 penalty on the standardised descriptors' weights (per sample). With 20 hand boxes, over the
#: suite of real photo sets (benchmarks/NOTES.md): 1.0 against 0.1 equal on the block photos and
#: better on the animal photos (0.83 against 0.70 CorLoc with the context layer's descriptors).
DEFAULT_L2 = 1.0
CUTS = ("cam", "grabcut")
DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class CellLocalizer:
    """A fitted cell localizer; saved as ``cell_localizer.json`` beside the model it belongs to.

    Attributes
    ----------
    mean, scale : tuple of float
        Standardisation of the cell inputs (``D`` descriptor channels, then the class map).
    coef : tuple of float
        Logistic-regression weights on the standardised inputs.
    intercept : float
    threshold : float in [0, 1]
        Where the min-max normalised map is boxed (calibrated on out-of-fold maps).
    n_boxes : int
        Hand boxes it was fitted on.
    l2 : float
        The penalty it was fitted with.
    model_sha256 : str
        The classifier whose descriptors it reads ("" when not tied to a file).
    cut : {"cam", "grabcut"}
        How its maps are cut into boxes: the thresholded region, or GrabCut seeded by the map;
        chosen on the held-out maps when the photos were given to :func:`fit_cell_localizer`.
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    n_boxes: int
    l2: float = DEFAULT_L2
    model_sha256: str = ""
    cut: str = "grabcut"

    def __post_init__(self) -> None:
        if self.cut not in CUTS:
            raise ValueError(f"cut must be one of {CUTS}. Received: {self.cut!r}")
        for name in ("mean", "scale", "coef"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        d = len(self.coef)
        if d < 2 or len(self.mean) != d or len(self.scale) != d:
            raise ValueError(f"mean, scale and coef must have one value per input (>= 2). Received lengths: "
                             f"{len(self.mean)}, {len(self.scale)}, {d}")
        values = np.array([*self.mean, *self.scale, *self.coef, self.intercept, self.threshold], np.float64)
        if not np.all(np.isfinite(values)) or min(self.scale) <= 0:
            raise ValueError("a cell localizer's numbers must be finite and its scales > 0.")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1]. Received: {self.threshold!r}")

    @property
    def channels(self) -> int:
        """Descriptor channels it reads (the class map comes on top)."""
        return len(self.coef) - 1

    def maps(self, features: np.ndarray, class_maps: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per image, the probability that each cell is object.

        Parameters
        ----------
        features : (N, h, w, D) array
            Feature-layer descriptors on the class maps' grid.
        class_maps : sequence of N (h, w) arrays
            Each image's map for its class, min-max normalised.

        Returns
        -------
        list of N (h, w) float32 ndarrays in [0, 1]

        Raises
        ------
        ValueError
            If ``D`` differs from what it was fitted on, or the grids disagree.
        """
        features = np.asarray(features)
        if features.ndim != 4 or features.shape[-1] != self.channels:
            raise ValueError(f"features must be (N, h, w, {self.channels}) descriptors (the layer this "
                             f"localizer was fitted on). Received shape: {features.shape}")
        mean, scale, coef = (np.asarray(v, np.float32) for v in (self.mean, self.scale, self.coef))
        out = []
        for f, cam in zip(features, class_maps, strict=True):
            x = cell_inputs(f, cam)
            z = ((x - mean) / scale) @ coef + np.float32(self.intercept)
            out.append((1.0 / (1.0 + np.exp(-z))).reshape(f.shape[:2]).astype(np.float32))
        return out


def cell_inputs(features: np.ndarray, class_map: np.ndarray) -> np.ndarray:
    """One image's cells as rows: ``D`` descriptor channels and the class map (resized to the grid)."""
    h, w, d = features.shape
    cam = np.asarray(class_map, np.float32)
    if cam.shape != (h, w):
        cam = cv2.resize(cam, (w, h), interpolation=cv2.INTER_AREA)
    return np.concatenate([features.reshape(h * w, d).astype(np.float32), cam.reshape(h * w, 1)], axis=1)


def cell_targets(boxes: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """The fraction of each cell of a ``grid`` (rows, cols) inside ``boxes`` (normalised ``x0, y0, x1, y1``;
    one box, or ``(k, 4)``: each cell takes the largest fraction any box covers).

    Examples
    --------
    >>> cell_targets(np.array([0.0, 0.0, 0.75, 0.5]), (2, 2))
    array([[1. , 0.5],
           [0. , 0. ]])
    >>> cell_targets(np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]), (2, 2))
    array([[1., 0.],
           [0., 1.]])
    """
    h, w = grid
    cols, rows = np.arange(w), np.arange(h)
    out = np.zeros((h, w))
    for box in np.asarray(boxes, np.float64).reshape(-1, 4):
        x0, y0, x1, y1 = (float(v) for v in box)
        cx = np.clip(np.minimum((cols + 1) / w, x1) - np.maximum(cols / w, x0), 0, None) * w
        cy = np.clip(np.minimum((rows + 1) / h, y1) - np.maximum(rows / h, y0), 0, None) * h
        out = np.maximum(out, np.outer(cy, cx))
    return out


def group_folds(groups: Sequence[int], folds: int = DEFAULT_FOLDS, *, seed: int = 0) -> np.ndarray:
    """Fold index per image, a capture group never split across folds (groups shuffled, dealt round).

    Examples
    --------
    >>> group_folds([7, 7, 3, 5], 2).tolist()
    [0, 0, 1, 0]
    """
    groups = np.asarray(groups)
    unique = np.unique(groups)
    np.random.default_rng(seed).shuffle(unique)
    fold = {g: k % max(1, folds) for k, g in enumerate(unique)}
    return np.array([fold[g] for g in groups], np.int64)


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    from scipy.optimize import minimize

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 1e-6, scale, 1.0)
    z = ((x - mean) / scale).astype(np.float64)
    y = y.astype(np.float64)
    n, d = z.shape

    def loss(wb):
        w, b = wb[:-1], wb[-1]
        logit = z @ w + b
        p = 0.5 * (1.0 + np.tanh(0.5 * logit))  # the logistic function, without overflow
        value = np.mean(np.logaddexp(0.0, logit) - y * logit) + 0.5 * l2 * (w @ w)
        g = (p - y) / n
        return value, np.concatenate([z.T @ g + l2 * w, [g.sum()]])

    result = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return mean, scale, result.x[:-1], float(result.x[-1])


def _fit(inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], l2: float, threshold: float,
         model_sha256: str, cut: str = "grabcut") -> CellLocalizer:
    mean, scale, coef, intercept = _fit_logistic(np.concatenate(inputs), np.concatenate(targets), l2)
    return CellLocalizer(mean=mean, scale=scale, coef=coef, intercept=intercept, threshold=threshold,
                         n_boxes=len(inputs), l2=l2, model_sha256=model_sha256, cut=cut)


def fit_cell_localizer(features: np.ndarray, class_maps: Sequence[np.ndarray], boxes: Sequence[np.ndarray], *,
                       groups: Sequence[int] | None = None, image_sizes: Sequence[tuple[int, int]] | None = None,
                       images: Sequence[np.ndarray] | None = None, l2: float = DEFAULT_L2,
                       folds: int = DEFAULT_FOLDS, model_sha256: str = "") -> CellLocalizer:
    """Fit a cell localizer on hand-boxed images and calibrate its threshold on maps it did not see.

    Parameters
    ----------
    features : (N, h, w, D) array
        Descriptors of the hand-boxed images (:attr:`classifier.trained_model.TrainedModel.map_layer`).
    class_maps : sequence of N (h, w) arrays
        Each image's normalised map for its class.
    boxes : sequence of N (k_i, 4) arrays, or (N, 4)
        Each image's hand boxes (every object it shows), normalised ``x0, y0, x1, y1``.
    groups : sequence of N int, optional
        Capture groups (burst shots share one); the calibration's inner folds keep a group
        together. Default: each image its own group.
    image_sizes : sequence of N (height, width), optional
        The maps are calibrated at these sizes (default: the ``images``' sizes, else 10 times
        the grid).
    images : sequence of N (H_i, W_i, 3) uint8 arrays, optional
        The photos: with them the cut (``"cam"`` or ``"grabcut"``) is chosen on the held-out maps
        (the one whose boxes overlap the hand boxes more, on average); without, ``"grabcut"``.
    l2 : float > 0
    folds : int >= 2
        Inner folds for the threshold (fewer when there are fewer groups).

    Raises
    ------
    ValueError
        For fewer than 2 images, mismatched lengths, or boxes that are not normalised.
    """
    from localize.calibration import calibrate_threshold

    features = np.asarray(features)
    boxes = _check_inputs(features, class_maps, boxes, groups)
    n = len(features)
    if images is not None and len(images) != n:
        raise ValueError(f"images must have one photo per hand-boxed image ({n}). Received: {len(images)}")
    groups = np.arange(n) if groups is None else np.asarray(groups)
    grid = features.shape[1:3]
    sizes = (list(image_sizes) if image_sizes is not None else [im.shape[:2] for im in images]
             if images is not None else [(grid[0] * 10, grid[1] * 10)] * n)
    inputs = [cell_inputs(f, c) for f, c in zip(features, class_maps, strict=True)]
    targets = [cell_targets(b, grid).reshape(-1) for b in boxes]
    fold = group_folds(groups, folds)
    out_of_fold: list[np.ndarray | None] = [None] * n
    for k in np.unique(fold):
        train = np.flatnonzero(fold != k)
        if len(train) == 0:
            continue
        fitted = _fit([inputs[i] for i in train], [targets[i] for i in train], l2, 0.5, model_sha256)
        held = np.flatnonzero(fold == k)
        for i, m in zip(held, fitted.maps(features[held], [class_maps[i] for i in held]), strict=True):
            out_of_fold[i] = m
    scored = [i for i in range(n) if out_of_fold[i] is not None]
    threshold, cut = 0.5, "grabcut"
    if scored:
        heatmaps = [cv2.resize(out_of_fold[i], (sizes[i][1], sizes[i][0]), interpolation=cv2.INTER_LINEAR)
                    for i in scored]
        pixel_boxes = [boxes[i] * ([sizes[i][1], sizes[i][0]] * 2) for i in scored]
        threshold = calibrate_threshold(heatmaps, pixel_boxes).threshold
        if images is not None:
            cut = choose_cut([images[i] for i in scored], heatmaps, pixel_boxes, threshold)
    localizer = _fit(inputs, targets, l2, threshold, model_sha256, cut)
    log.info("cell localizer fitted on %d hand-boxed photos (%d descriptor channels), threshold %.2f, cut %s",
             n, localizer.channels, threshold, cut)
    return localizer


def choose_cut(images: Sequence[np.ndarray], heatmaps: Sequence[np.ndarray], boxes: Sequence[np.ndarray],
               threshold: float) -> str:
    """``"cam"`` or ``"grabcut"``: the cut whose boxes of ``heatmaps`` (at ``threshold``) overlap
    ``boxes`` (pixels, ``(k_i, 4)`` per photo) more on average (each photo's box against its best
    match); a tie keeps ``"cam"``, the cheaper."""
    from groundwork.box_geometry import box_iou
    from groundwork.thread_map import thread_map
    from localize.boxes import heatmap_to_boxes
    from localize.refine import grabcut_refine

    if not len(images) == len(heatmaps) == len(boxes):
        raise ValueError(f"images, heatmaps and boxes must have one entry per photo. Received: {len(images)}, "
                         f"{len(heatmaps)}, {len(boxes)}")

    def mean_iou(make) -> float:
        def iou(k: int) -> float:
            found, _ = make(images[k], heatmaps[k])
            if not len(found):
                return 0.0
            return float(box_iou(found[:1], np.asarray(boxes[k], np.float64).reshape(-1, 4)).max())

        return float(sum(thread_map(iou, range(len(images))))) / max(1, len(images))

    cam = mean_iou(lambda image, h: heatmap_to_boxes(h, threshold=threshold, image_size=image.shape[:2]))
    grabcut = mean_iou(lambda image, h: grabcut_refine(image, h, threshold=threshold))
    log.info("cell localizer cut on its held-out maps: thresholded mean IoU %.3f, GrabCut %.3f", cam, grabcut)
    return "grabcut" if grabcut > cam else "cam"


def cross_fit(features: np.ndarray, class_maps: Sequence[np.ndarray], boxes: np.ndarray, *,
              groups: Sequence[int], folds: int = DEFAULT_FOLDS, **kwargs) -> tuple[list[CellLocalizer], np.ndarray]:
    """One localizer per fold over capture groups, each fitted without its fold's images, so that
    every hand-boxed image can be boxed (and scored) by a localizer that never saw it or its group.

    Returns
    -------
    localizers : list of CellLocalizer
        ``localizers[k]`` was fitted on every image outside fold ``k``.
    fold : (N,) int ndarray
        Each image's fold.

    Raises
    ------
    ValueError
        If there are fewer than 2 capture groups, or as :func:`fit_cell_localizer`.
    """
    features = np.asarray(features)
    boxes = _check_inputs(features, class_maps, boxes, groups)
    groups = np.asarray(groups)
    photos = kwargs.pop("images", None)
    if len(np.unique(groups)) < 2:
        raise ValueError("hand boxes from at least 2 capture groups are needed to score a localizer fitted "
                         "on them honestly.")
    fold = group_folds(groups, folds)
    sizes = kwargs.pop("image_sizes", None)
    localizers = []
    for k in range(int(fold.max()) + 1):
        train = np.flatnonzero(fold != k)
        localizers.append(fit_cell_localizer(
            features[train], [class_maps[i] for i in train], [boxes[i] for i in train], groups=groups[train],
            folds=folds, image_sizes=None if sizes is None else [sizes[i] for i in train],
            images=None if photos is None else [photos[i] for i in train], **kwargs))
    return localizers, fold


def _check_inputs(features: np.ndarray, class_maps, boxes, groups) -> list[np.ndarray]:
    n = len(features)
    boxes = [np.asarray(b, np.float64).reshape(-1, 4) for b in boxes]
    if features.ndim != 4:
        raise ValueError(f"features must be (N, h, w, D). Received shape: {features.shape}")
    if len(class_maps) != n or len(boxes) != n or (groups is not None and len(groups) != n):
        raise ValueError(f"features, class_maps, boxes (and groups) need one entry per image. Received: {n}, "
                         f"{len(class_maps)}, {len(boxes)}" + ("" if groups is None else f", {len(groups)}"))
    if n < 2:
        raise ValueError(f"a cell localizer needs at least 2 hand-boxed images. Received: {n}")
    if any(len(b) == 0 or not np.all(np.isfinite(b)) or b.min() < 0 or b.max() > 1 or np.any(b[:, 2:] <= b[:, :2])
           for b in boxes):
        raise ValueError("boxes must be, per image, one or more normalised x0, y0, x1, y1 in [0, 1] with x0 < x1 "
                         "and y0 < y1.")
    return boxes


def save_cell_localizer(localizer: CellLocalizer, model_dir: str | os.PathLike) -> Path:
    """Write ``localizer`` as ``cell_localizer.json`` into ``model_dir`` (atomically)."""
    if not isinstance(localizer, CellLocalizer):
        raise TypeError(f"localizer must be a CellLocalizer. Received: {type(localizer).__name__}")
    return save_config(localizer, Path(model_dir) / FILENAME)


def load_cell_localizer(model_dir: str | os.PathLike, *, model_sha256: str | None = None) -> CellLocalizer | None:
    """The cell localizer saved with a model, or None when there is none.

    Raises
    ------
    ValueError
        If the file is not a valid cell localizer, or was fitted on another classifier's
        descriptors (``model_sha256`` given and different).
    """
    path = Path(model_dir) / FILENAME
    if not path.is_file():
        return None
    try:
        localizer = load_config(CellLocalizer, path)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} is not a valid cell localizer: {error}") from None
    if model_sha256 and localizer.model_sha256 and localizer.model_sha256 != model_sha256:
        raise ValueError(f"{path} was fitted on the descriptors of another classifier (model.keras changed "
                         "since); rerun `boxstrap localize` with the hand boxes (--ground-truth), or delete it.")
    return localizer
