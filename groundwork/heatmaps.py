"""A heatmap checked and scaled to [0, 1]: what boxing, scoring and the review pictures read."""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["check_heatmap", "normalize_heatmap"]

log = logging.getLogger(__name__)


def normalize_heatmap(heatmap: np.ndarray) -> np.ndarray | None:
    """Min-max normalise a finite 2-D map to float64 [0, 1]; ``None`` if it is flat or not finite.

    Examples
    --------
    >>> normalize_heatmap(np.array([[2.0, 4.0]]))
    array([[0., 1.]])
    >>> normalize_heatmap(np.ones((2, 2))) is None
    True
    """
    h = np.asarray(heatmap, np.float64)
    if h.size == 0 or not np.isfinite(h).all():
        log.debug("heatmap has non-finite values: no boxes")
        return None
    lo, hi = float(h.min()), float(h.max())
    if not hi > lo:
        log.debug("heatmap is flat (all %g): no boxes", hi)
        return None
    return (h - lo) / (hi - lo)


def check_heatmap(heatmap: object, name: str = "heatmap") -> np.ndarray:
    """Return ``heatmap`` as a 2-D float64 array, or raise naming ``name`` (NaN is allowed here).

    Raises
    ------
    TypeError
        If it is not a real-valued array (strings, objects, complex, bool).
    ValueError
        If it is not 2-D or has no pixels.
    """
    arr = np.asarray(heatmap)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real-valued numeric array. Received dtype: {arr.dtype}")
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (H, W) array. Received shape: {arr.shape}")
    return arr.astype(np.float64, copy=False)
