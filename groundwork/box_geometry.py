"""Box geometry on numpy arrays: intersection over union and the two box layouts.

Boxes are ``(N, 4)`` arrays. ``xyxy`` is ``(xmin, ymin, xmax, ymax)`` in continuous *edges*
(docs/ARCHITECTURE.md): in pixels, ``xmax`` is one past the last pixel column, so a box's area
is ``(xmax - xmin) * (ymax - ymin)`` with no ``+ 1``; the same formulas serve boxes given as
fractions of the image, as a detector outputs them. ``cxcywh`` is ``(centre x, centre y, width,
height)`` in the same units, the layout of the box model's ``box`` output and of Core ML's
``coordinates``. Boxes with inclusive pixel indices (the boxes JSON, VOC) are converted to edges
when they are read (:mod:`datasets.annotations`), before they reach these functions.

One IoU computation, two ways to pair the boxes:

- :func:`box_iou`: every box of one set with every box of the other, ``(N, M)``; for scoring
  predicted boxes against ground truth, so the boxes are validated (:func:`check_boxes`) and a
  malformed one is an error.
- :func:`matched_box_iou`: row ``i`` with row ``i``, ``(N,)``; for parity (a model's boxes against
  its export's), so any numbers are accepted and a box without area (zero, negative or
  non-finite extent) has IoU 0 with everything: a broken export is measured, not refused.

Both compute in float64 and give 0 where the union has no area. On valid boxes the two give the
same values, bit for bit. :func:`box_ioa` shares their intersection: the share of each box of one
set inside each box of the other (how far a box lies within another, as IoU cannot tell).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = ["box_ioa", "box_iou", "check_boxes", "cxcywh_to_xyxy", "matched_box_iou", "xyxy_to_cxcywh"]


def check_boxes(boxes: object, name: str = "boxes") -> np.ndarray:
    """Return ``boxes`` as a float64 ``(N, 4)`` xyxy array, or raise naming ``name``.

    Parameters
    ----------
    boxes : (N, 4) array_like
        ``xmin, ymin, xmax, ymax``. Anything with no elements is read as ``(0, 4)``.
    name : str
        The argument's name, for the error messages.

    Returns
    -------
    (N, 4) float64 ndarray

    Raises
    ------
    TypeError
        If the values are not real numbers.
    ValueError
        If the shape is not ``(N, 4)``, a value is not finite, or a box has ``xmax < xmin`` or
        ``ymax < ymin``.

    Examples
    --------
    >>> check_boxes([[0, 0, 2, 3]])
    array([[0., 0., 2., 3.]])
    """
    arr = np.asarray(boxes)
    if arr.size == 0:
        return np.zeros((0, 4), np.float64)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers. Received dtype: {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must be an (N, 4) xyxy array. Received shape: {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite. Received: {arr[~np.isfinite(arr).all(axis=1)][:3].tolist()}")
    bad = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
    if bad.any():
        raise ValueError(f"{name} must have xmax >= xmin and ymax >= ymin. Received: {arr[bad][:3].tolist()}")
    return arr


def box_iou(boxes_a: ArrayLike, boxes_b: ArrayLike) -> np.ndarray:
    """Pairwise intersection over union of two sets of edge boxes.

    Parameters
    ----------
    boxes_a : (N, 4) array_like
    boxes_b : (M, 4) array_like
        ``xmin, ymin, xmax, ymax`` (edges).

    Returns
    -------
    (N, M) float64 ndarray
        IoU in [0, 1]; 0 where both boxes have no area.

    Raises
    ------
    TypeError, ValueError
        If either input is not a valid box array (see :func:`check_boxes`).

    Examples
    --------
    >>> box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [0, 0, 10, 10]])
    array([[0.33333333, 1.        ]])
    """
    a = check_boxes(boxes_a, "boxes_a")
    b = check_boxes(boxes_b, "boxes_b")
    return _iou(a[:, None, :], b[None, :, :])


def box_ioa(boxes_a: ArrayLike, boxes_b: ArrayLike) -> np.ndarray:
    """Pairwise share of each box of ``boxes_a`` that lies inside each box of ``boxes_b``
    (intersection over the area of the first).

    Parameters
    ----------
    boxes_a : (N, 4) array_like
    boxes_b : (M, 4) array_like
        ``xmin, ymin, xmax, ymax`` (edges), validated as by :func:`box_iou`.

    Returns
    -------
    (N, M) float64 ndarray
        In [0, 1]; 0 where the box of ``boxes_a`` has no area.

    Examples
    --------
    >>> box_ioa([[0, 0, 10, 10]], [[5, 0, 15, 10], [0, 0, 20, 20]])
    array([[0.5, 1. ]])
    """
    a = check_boxes(boxes_a, "boxes_a")
    b = check_boxes(boxes_b, "boxes_b")
    inter = _intersection(a[:, None, :], b[None, :, :])
    area = np.broadcast_to(_area(a)[:, None], inter.shape)
    return np.divide(inter, area, out=np.zeros_like(inter), where=area > 0)


def matched_box_iou(boxes_a: ArrayLike, boxes_b: ArrayLike) -> np.ndarray:
    """Intersection over union of paired edge boxes: row ``i`` of ``boxes_a`` with row ``i`` of ``boxes_b``.

    Parameters
    ----------
    boxes_a, boxes_b : (N, 4) array_like
        ``xmin, ymin, xmax, ymax`` (edges): pixels, or fractions of the image as a detector
        outputs. Values are not validated: a box with ``xmax <= xmin`` or ``ymax <= ymin``, or
        with a non-finite value, has IoU 0.

    Returns
    -------
    (N,) float64 ndarray

    Raises
    ------
    TypeError
        If the values are not real numbers.
    ValueError
        If the shapes are not both ``(N, 4)`` with the same N.

    Examples
    --------
    >>> matched_box_iou([[0, 0, 10, 10], [0, 0, 10, 10]], [[5, 0, 15, 10], [0, 0, 10, 10]])
    array([0.33333333, 1.        ])
    """
    a = _as_real(boxes_a, "boxes_a", np.float64)
    b = _as_real(boxes_b, "boxes_b", np.float64)
    if a.ndim != 2 or a.shape[1:] != (4,) or a.shape != b.shape:
        raise ValueError(f"boxes must both be (N, 4) with the same N. Received: boxes_a {a.shape}, "
                         f"boxes_b {b.shape}")
    return _iou(a, b)


def cxcywh_to_xyxy(boxes: ArrayLike, *, dtype: DTypeLike | None = None) -> np.ndarray:
    """``(cx, cy, w, h)`` -> ``(xmin, ymin, xmax, ymax)``, same units.

    Parameters
    ----------
    boxes : (N, 4) array_like
    dtype : floating dtype, optional
        The dtype the conversion computes in and returns. Default: the input's floating dtype
        (float64 for integers). ``np.float32`` rounds as the box model does.

    Returns
    -------
    (N, 4) ndarray

    Raises
    ------
    TypeError
        If the values are not real numbers or ``dtype`` is not a floating dtype.
    ValueError
        If the shape is not ``(N, 4)``.

    Examples
    --------
    >>> cxcywh_to_xyxy([[5, 4, 10, 2]])
    array([[ 0.,  3., 10.,  5.]])
    """
    b = _as_boxes(boxes, "boxes", dtype)
    return np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], 1)


def xyxy_to_cxcywh(boxes: ArrayLike, *, dtype: DTypeLike | None = None) -> np.ndarray:
    """``(xmin, ymin, xmax, ymax)`` -> ``(cx, cy, w, h)``, same units.

    Parameters
    ----------
    boxes : (N, 4) array_like
    dtype : floating dtype, optional
        The dtype the conversion computes in and returns. Default: the input's floating dtype
        (float64 for integers).

    Returns
    -------
    (N, 4) ndarray

    Raises
    ------
    TypeError
        If the values are not real numbers or ``dtype`` is not a floating dtype.
    ValueError
        If the shape is not ``(N, 4)``.

    Examples
    --------
    >>> xyxy_to_cxcywh([[0, 3, 10, 5]])
    array([[ 5.,  4., 10.,  2.]])
    """
    b = _as_boxes(boxes, "boxes", dtype)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of float64 edge boxes ``a`` and ``b`` (``(..., 4)``, broadcast against each other)."""
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Area shared by float64 edge boxes ``a`` and ``b`` (``(..., 4)``, broadcast)."""
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    return iw.clip(0) * ih.clip(0)


def _area(a: np.ndarray) -> np.ndarray:
    """Area of float64 edge boxes (``(..., 4)``); 0 for a box with no extent."""
    return (a[..., 2] - a[..., 0]).clip(0) * (a[..., 3] - a[..., 1]).clip(0)


def _as_real(values: ArrayLike, name: str, dtype: DTypeLike | None) -> np.ndarray:
    """``values`` as an array of ``dtype`` (default: its floating dtype, float64 for integers)."""
    arr = np.asarray(values)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers. Received dtype: {arr.dtype}")
    if dtype is None:
        dtype = arr.dtype if arr.dtype.kind == "f" else np.float64
    elif np.dtype(dtype).kind != "f":
        raise TypeError(f"dtype must be a floating dtype. Received: {np.dtype(dtype)}")
    return arr.astype(dtype, copy=False)


def _as_boxes(boxes: ArrayLike, name: str, dtype: DTypeLike | None) -> np.ndarray:
    arr = _as_real(boxes, name, dtype)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must be an (N, 4) array. Received shape: {arr.shape}")
    return arr
