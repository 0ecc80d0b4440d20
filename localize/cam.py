"""Class activation maps from the classifier's class-map output.

A boxstrap classifier's ``class_map`` output ``(N, h, w, C)`` is the 1x1 class convolution the
class scores pool over (Zhou et al., CVPR 2016): its channel ``c`` *is* the CAM of class ``c``.
:func:`class_activation_map` picks a class, upsamples that channel bilinearly to the image size
and min-max normalises it.
"""

from __future__ import annotations

import logging
import numbers

import cv2
import numpy as np

from localize.boxes import check_image_size

__all__ = ["class_activation_map", "upsample_normalize"]

log = logging.getLogger(__name__)


def class_activation_map(
    class_map: np.ndarray,
    *,
    image_size: tuple[int, int],
    class_index: int | None = None,
    probabilities: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """One class's activation map at image size, normalised to [0, 1].

    Parameters
    ----------
    class_map : (h, w, C) array_like of real numbers
        The classifier's ``class_map`` output for one image.
    image_size : (height, width)
        Size to upsample to (bilinear, pixel centres aligned as in ``cv2.resize``).
    class_index : int, optional
        The class to map. Default: argmax of ``probabilities`` if given, else the class whose
        map has the highest mean (the class a global-average-pooling head predicts).
    probabilities : (C,) array_like, optional
        The classifier's ``probabilities`` output for the image.

    Returns
    -------
    heatmap : (height, width) float32 ndarray
        Min-max normalised to [0, 1]; all zeros if the map is flat (it holds no location).
    class_index : int
        The class mapped.

    Raises
    ------
    TypeError
        If ``class_map`` is not a real-valued array or ``class_index`` not an int.
    ValueError
        If ``class_map`` is not 3-D with at least one class, holds NaN/inf, ``class_index`` is out
        of range, ``probabilities`` does not have ``C`` values, or ``image_size`` is invalid.

    Examples
    --------
    >>> cm = np.zeros((2, 2, 2), np.float32); cm[0, 0, 1] = 4.0
    >>> heat, c = class_activation_map(cm, image_size=(4, 4))
    >>> c, heat.shape, float(heat.max()), float(heat[3, 3])
    (1, (4, 4), 1.0, 0.0)
    """
    cm = np.asarray(class_map)
    if cm.dtype == bool or cm.dtype.kind not in "iuf":
        raise TypeError(f"class_map must be a real-valued array. Received dtype: {cm.dtype}")
    if cm.ndim != 3 or min(cm.shape) < 1:
        raise ValueError(f"class_map must be (h, w, C) for one image. Received shape: {cm.shape}")
    cm = cm.astype(np.float32)
    if not np.isfinite(cm).all():
        raise ValueError("class_map holds NaN or inf: the model's output is broken "
                         f"({int((~np.isfinite(cm)).sum())} of {cm.size} values).")
    size = check_image_size(image_size)
    n_classes = cm.shape[-1]
    if class_index is None:
        if probabilities is not None:
            probs = np.asarray(probabilities, np.float64).reshape(-1)
            if probs.shape != (n_classes,):
                raise ValueError(f"probabilities must have one value per class ({n_classes}). "
                                 f"Received shape: {np.shape(probabilities)}")
            class_index = int(np.argmax(probs))
        else:
            class_index = int(np.argmax(cm.mean(axis=(0, 1))))
    elif isinstance(class_index, bool) or not isinstance(class_index, numbers.Integral):
        raise TypeError(f"class_index must be an int. Received: class_index={class_index!r}")
    elif not 0 <= class_index < n_classes:
        raise ValueError(f"class_index must be in [0, {n_classes - 1}]. Received: class_index={class_index}")
    return upsample_normalize(cm[..., int(class_index)], size), int(class_index)


def upsample_normalize(heatmap: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize a finite 2-D map to ``(height, width)`` and min-max normalise it to
    float32 [0, 1] (zeros if flat)."""
    height, width = check_image_size(image_size)
    small = np.asarray(heatmap, np.float32)
    if small.shape != (height, width):
        small = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    lo, hi = float(small.min()), float(small.max())
    if not hi > lo:
        log.debug("class map is flat: returning an all-zero heatmap")
        return np.zeros((height, width), np.float32)
    return ((small - lo) / (hi - lo)).astype(np.float32)
