"""Procedural background textures of the synthetic scenes: wood, carpet, fabric, granite, paper, tiles.

Each texture is a base colour drawn from the kind's palette times a shading field built from
smooth low-frequency noise, fine grain and (per kind) rings, folds, weave, speckles or a tile
grid; ``"gradient"`` blends two colours. Every random choice comes from the ``rng`` given, in a
fixed order, so a generator state fixes the texture (:mod:`datasets.synthetic` relies on it:
a seed fixes a scene).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["KINDS", "texture"]

KINDS = ("wood", "carpet", "fabric", "granite", "paper", "tiles", "gradient")


def texture(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Draw a background texture of ``kind``.

    Parameters
    ----------
    kind : {"wood", "carpet", "fabric", "granite", "paper", "tiles", "gradient"}
    height, width : int
        Size in pixels, at least 1.
    rng : numpy.random.Generator
        Source of every random choice; the same generator state gives the same texture.

    Returns
    -------
    (height, width, 3) float32 ndarray
        Linear RGB, about [0, 1] (not clipped).

    Raises
    ------
    ValueError
        If ``kind`` is not one of :data:`KINDS` or the size is not two positive ints.
    TypeError
        If ``rng`` is not a ``numpy.random.Generator``.

    Examples
    --------
    >>> texture("wood", 48, 64, np.random.default_rng(0)).shape
    (48, 64, 3)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}. Received: {kind!r}")
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1. Received: {value!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator. Received: {type(rng).__name__}")
    return _texture(kind, int(height), int(width), rng)


def _texture(kind: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    base = np.clip(_palette(rng, kind), 0.05, 1.0).astype(np.float32)
    angle = rng.uniform(0, np.pi)
    if kind == "wood":
        u, v = _rotated(height, width, angle)
        period = rng.uniform(12, 40)
        warp = _lowfreq(height, width, 2, rng) * rng.uniform(1.5, 5)
        rings = 0.5 + 0.5 * np.sin(2 * np.pi * (v + warp * period / 6) / period)
        streak = cv2.resize(rng.standard_normal((height, max(2, width // 40))).astype(np.float32), (width, height))
        shade = 0.8 + 0.2 * rings ** 3 + 0.05 * _fine(height, width, 0.7, rng)
        shade += 0.04 * cv2.warpAffine(streak, cv2.getRotationMatrix2D((width / 2, height / 2),
                                                                       np.degrees(angle), 1.3), (width, height),
                                       borderMode=cv2.BORDER_REFLECT)
    elif kind == "carpet":
        tufts = _fine(height, width, rng.uniform(1.0, 2.5), rng)
        shade = 0.8 + 0.12 * tufts + 0.08 * _fine(height, width, 0.6, rng) + 0.05 * _lowfreq(height, width, 4, rng)
    elif kind == "fabric":
        u, v = _rotated(height, width, angle)
        folds = _lowfreq(height, width, rng.uniform(1.5, 4), rng)
        weave = 0.5 + 0.5 * np.sin(u * 2.2) * np.sin(v * 2.2)
        shade = 0.85 + 0.13 * folds + 0.03 * weave + 0.02 * _fine(height, width, 0.5, rng)
        if rng.random() < 0.4:  # printed pattern (small dark triangles)
            pattern = np.zeros((height, width), np.float32)
            step = int(rng.integers(40, 90))
            for y in range(-step, height + step, step):
                for x in range(-step, width + step, step):
                    px, py = x + rng.uniform(-step / 3, step / 3) + (step / 2 if (y // step) % 2 else 0), y
                    s = rng.uniform(6, 14)
                    tri = np.array([[px, py - s], [px - s * 0.8, py + s * 0.7], [px + s * 0.8, py + s * 0.7]])
                    cv2.fillConvexPoly(pattern, tri.astype(np.int32), 1.0, cv2.LINE_AA)
            shade = shade * (1 - 0.55 * cv2.GaussianBlur(pattern, (0, 0), 0.8))
    elif kind == "granite":
        dots = np.zeros((height, width), np.float32)
        count = int(0.02 * height * width)
        dots[rng.integers(0, height, count), rng.integers(0, width, count)] = rng.standard_normal(
            count, dtype=np.float32)
        shade = (0.85 + 0.1 * _lowfreq(height, width, 5, rng) + 0.6 * cv2.GaussianBlur(dots, (0, 0), 1.0)
                 + 0.05 * _fine(height, width, 1.5, rng))
    elif kind == "paper":
        shade = 0.95 + 0.015 * _fine(height, width, 0.8, rng) + 0.03 * _lowfreq(height, width, 2, rng)
    elif kind == "tiles":
        u, v = _rotated(height, width, rng.uniform(-0.3, 0.3))
        tile = rng.uniform(60, 170)
        grout = rng.uniform(0.03, 0.07)
        u, v = u / np.float32(tile) + 1000, v / np.float32(tile) + 1000
        iu, iv = u.astype(np.int32), v.astype(np.int32)
        table = rng.normal(0, 0.04, (64, 64)).astype(np.float32)
        shade = 0.9 + table[iu % 64, iv % 64] + 0.02 * _fine(height, width, 0.8, rng)
        shade[((u - iu) < grout) | ((v - iv) < grout)] = 0.6
    else:  # gradient
        other = np.clip(_palette(rng, "gradient"), 0.05, 1).astype(np.float32)
        u, _ = _rotated(height, width, angle * 2)
        t = (u - u.min()) / (np.ptp(u) + 1e-6)
        img = base * (1 - t[:, :, None]) + other * t[:, :, None]
        return (img * (1 + 0.02 * _fine(height, width, 1.0, rng))[:, :, None]).astype(np.float32)
    shade = (shade * (1 + 0.04 * _lowfreq(height, width, 2, rng))).astype(np.float32)
    return shade[:, :, None] * base


# --- noise fields ------------------------------------------------------------------------------

def _lowfreq(height: int, width: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise, about unit variance, with ``cells`` bumps across the short side."""
    short = min(height, width)
    gh, gw = max(2, round(cells * height / short)) + 1, max(2, round(cells * width / short)) + 1
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _fine(height: int, width: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise with grain ``sigma`` pixels (coarse grain drawn small and upsampled)."""
    step = max(1.0, sigma)
    small = rng.standard_normal((int(np.ceil(height / step)), int(np.ceil(width / step))), dtype=np.float32)
    if step > 1:
        small = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    else:
        small = cv2.GaussianBlur(small, (0, 0), sigma) if sigma > 0 else small
    return small / (small.std() + 1e-6)


def _rotated(height: int, width: int, angle: float):
    yy, xx = np.ogrid[0:height, 0:width]
    xx, yy = xx.astype(np.float32), yy.astype(np.float32)
    ca, sa = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return xx * ca + yy * sa, -xx * sa + yy * ca


def _palette(rng: np.random.Generator, kind: str) -> np.ndarray:
    if kind == "wood":
        return np.array([0.55, 0.36, 0.20]) * rng.uniform(0.7, 1.25) + rng.normal(0, 0.04, 3)
    if kind == "paper":
        return np.array([0.93, 0.91, 0.86]) + rng.normal(0, 0.03, 3)
    if kind == "granite":
        return np.array([0.72, 0.55, 0.42]) * rng.uniform(0.7, 1.2) + rng.normal(0, 0.05, 3)
    # carpet, fabric, tiles, gradient: any hue, mostly muted, sometimes saturated (an orange sheet)
    hsv = np.uint8([[[rng.integers(0, 180), rng.choice([rng.integers(0, 60), rng.integers(120, 255)]),
                      rng.integers(90, 240)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0
