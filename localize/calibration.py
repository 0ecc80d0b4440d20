"""Threshold calibration: the CAM threshold that boxes a few hand-boxed images best.

Given heatmaps of a few images with real boxes, :func:`calibrate_threshold` scores every CAM
threshold with Choe et al.'s BoxAcc (CVPR 2020) at IoU 0.3, 0.5 and 0.7 and keeps the one with
the highest mean; :func:`save_calibration` writes it into the model directory as
``localize_calibration.json`` and :func:`load_calibration` reads it back. Without labelled boxes
the threshold is :data:`localize.boxes.DEFAULT_THRESHOLD` (0.2 of the maximum, as in the CAM
paper, Zhou et al., CVPR 2016), and the file says so (``method = "default"``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from groundwork.box_scores import V2_IOU_THRESHOLDS
from groundwork.config import load_config, save_config
from localize.boxes import DEFAULT_THRESHOLD, MODES
from localize.scoring import CAM_THRESHOLDS, box_accuracy

__all__ = ["FILENAME", "ThresholdCalibration", "calibrate_threshold", "cross_calibrate", "load_calibration",
           "save_calibration"]

log = logging.getLogger(__name__)

FILENAME = "localize_calibration.json"


@dataclass(frozen=True)
class ThresholdCalibration:
    """A CAM threshold and how it was chosen.

    Attributes
    ----------
    threshold : float
        Fraction of the min-max normalised heatmap (see :func:`localize.boxes.heatmap_to_boxes`).
    method : {"default", "box_accuracy"}
        ``"default"``: the CAM paper's 0.2, no boxes seen; ``"box_accuracy"``: calibrated.
    mode : {"largest", "all"}
        The ``heatmap_to_boxes`` mode the threshold was scored with.
    iou_thresholds : tuple of float
        IoU thresholds the BoxAcc was averaged over.
    box_accuracy : tuple of float
        BoxAcc at ``threshold``, one per IoU threshold (empty for the default).
    n_images : int
        Number of hand-boxed images it was calibrated on (0 for the default).
    """

    threshold: float = DEFAULT_THRESHOLD
    method: Literal["default", "box_accuracy"] = "default"
    mode: Literal["largest", "all"] = "largest"
    iou_thresholds: tuple[float, ...] = V2_IOU_THRESHOLDS
    box_accuracy: tuple[float, ...] = ()
    n_images: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1]. Received: threshold={self.threshold!r}")
        if self.method not in ("default", "box_accuracy"):
            raise ValueError(f"method must be 'default' or 'box_accuracy'. Received: method={self.method!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}. Received: mode={self.mode!r}")


def calibrate_threshold(
    heatmaps: Sequence[np.ndarray],
    gt_boxes: Sequence[np.ndarray],
    *,
    thresholds: Sequence[float] = CAM_THRESHOLDS,
    iou_thresholds: Sequence[float] = V2_IOU_THRESHOLDS,
    mode: Literal["largest", "all"] = "largest",
    image_sizes: Sequence[tuple[int, int]] | None = None,
) -> ThresholdCalibration:
    """Pick the CAM threshold with the highest mean BoxAcc over ``iou_thresholds``.

    Parameters
    ----------
    heatmaps : sequence of (H_i, W_i) arrays
        Class maps of hand-boxed images (at image size, or give ``image_sizes``).
    gt_boxes : sequence of (M_i, 4) arrays
        Their real boxes, continuous pixel edges.
    thresholds : sequence of float in [0, 1]
        Candidates (default 0.00, 0.01, ..., 0.99).
    iou_thresholds : sequence of float in (0, 1]
        BoxAcc IoU thresholds averaged over (default 0.3, 0.5, 0.7).
    mode : {"largest", "all"}
        How boxes will be made from the maps: one box per image, or every component's.
    image_sizes : sequence of (height, width), optional
        See :func:`localize.scoring.box_accuracy`.

    Returns
    -------
    ThresholdCalibration
        With ``method="box_accuracy"``. On a tie the middle one of the tied thresholds wins
        (the centre of a plateau is the safest choice for new images).

    Raises
    ------
    ValueError
        If ``mode`` is unknown, or as :func:`localize.scoring.box_accuracy` does (lengths,
        thresholds, gt boxes outside the image).

    Examples
    --------
    >>> h = np.zeros((20, 20)); h[5:15, 5:15] = 0.4; h[8:12, 8:12] = 1.0
    >>> calibrate_threshold([h], [np.array([[5, 5, 15, 15]])], thresholds=[0.3, 0.5, 0.7]).threshold
    0.3
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
    result = box_accuracy(heatmaps, gt_boxes, thresholds=thresholds, iou_thresholds=iou_thresholds,
                          multi_contour=(mode == "all"), image_sizes=image_sizes)
    mean = result.accuracy.mean(axis=1)
    tied = np.flatnonzero(mean >= mean.max() - 1e-12)
    best = int(tied[len(tied) // 2])
    calibration = ThresholdCalibration(
        threshold=result.thresholds[best],
        method="box_accuracy",
        mode=mode,
        iou_thresholds=result.iou_thresholds,
        box_accuracy=tuple(float(v) for v in result.accuracy[best]),
        n_images=len(heatmaps),
    )
    log.info("calibrated CAM threshold %.2f on %d images: BoxAcc %s at IoU %s", calibration.threshold,
             calibration.n_images, [round(v, 3) for v in calibration.box_accuracy], calibration.iou_thresholds)
    return calibration


def cross_calibrate(
    heatmaps: Sequence[np.ndarray],
    gt_boxes: Sequence[np.ndarray],
    *,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    folds: int = 2,
    **kwargs,
) -> tuple[ThresholdCalibration, np.ndarray]:
    """Calibrate on all hand-boxed images, and per image on the *other* folds only.

    Scoring boxes made at a threshold tuned on the same boxes flatters them. Here image ``i``
    (fold ``i % folds``) also gets the threshold calibrated without its fold, so boxes made at
    ``held_out[i]`` can be scored honestly; new images use the calibration on all of them.

    Parameters
    ----------
    heatmaps, gt_boxes, image_sizes
        As :func:`calibrate_threshold`.
    folds : int >= 2
        Number of interleaved folds (fewer if there are fewer images; one image: no held-out
        estimate, its own calibration is used).
    **kwargs
        Passed to :func:`calibrate_threshold` (``thresholds``, ``iou_thresholds``, ``mode``).

    Returns
    -------
    calibration : ThresholdCalibration
        Calibrated on every image.
    held_out : (N,) float64 ndarray
        Per image, the threshold calibrated on the other folds.

    Raises
    ------
    ValueError
        If ``folds`` < 2, no image is given, or as :func:`calibrate_threshold`.

    Examples
    --------
    >>> h = np.zeros((20, 20)); h[5:15, 5:15] = 0.4; h[8:12, 8:12] = 1.0
    >>> cal, held_out = cross_calibrate([h, h], [np.array([[5, 5, 15, 15]])] * 2, thresholds=[0.3, 0.5])
    >>> cal.threshold, held_out.tolist()
    (0.3, [0.3, 0.3])
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an int >= 2. Received: folds={folds!r}")
    n = len(heatmaps)
    if n == 0 or len(gt_boxes) != n or (image_sizes is not None and len(image_sizes) != n):
        raise ValueError(f"heatmaps, gt_boxes (and image_sizes) must be non-empty and of one length. Received: "
                         f"{n}, {len(gt_boxes)}" + ("" if image_sizes is None else f", {len(image_sizes)}"))
    calibration = calibrate_threshold(heatmaps, gt_boxes, image_sizes=image_sizes, **kwargs)
    held_out = np.full(n, calibration.threshold, np.float64)
    folds = min(folds, n)
    if folds < 2:
        return calibration, held_out
    fold_of = np.arange(n) % folds
    for k in range(folds):
        rest = np.flatnonzero(fold_of != k)
        fit = calibrate_threshold([heatmaps[i] for i in rest], [gt_boxes[i] for i in rest],
                                  image_sizes=None if image_sizes is None else [image_sizes[i] for i in rest],
                                  **kwargs)
        held_out[fold_of == k] = fit.threshold
    return calibration, held_out


def save_calibration(calibration: ThresholdCalibration, model_dir: str | os.PathLike) -> Path:
    """Write ``calibration`` as ``localize_calibration.json`` into ``model_dir`` (atomically).

    Raises
    ------
    TypeError
        If ``calibration`` is not a :class:`ThresholdCalibration`.
    """
    if not isinstance(calibration, ThresholdCalibration):
        raise TypeError(f"calibration must be a ThresholdCalibration. Received: {type(calibration).__name__}")
    path = save_config(calibration, Path(model_dir) / FILENAME)
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return path


def load_calibration(model_dir: str | os.PathLike) -> ThresholdCalibration:
    """Read the calibration saved with a model; the documented default if there is none.

    Raises
    ------
    ValueError
        If the file exists but is not a valid calibration.
    """
    path = Path(model_dir) / FILENAME
    if not path.is_file():
        log.info("no %s in %s: using the default CAM threshold %.2f", FILENAME, model_dir, DEFAULT_THRESHOLD)
        return ThresholdCalibration()
    try:
        return load_config(ThresholdCalibration, path)
    except TypeError as error:
        raise ValueError(f"{path} is not a valid threshold calibration: {error}") from None
