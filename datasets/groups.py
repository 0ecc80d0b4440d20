"""Capture groups: exact duplicates, near duplicates and bursts joined with union-find.

A capture group holds images that must not be spread over train, valid and test, because one
would leak into the other: the same file twice (equal SHA-256), a re-saved or slightly edited
copy (pHash Hamming distance at most ``near_threshold``) and frames of one burst (taken within
``burst_seconds`` of each other, or with consecutive file numbers like ``IMG_0002``/``IMG_0003``
no more than ``burst_gap`` apart).

Rules, measured on the 721 block photos (pHash distances of 64-bit hashes):

- Different classes never come closer than 14; frames one file number apart have a median of 8,
  random pairs of one class a median of 28 (1st percentile 20). ``near_threshold=6`` therefore
  joins only near-identical frames, and any such pair across classes is a *label conflict*.
- Burst rules (time and file number) only link images *of the same class*: two classes
  photographed one after the other get consecutive numbers without being the same capture.
  Numbers are compared within one file-name prefix (``IMG_``, ``DSC_``...), across split folders.
- Chained file numbers run through whole photo sessions (``IMG_0754`` to ``IMG_0949`` with
  gaps of 1 to 3 is one chain), so a burst link must also look alike: pHash distance at most
  ``burst_max_distance`` (16; ``None`` switches the check off). On the block photos that gives
  181 groups (largest 32) instead of 50 (largest 55) for numbers alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from datasets.images import colour_distance

__all__ = ["CaptureGroups", "capture_groups", "file_number", "parse_phash", "phash_distances"]

_FILE_NUMBER = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)$")


@dataclass(frozen=True)
class CaptureGroups:
    """The result of :func:`capture_groups`.

    Attributes
    ----------
    group : (N,) int ndarray
        Group id per image, ``0..count-1`` numbered by first appearance.
    conflicts : tuple of dict
        One per pair of images of *different* labels that are the same picture:
        ``{"a": i, "b": j, "kind": "exact" | "near", "distance": d}`` (indices into the input).
    links : dict
        How many pairs each rule linked: ``exact``, ``near``, ``burst_time``, ``burst_number``.
    """

    group: np.ndarray
    conflicts: tuple[dict[str, Any], ...]
    links: dict[str, int]

    @property
    def count(self) -> int:
        """Number of groups."""
        return int(self.group.max()) + 1 if self.group.size else 0

    def report(self) -> dict[str, Any]:
        """Counts for the manifest: groups, their size histogram, largest sizes, links per rule."""
        sizes = np.bincount(self.group) if self.group.size else np.zeros(0, int)
        histogram = np.bincount(sizes) if sizes.size else np.zeros(1, int)
        return {
            "count": self.count,
            "singletons": int((sizes == 1).sum()),
            "largest": sorted((int(s) for s in sizes), reverse=True)[:10],
            "size_histogram": {str(size): int(n) for size, n in enumerate(histogram) if n and size},
            "links": dict(self.links),
        }


def phash_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between two sets of 64-bit hashes.

    Parameters
    ----------
    a : (N,) uint64 ndarray
    b : (M,) uint64 ndarray

    Returns
    -------
    (N, M) int ndarray

    Examples
    --------
    >>> phash_distances(np.array([0b1011], np.uint64), np.array([0, 1], np.uint64))
    array([[3, 2]])
    """
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    return np.bitwise_count(a[:, None] ^ b[None, :]).astype(np.int64)


def parse_phash(hex_hashes: list[str] | tuple[str, ...]) -> np.ndarray:
    """Hex pHash strings (as ``str(imagehash.phash(...))``) to a (N,) uint64 array."""
    return np.array([int(h, 16) for h in hex_hashes], dtype=np.uint64)


def file_number(stem: str) -> tuple[str, int] | None:
    """Split a file stem like ``IMG_0002`` into its prefix (lower case) and number.

    >>> file_number("IMG_0002"), file_number("photo")
    (('img_', 2), None)
    """
    match = _FILE_NUMBER.match(stem)
    if not match:
        return None
    return match["prefix"].lower(), int(match["number"])


def capture_groups(
    sha256: list[str] | tuple[str, ...],
    phash: np.ndarray,
    labels: np.ndarray,
    *,
    times: np.ndarray | None = None,
    stems: list[str] | tuple[str, ...] | None = None,
    near_threshold: int = 6,
    burst_seconds: float | None = 2.0,
    burst_gap: int | None = 2,
    burst_max_distance: int | None = 16,
    colours: list[str] | tuple[str, ...] | None = None,
    colour_max_distance: float | None = 0.5,
) -> CaptureGroups:
    """Join images into capture groups and find label conflicts.

    Parameters
    ----------
    sha256 : sequence of N str
        SHA-256 of each source file.
    phash : (N,) uint64 ndarray
        Perceptual hash of each image (see :func:`parse_phash`).
    labels : (N,) int ndarray
        Class index of each image.
    times : (N,) float ndarray, optional
        Capture time in seconds (any epoch), NaN where unknown.
    stems : sequence of N str, optional
        File names without extension, for file-number bursts.
    near_threshold : int
        Largest pHash distance (0-64) of near duplicates; negative disables them.
    burst_seconds : float or None
        Largest time between consecutive frames of a burst (same label); None disables.
    burst_gap : int or None
        Largest file-number step between consecutive frames of a burst (same label and
        prefix); None disables.
    burst_max_distance : int or None
        A burst link (time or number) also needs a pHash distance at most this; None: no check.
    colours : sequence of N str, optional
        :func:`datasets.images.colour_signature` of each image ("" where unknown).
    colour_max_distance : float in [0, 1] or None
        A near-duplicate or burst link (and so a label conflict) also needs a
        :func:`datasets.images.colour_distance` at most this, when both colours are known: the
        pHash is colour-blind (a solid green and a solid blue photo hash alike). None: no check.

    Returns
    -------
    CaptureGroups

    Raises
    ------
    ValueError
        If the inputs differ in length or a threshold is out of range.

    Examples
    --------
    >>> g = capture_groups(["a", "a", "b"], np.array([0, 0, 2**64 - 1], np.uint64), np.array([0, 1, 0]))
    >>> g.group.tolist(), g.conflicts[0]["kind"]
    ([0, 0, 1], 'exact')
    """
    n = len(sha256)
    phash = np.asarray(phash, dtype=np.uint64)
    labels = np.asarray(labels)
    if phash.shape != (n,) or labels.shape != (n,):
        raise ValueError(
            f"sha256, phash and labels must have one entry per image. Received lengths: "
            f"{n}, {phash.shape}, {labels.shape}"
        )
    if times is not None and np.shape(times) != (n,):
        raise ValueError(f"times must have {n} entries. Received shape: {np.shape(times)}")
    if stems is not None and len(stems) != n:
        raise ValueError(f"stems must have {n} entries. Received: {len(stems)}")
    if colours is not None and len(colours) != n:
        raise ValueError(f"colours must have {n} entries. Received: {len(colours)}")
    if colour_max_distance is not None and not 0 <= colour_max_distance <= 1:
        raise ValueError(f"colour_max_distance must be in [0, 1] or None. Received: {colour_max_distance!r}")
    if not isinstance(near_threshold, int) or near_threshold > 64:
        raise ValueError(f"near_threshold must be an int <= 64. Received: near_threshold={near_threshold!r}")
    if burst_gap is not None and (not isinstance(burst_gap, int) or burst_gap < 1):
        raise ValueError(f"burst_gap must be a positive int or None. Received: burst_gap={burst_gap!r}")
    if burst_seconds is not None and not burst_seconds >= 0:
        raise ValueError(f"burst_seconds must be >= 0 or None. Received: burst_seconds={burst_seconds!r}")

    parent = np.arange(n)

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return int(root)

    def union(i: int, j: int) -> bool:
        ri, rj = find(i), find(j)
        if ri == rj:
            return False
        parent[max(ri, rj)] = min(ri, rj)
        return True

    links = {"exact": 0, "near": 0, "burst_time": 0, "burst_number": 0}
    conflicts: list[dict[str, Any]] = []

    first_of: dict[str, int] = {}
    for i, digest in enumerate(sha256):
        j = first_of.setdefault(digest, i)
        if j != i:
            links["exact"] += union(j, i)
            if labels[i] != labels[j]:
                conflicts.append({"a": j, "b": i, "kind": "exact", "distance": 0})

    def same_colours(i: int, j: int) -> bool:
        if colours is None or colour_max_distance is None:
            return True
        distance = colour_distance(colours[i], colours[j])
        return distance is None or distance <= colour_max_distance

    def looks_alike(i: int, j: int) -> bool:
        if burst_max_distance is not None and int(np.bitwise_count(phash[i] ^ phash[j])) > burst_max_distance:
            return False
        return same_colours(i, j)

    chunk = 1024
    for start in range(0, n, chunk):
        block = phash_distances(phash[start:start + chunk], phash)
        rows, cols = np.nonzero(block <= near_threshold)
        for r, j in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if j <= i or sha256[i] == sha256[j] or not same_colours(i, j):
                continue
            links["near"] += union(i, j)
            if labels[i] != labels[j]:
                conflicts.append({"a": i, "b": j, "kind": "near", "distance": int(block[r, j])})

    if times is not None and burst_seconds is not None:
        times = np.asarray(times, dtype=np.float64)
        for label in np.unique(labels):
            index = np.nonzero((labels == label) & np.isfinite(times))[0]
            index = index[np.argsort(times[index], kind="stable")]
            for i, j in zip(index[:-1].tolist(), index[1:].tolist(), strict=True):
                if times[j] - times[i] <= burst_seconds and looks_alike(i, j):
                    links["burst_time"] += union(i, j)

    if stems is not None and burst_gap is not None:
        series: dict[tuple[Any, str], list[tuple[int, int]]] = {}
        for i, stem in enumerate(stems):
            parsed = file_number(stem)
            if parsed is not None:
                series.setdefault((labels[i].item(), parsed[0]), []).append((parsed[1], i))
        for members in series.values():
            members.sort()
            for (a_num, i), (b_num, j) in zip(members[:-1], members[1:], strict=True):
                if b_num - a_num <= burst_gap and looks_alike(i, j):
                    links["burst_number"] += union(i, j)

    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # renumber groups by first appearance
    group = order[inverse].astype(np.int64)
    conflicts.sort(key=lambda c: (c["a"], c["b"]))
    return CaptureGroups(group=group, conflicts=tuple(conflicts), links=links)
