"""Draw a class map over its photo: the "heatmap overlay of the last conv layer output" picture.

The map is scaled to [0, 1] by its own minimum and maximum, resized bilinearly to the image,
coloured with the jet colour map (blue low, red high) and blended over the image.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["heatmap_overlay"]


def heatmap_overlay(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45) -> np.ndarray:
    """Blend a jet-coloured heatmap over an RGB image.

    Parameters
    ----------
    image : (H, W, 3) uint8 ndarray
        RGB image to draw on.
    heatmap : (h, w) ndarray
        Any real values (e.g. one class map); any size, resized to (H, W).
    alpha : float
        Weight of the heatmap colour in [0, 1].

    Returns
    -------
    (H, W, 3) uint8 ndarray
        RGB. A constant heatmap is drawn as its lowest colour (blue).

    Raises
    ------
    TypeError
        If ``image`` is not uint8.
    ValueError
        If a shape is wrong, the heatmap is not finite, or ``alpha`` is outside [0, 1].

    Examples
    --------
    >>> out = heatmap_overlay(np.zeros((4, 6, 3), np.uint8), np.eye(2))
    >>> out.shape, out.dtype
    ((4, 6, 3), dtype('uint8'))
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8 RGB. Received dtype: {image.dtype}")
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3). Received shape: {image.shape}")
    heatmap = np.asarray(heatmap, np.float32)
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be (h, w). Received shape: {heatmap.shape}")
    if not np.all(np.isfinite(heatmap)):
        raise ValueError("heatmap must be finite. Received: NaN or inf values")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]. Received: {alpha!r}")
    low, high = float(heatmap.min()), float(heatmap.max())
    unit = (heatmap - low) / (high - low) if high > low else np.zeros_like(heatmap)
    height, width = image.shape[:2]
    unit = cv2.resize(unit, (width, height), interpolation=cv2.INTER_LINEAR)
    levels = np.clip(np.rint(unit * 255), 0, 255).astype(np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colour.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
