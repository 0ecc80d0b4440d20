"""DDT co-localisation: the common object of a set of images from their deep descriptors.

Deep Descriptor Transforming (Wei et al., "Unsupervised object discovery and co-localization by
deep descriptor transformation", Pattern Recognition 2019): the convolutional descriptors of
*all* positions of *all* images of one class are centred and projected on their first principal
component. Where the projection is positive the descriptor is "like the thing these images
share" (the object); the box is the largest positive component. It needs no training, only the
class's images and a feature layer (e.g. the input of the classifier's class convolution).

The eigenvector's sign is arbitrary. With ``reference`` maps (the class activation maps) the sign
is the one whose projection correlates positively with them; without, the one that makes the
positive region the smaller part of the images (objects are usually smaller than their
background; documented heuristic).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["ddt_maps"]

log = logging.getLogger(__name__)


def ddt_maps(
    features: Sequence[np.ndarray],
    *,
    reference: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Project every image's descriptors on the set's first principal component.

    Parameters
    ----------
    features : sequence of (h_i, w_i, D) arrays
        Descriptor maps of images of one class (same ``D``; sizes may differ).
    reference : sequence of (H_i, W_i) arrays, optional
        One map per image (e.g. CAMs, any size) used to orient the component's sign.

    Returns
    -------
    list of (h_i, w_i) float32 ndarrays
        Projections; positive means "common object". Turn one into a box with
        ``heatmap_to_boxes(np.maximum(p, 0), threshold=1e-6)`` (the positive region).

    Raises
    ------
    TypeError
        If a feature map is not real-valued.
    ValueError
        If ``features`` is empty, a map is not 3-D, the ``D`` differ, a value is not finite,
        or ``reference`` has a different length.

    Examples
    --------
    >>> f = np.zeros((2, 4, 4, 3), np.float32); f[:, 1:3, 1:3, 0] = 1.0
    >>> p = ddt_maps(list(f))
    >>> bool(p[0][1, 1] > 0 > p[0][0, 0])
    True
    """
    maps = _check_features(features)
    if reference is not None and len(reference) != len(maps):
        raise ValueError(f"reference must have one map per image ({len(maps)}). Received {len(reference)}")
    flat = np.concatenate([m.reshape(-1, m.shape[-1]) for m in maps]).astype(np.float64)
    mean = flat.mean(axis=0)
    centred = flat - mean
    cov = centred.T @ centred / max(1, len(flat) - 1)
    values, vectors = np.linalg.eigh(cov)
    component = vectors[:, -1]
    if values[-1] <= 0:
        log.warning("DDT: the descriptors do not vary; every projection is 0")
    proj = [((m.reshape(-1, m.shape[-1]) - mean) @ component).reshape(m.shape[:2]) for m in maps]
    if _sign(proj, reference) < 0:
        proj = [-p for p in proj]
    return [p.astype(np.float32) for p in proj]


def _sign(proj: list[np.ndarray], reference: Sequence[np.ndarray] | None) -> float:
    if reference is None:
        positive = np.mean(np.concatenate([p.ravel() for p in proj]) > 0)
        return 1.0 if positive <= 0.5 else -1.0
    total = 0.0
    for p, ref in zip(proj, reference, strict=True):
        r = np.asarray(ref, np.float32)
        if r.ndim != 2 or not np.isfinite(r).all():
            raise ValueError(f"reference maps must be finite 2-D arrays. Received shape {r.shape}")
        r = cv2.resize(r, (p.shape[1], p.shape[0]), interpolation=cv2.INTER_AREA)
        if r.std() > 0 and p.std() > 0:
            total += float(np.corrcoef(r.ravel(), p.ravel())[0, 1])
    return 1.0 if total >= 0 else -1.0


def _check_features(features: Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(features) == 0:
        raise ValueError("features is empty: DDT needs the descriptor maps of at least one image.")
    out, depth = [], None
    for i, f in enumerate(features):
        arr = np.asarray(f)
        if arr.dtype == bool or arr.dtype.kind not in "iuf":
            raise TypeError(f"features[{i}] must be real-valued. Received dtype: {arr.dtype}")
        if arr.ndim != 3 or min(arr.shape) < 1:
            raise ValueError(f"features[{i}] must be (h, w, D). Received shape: {arr.shape}")
        if depth is not None and arr.shape[-1] != depth:
            raise ValueError(f"features[{i}] has D={arr.shape[-1]}, the first map D={depth}; they must agree.")
        if not np.isfinite(arr).all():
            raise ValueError(f"features[{i}] holds NaN or inf.")
        depth = arr.shape[-1]
        out.append(arr)
    return out
