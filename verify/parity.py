"""Parity in numbers: the one helper that compares two sets of model outputs.

Used by the tests and by ``boxstrap verify`` alike, so "the export matches" always means the
same thing: max and mean absolute difference, top-1 agreement, and (for boxes) IoU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from groundwork.box_geometry import matched_box_iou

__all__ = ["OutputComparison", "compare_outputs", "json_number", "near_ties"]


@dataclass(frozen=True)
class OutputComparison:
    """How far ``candidate`` outputs are from ``reference`` outputs.

    Attributes
    ----------
    max_abs_diff, mean_abs_diff : float
        Over all values.
    per_sample_max_abs_diff : (N,) ndarray
    top1_agreement : float or None
        Share of samples whose arg-max agree (None unless the outputs are ``(N, C)`` scores).
    disagreements : tuple of int
        Indices of the samples whose arg-max differ (a sample with a NaN or Inf output always).
    non_finite : tuple of int
        Indices of the samples with a NaN or Inf value in either output: their difference is
        infinite, never "within tolerance" (a NaN compares false with every tolerance).
    box_iou : (N,) ndarray or None
        IoU of each pair of boxes, when boxes were given
        (:func:`groundwork.box_geometry.matched_box_iou`: a box without area scores 0).
    """

    max_abs_diff: float
    mean_abs_diff: float
    per_sample_max_abs_diff: np.ndarray
    top1_agreement: float | None
    disagreements: tuple[int, ...]
    box_iou: np.ndarray | None = None
    non_finite: tuple[int, ...] = ()

    @property
    def min_box_iou(self) -> float | None:
        """The smallest box IoU (None without boxes)."""
        return None if self.box_iou is None or self.box_iou.size == 0 else float(np.min(self.box_iou))


def compare_outputs(
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    reference_boxes: np.ndarray | None = None,
    candidate_boxes: np.ndarray | None = None,
) -> OutputComparison:
    """Compare two batches of outputs of the same shape.

    Parameters
    ----------
    reference, candidate : (N, ...) ndarray
        Outputs for the same N samples (e.g. ``(N, C)`` probabilities, ``(N, h, w, C)`` maps).
    reference_boxes, candidate_boxes : (N, 4) ndarray, optional
        One ``(xmin, ymin, xmax, ymax)`` box per sample (edges); both or neither.

    Returns
    -------
    OutputComparison

    Raises
    ------
    ValueError
        If the shapes differ, the batch is empty, or only one set of boxes is given.

    Examples
    --------
    >>> c = compare_outputs(np.array([[0.9, 0.1], [0.4, 0.6]]), np.array([[0.8, 0.2], [0.6, 0.4]]))
    >>> round(c.max_abs_diff, 6), c.top1_agreement, c.disagreements
    (0.2, 0.5, (1,))
    """
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    if reference.shape != candidate.shape:
        raise ValueError(
            f"reference and candidate must have the same shape. Received: {reference.shape} and {candidate.shape}"
        )
    if reference.ndim == 0 or reference.shape[0] == 0:
        raise ValueError(f"outputs must be a non-empty batch (N, ...). Received shape: {reference.shape}")
    n = reference.shape[0]
    finite = np.isfinite(reference).reshape(n, -1).all(axis=1) & np.isfinite(candidate).reshape(n, -1).all(axis=1)
    with np.errstate(invalid="ignore"):
        diff = np.abs(reference - candidate).reshape(n, -1)
    diff[~finite] = np.inf
    top1 = None
    disagreements: tuple[int, ...] = ()
    if reference.ndim == 2:
        agree = (np.argmax(reference, axis=1) == np.argmax(candidate, axis=1)) & finite
        top1 = float(np.mean(agree))
        disagreements = tuple(int(i) for i in np.flatnonzero(~agree))
    iou = None
    if (reference_boxes is None) != (candidate_boxes is None):
        raise ValueError("reference_boxes and candidate_boxes must be given together.")
    if reference_boxes is not None:
        iou = matched_box_iou(reference_boxes, candidate_boxes)
        if iou.shape[0] != reference.shape[0]:
            raise ValueError(f"expected one box per sample ({reference.shape[0]}). Received: {iou.shape[0]}")
    return OutputComparison(
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        mean_abs_diff=float(diff.mean()) if diff.size else 0.0,
        per_sample_max_abs_diff=diff.max(axis=1) if diff.size else np.zeros(reference.shape[0]),
        top1_agreement=top1,
        disagreements=disagreements,
        box_iou=iou,
        non_finite=tuple(int(i) for i in np.flatnonzero(~finite)),
    )


def json_number(value: float | None) -> float | None:
    """``value`` as a float for a JSON report, or None when it is NaN or infinite (JSON has neither).

    Examples
    --------
    >>> json_number(0.5), json_number(float("inf")), json_number(None)
    (0.5, None, None)
    """
    return None if value is None or not np.isfinite(value) else float(value)


def near_ties(keras: np.ndarray, coreml: np.ndarray, disagreements: Sequence[int], tolerance: float) -> list[int]:
    """Disagreeing images whose two classes are within ``2 * tolerance`` in the Keras probabilities.

    Outputs that each stay within ``tolerance`` of Keras can swap such a pair, so the flip is
    no evidence of a faulty export.
    """
    ties = []
    for i in disagreements:
        margin = keras[i, int(np.argmax(keras[i]))] - keras[i, int(np.argmax(coreml[i]))]
        if margin <= 2 * tolerance:
            ties.append(i)
    return ties
