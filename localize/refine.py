"""GrabCut refinement: grow a coarse class map to the object's real edges, then box it.

A class map from a stride-16/32 network is a blurred blob: thresholding it gives a box of the
blob, not of the object. :func:`grabcut_refine` uses the map as seeds for ``cv2.grabCut``
(Rother et al., SIGGRAPH 2004), which fits colour models of object and background and cuts
along image edges:

=============================================  ===================
heat (min-max normalised)                      GrabCut label
=============================================  ===================
``>= fg_threshold``                            definite foreground
``>= probable_threshold``                      probable foreground
``>= bg_threshold``, or within ``margin`` of   probable background
the probable foreground
elsewhere ("far away")                         definite background
=============================================  ===================

The levels follow from the CAM threshold the map would be boxed at (:func:`seed_levels`), so a
model whose calibrated threshold is high gets correspondingly high seeds.

The refined foreground's connected component holding the heat peak (else the largest) becomes
the box. Boxes are continuous pixel edges (see :mod:`localize.boxes`).
"""

from __future__ import annotations

import logging
import numbers

import cv2
import numpy as np

from groundwork.heatmaps import check_heatmap, normalize_heatmap
from localize.boxes import DEFAULT_THRESHOLD, heatmap_to_boxes, scale_boxes

__all__ = ["grabcut_refine", "seed_levels", "seed_mask"]

log = logging.getLogger(__name__)


def grabcut_refine(
    rgb: np.ndarray,
    heatmap: np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    fg_threshold: float | None = None,
    probable_threshold: float | None = None,
    bg_threshold: float | None = None,
    margin: float = 0.03,
    iterations: int = 3,
    max_side: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Refine the box of a heatmap's object with GrabCut.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 ndarray
        The image (any colour order; GrabCut only models colours).
    heatmap : (h, w) array_like of real numbers
        Its class map, at any size (resized bilinearly to the image's). Flat or NaN: no box.
    threshold : float in [0, 1]
        The CAM threshold the map would be boxed at (the calibrated one when there is one; default
        the CAM paper's 0.2). The seed levels follow from it (:func:`seed_levels`): probable
        foreground at ``threshold``, definite foreground at ``threshold + 0.7 (1 - threshold)``,
        probable background down to ``threshold - 0.15``.
    fg_threshold, probable_threshold, bg_threshold : float in [0, 1], optional
        Override those seed levels; ``bg_threshold <= probable_threshold <= fg_threshold``.
    margin : float >= 0
        Width of the probable-background band around the probable foreground, as a fraction of
        the image's longer side; everything further away is definite background.
    iterations : int >= 1
        GrabCut iterations.
    max_side : int >= 16
        GrabCut runs on the image shrunk to this longer side (its time grows with the pixels and
        the iterations); the box is scaled back to full size. 256 and 3 iterations: boxes as good
        as at 320 and 5 on every set of the suite and GrabCut 2.5x faster; at 224 the block photos
        lost 2 of 77 boxes (``benchmarks/NOTES.md``, "GrabCut's size and iterations").

    Returns
    -------
    boxes : (N, 4) float64 ndarray
        ``N`` is 0 (no object) or 1.
    scores : (N,) float64 ndarray
        Mean normalised heat inside the refined region.

    When GrabCut cannot run (no background or foreground seed) or cuts everything away, the
    box of the heatmap thresholded at ``probable_threshold`` is returned instead (logged).

    Raises
    ------
    TypeError
        If ``rgb`` is not uint8 or ``heatmap`` not real-valued.
    ValueError
        If ``rgb`` is not (H, W, 3), ``heatmap`` not 2-D, or a parameter is out of range.
    """
    image = _check_rgb(rgb)
    heat = check_heatmap(heatmap)
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a number in [0, 1]. Received: threshold={threshold!r}")
    levels = seed_levels(float(threshold))
    fg_threshold = levels["fg_threshold"] if fg_threshold is None else fg_threshold
    probable_threshold = levels["probable_threshold"] if probable_threshold is None else probable_threshold
    bg_threshold = levels["bg_threshold"] if bg_threshold is None else bg_threshold
    for name, value in (("fg_threshold", fg_threshold), ("probable_threshold", probable_threshold),
                        ("bg_threshold", bg_threshold)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a number in [0, 1]. Received: {name}={value!r}")
    if not bg_threshold <= probable_threshold <= fg_threshold:
        raise ValueError("thresholds must satisfy bg_threshold <= probable_threshold <= fg_threshold. "
                         f"Received: {bg_threshold}, {probable_threshold}, {fg_threshold}")
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not margin >= 0:
        raise ValueError(f"margin must be a number >= 0. Received: margin={margin!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 1:
        raise ValueError(f"iterations must be an int >= 1. Received: iterations={iterations!r}")
    if isinstance(max_side, bool) or not isinstance(max_side, numbers.Integral) or max_side < 16:
        raise ValueError(f"max_side must be an int >= 16. Received: max_side={max_side!r}")

    full_size = image.shape[:2]
    empty = np.zeros((0, 4), np.float64), np.zeros((0,), np.float64)
    norm = normalize_heatmap(heat)
    if norm is None:
        return empty
    scale = min(1.0, max_side / max(full_size))
    work_size = (max(1, round(full_size[0] * scale)), max(1, round(full_size[1] * scale)))
    small = image if work_size == full_size else cv2.resize(
        image, (work_size[1], work_size[0]), interpolation=cv2.INTER_AREA)
    heat_small = norm.astype(np.float32)
    if heat_small.shape != work_size:
        heat_small = cv2.resize(heat_small, (work_size[1], work_size[0]), interpolation=cv2.INTER_LINEAR)

    def fallback(reason: str) -> tuple[np.ndarray, np.ndarray]:
        log.info("GrabCut refinement skipped (%s): using the box thresholded at %.2f", reason, probable_threshold)
        return heatmap_to_boxes(norm, threshold=probable_threshold, mode="largest", image_size=full_size)

    mask = seed_mask(heat_small, fg_threshold=fg_threshold, probable_threshold=probable_threshold,
                     bg_threshold=bg_threshold, margin=margin)
    if not np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
        return fallback("no foreground seed")
    if not np.isin(mask, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        return fallback("the heatmap covers the whole image: no background seed")
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means initialisation: same input, same box
    cv2.grabCut(np.ascontiguousarray(small), mask, None, bgd_model, fgd_model, int(iterations),
                cv2.GC_INIT_WITH_MASK)
    fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count <= 1:
        return fallback("GrabCut left no foreground")
    peak = np.unravel_index(int(np.argmax(heat_small)), heat_small.shape)
    keep = int(labels[peak])
    if keep == 0:
        keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[keep, :4])
    region = labels == keep
    box = np.array([[x, y, x + w, y + h]], np.float64)
    score = np.array([float(heat_small[region].mean())])
    if work_size != full_size:
        box = scale_boxes(box, work_size, full_size)
    return box, score


def seed_levels(threshold: float) -> dict[str, float]:
    """GrabCut seed levels for a CAM threshold: ``probable_threshold = threshold``,
    ``fg_threshold = threshold + 0.7 (1 - threshold)``, ``bg_threshold = max(0, threshold - 0.15)``.

    Chosen on the block photos (see ``benchmarks/localize_variants.py``): seeds at fixed levels
    fail when a model's maps are broad and its calibrated threshold high (0.8), because then
    "probable foreground" covers most of the photo.

    Examples
    --------
    >>> seed_levels(0.2)
    {'fg_threshold': 0.76, 'probable_threshold': 0.2, 'bg_threshold': 0.05}
    """
    return {"fg_threshold": round(threshold + 0.7 * (1.0 - threshold), 6),
            "probable_threshold": threshold,
            "bg_threshold": round(max(0.0, threshold - 0.15), 6)}


def seed_mask(norm: np.ndarray, *, fg_threshold: float, probable_threshold: float, bg_threshold: float,
              margin: float) -> np.ndarray:
    """The GrabCut label image (uint8, ``cv2.GC_*`` values) for a normalised heatmap; see the
    module docstring for the levels."""
    mask = np.full(norm.shape, cv2.GC_BGD, np.uint8)
    probable = (norm >= probable_threshold).astype(np.uint8)
    radius = int(round(margin * max(norm.shape)))
    near = probable
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        near = cv2.dilate(probable, kernel)
    mask[(near > 0) | (norm >= bg_threshold)] = cv2.GC_PR_BGD
    mask[probable > 0] = cv2.GC_PR_FGD
    mask[norm >= fg_threshold] = cv2.GC_FGD
    return mask


def _check_rgb(rgb: object) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        raise TypeError(f"rgb must be a uint8 (H, W, 3) image. Received dtype: {arr.dtype}")
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 2:
        raise ValueError(f"rgb must be an (H, W, 3) image of at least 2x2 pixels. Received shape: {arr.shape}")
    return arr
