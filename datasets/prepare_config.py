"""``PrepareConfig``: the settings of ``boxstrap prepare`` (sizes, split fractions, grouping rules)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PrepareConfig"]


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of ``boxstrap prepare``; saved as ``DIR/prepare_config.json``.

    Parameters
    ----------
    src, out : path
        Source folder (read only) and output folder.
    max_side : int
        Longest side of the prepared images; smaller photos are not enlarged.
    valid, test : float
        Fractions per class for a new split (folder-per-class input or ``resplit``).
    seed : int
        Seed of the split.
    phash_threshold : int
        Largest pHash distance (of 64 bits) of near duplicates (same group; a label conflict
        across classes).
    burst_seconds : float or None
        Photos of one class taken at most this far apart (EXIF time) are one burst.
    burst_gap : int or None
        Photos of one class whose file numbers (``IMG_0002``) differ by at most this are one burst.
    burst_max_distance : int or None
        A burst link also needs a pHash distance at most this (``None``: numbers/time alone).
    colour_max_distance : float in [0, 1] or None
        A near-duplicate or burst link also needs the photos' coarse colour histograms to differ by
        at most this share of pixels (:func:`datasets.images.colour_distance`); ``None``: no check.
        The pHash is colour-blind: a solid green and a solid blue photo are "distance 0". On the
        721 block photos, pairs within one capture group differ by at most 0.27 (99th percentile
        0.19), pairs of different classes by 0.86 in the median: 0.5 splits no group there.
    resplit : bool
        Pool a given ``training/valid/test`` layout and split it anew.
    strict : bool
        Stop at the first unreadable image instead of skipping it.
    overwrite : bool
        Replace a different earlier run in ``out``.
    """

    src: Path
    out: Path
    max_side: int = 640
    valid: float = 0.15
    test: float = 0.15
    seed: int = 0
    phash_threshold: int = 6
    burst_seconds: float | None = 2.0
    burst_gap: int | None = 2
    burst_max_distance: int | None = 16
    colour_max_distance: float | None = 0.5
    resplit: bool = False
    strict: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in ("src", "out"):
            value = getattr(self, name)
            if not isinstance(value, str | os.PathLike):
                raise TypeError(f"{name} must be a path. Received: {name}={value!r}")
            object.__setattr__(self, name, Path(value))
        _check_int("max_side", self.max_side, 16)
        _check_int("seed", self.seed, 0)
        _check_int("phash_threshold", self.phash_threshold, 0, 64)
        if self.burst_gap is not None:
            _check_int("burst_gap", self.burst_gap, 1)
        if self.burst_max_distance is not None:
            _check_int("burst_max_distance", self.burst_max_distance, 0, 64)
        if self.colour_max_distance is not None and (
            isinstance(self.colour_max_distance, bool) or not isinstance(self.colour_max_distance, int | float)
            or not 0 <= self.colour_max_distance <= 1
        ):
            raise ValueError(f"colour_max_distance must be in [0, 1] or None. "
                             f"Received: colour_max_distance={self.colour_max_distance!r}")
        if self.burst_seconds is not None and (
            isinstance(self.burst_seconds, bool) or not isinstance(self.burst_seconds, int | float)
            or not self.burst_seconds >= 0
        ):
            raise ValueError(f"burst_seconds must be >= 0 or None. Received: burst_seconds={self.burst_seconds!r}")
        for name in ("valid", "test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                raise ValueError(f"{name} must be a fraction in [0, 1). Received: {name}={value!r}")
        if self.valid + self.test >= 1:
            raise ValueError(f"valid + test must be below 1. Received: valid={self.valid}, test={self.test}")
        for name in ("resplit", "strict", "overwrite"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool. Received: {name}={getattr(self, name)!r}")


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        limits = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an int {limits}. Received: {name}={value!r}")
