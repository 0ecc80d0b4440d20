"""Group-aware, stratified, seeded train/valid/test split.

Whole capture groups are assigned to one split each, so no burst or duplicate spans two splits.
Each group counts for the class most of its images carry; per class, the large groups (over a
quarter of the smallest target) are placed first, then the rest in seeded random order, each in
the split that leaves that class's counts closest to the target fractions (sum of squared
differences, each relative to its target). Large groups therefore land mostly in train; valid
and test are made of the smaller groups. A class with more groups than there are held-out splits
keeps at least one group in train and gets at least one in each split whose fraction is above 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datasets.groups import phash_distances

__all__ = ["SPLITS", "leakage", "split_groups"]

SPLITS = ("train", "valid", "test")


def split_groups(
    group: np.ndarray,
    labels: np.ndarray,
    *,
    valid: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
) -> np.ndarray:
    """Assign every image a split so that each capture group lies in one split.

    Parameters
    ----------
    group : (N,) int ndarray
        Capture group id per image.
    labels : (N,) int ndarray
        Class index per image.
    valid, test : float
        Target fractions of each class in valid and test; ``valid + test < 1``.
    seed : int
        Seed of the tie-breaking order; the same inputs and seed give the same split.

    Returns
    -------
    (N,) ndarray of str
        ``"train"``, ``"valid"`` or ``"test"`` per image.

    Raises
    ------
    ValueError
        If the fractions are out of range or the arrays differ in length.

    Examples
    --------
    >>> splits = split_groups(np.arange(8), np.zeros(8, int), valid=0.25, test=0.25)
    >>> sorted(splits.tolist())
    ['test', 'test', 'train', 'train', 'train', 'train', 'valid', 'valid']
    """
    group = np.asarray(group)
    labels = np.asarray(labels)
    if group.ndim != 1 or group.shape != labels.shape:
        raise ValueError(
            f"group and labels must be 1-D of equal length. Received shapes: {group.shape}, {labels.shape}"
        )
    for name, value in (("valid", valid), ("test", test)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise ValueError(f"{name} must be a fraction in [0, 1). Received: {name}={value!r}")
    if valid + test >= 1:
        raise ValueError(f"valid + test must be below 1 to leave training images. Received: {valid} + {test}")
    fractions = np.array([1.0 - valid - test, valid, test])
    rng = np.random.default_rng(seed)
    if group.size == 0:
        return np.array([], dtype=str)

    group_ids, inverse = np.unique(group, return_inverse=True)
    sizes = np.bincount(inverse)
    _, label_index = np.unique(labels, return_inverse=True)
    n_labels = int(label_index.max()) + 1
    counts = np.zeros((len(group_ids), n_labels), dtype=np.int64)
    np.add.at(counts, (inverse, label_index), 1)
    majority = counts.argmax(axis=1)  # ties: the lower label
    tiebreak = rng.permutation(len(group_ids))
    assignment = np.zeros(len(group_ids), dtype=np.int64)

    for label in range(n_labels):
        members = np.nonzero(majority == label)[0]
        if members.size == 0:
            continue
        target = fractions * sizes[members].sum()
        # Large groups first (they decide how close the fractions get), the rest in seeded random
        # order, so that valid and test are no collection of leftover small groups.
        large = sizes[members] > 0.25 * min(t for t in target if t > 0)
        members = members[np.lexsort((tiebreak[members], ~large))]
        filled = np.zeros(3)
        for g in members:
            # The split that leaves the counts closest to the targets (squared error relative to
            # each target); splits with a zero target are never chosen. Ties: valid, test, train.
            after = filled[None, :] + np.eye(3) * sizes[g]
            cost = (((after - target) ** 2) / np.maximum(target, 1e-9)).sum(axis=1)
            cost[target == 0] = np.inf
            choice = int(np.lexsort(([0, -2, -1], cost))[0])
            assignment[g] = choice
            filled[choice] += sizes[g]
        # Guarantee one group in every requested split when the class has enough groups.
        wanted = [s for s in (1, 2) if fractions[s] > 0]
        if members.size >= len(wanted) + 1:
            for s in wanted:
                if (assignment[members] == s).any():
                    continue
                donors = [g for g in members[::-1] if assignment[g] == 0]  # smallest first
                if len(donors) > 1:
                    assignment[donors[0]] = s
    return np.array(SPLITS)[assignment[inverse]]


def leakage(group: np.ndarray, splits: np.ndarray, phash: np.ndarray, *, near_threshold: int = 6) -> dict[str, Any]:
    """How much of valid and test is already in train: shared capture groups, near duplicates.

    Parameters
    ----------
    group : (N,) int ndarray
        Capture group id per image.
    splits : (N,) str ndarray
        ``"train"``, ``"valid"`` or ``"test"`` per image.
    phash : (N,) uint64 ndarray
        Perceptual hash per image.
    near_threshold : int
        Largest pHash distance that counts as a near duplicate.

    Returns
    -------
    dict
        ``groups_in_two_splits`` (count) and, per non-empty held-out split, ``{"images",
        "share_group_with_train", "near_duplicate_of_train"}``.

    Examples
    --------
    >>> leakage(np.array([0, 0, 1]), np.array(["train", "valid", "test"]), np.array([0, 0, 2**64 - 1], np.uint64))
    {'groups_in_two_splits': 1, 'valid': {'images': 1, 'share_group_with_train': 1, 'near_duplicate_of_train': 1}, \
'test': {'images': 1, 'share_group_with_train': 0, 'near_duplicate_of_train': 0}}
    """
    group = np.asarray(group)
    splits = np.asarray(splits)
    phash = np.asarray(phash, dtype=np.uint64)
    if not group.shape == splits.shape == phash.shape or group.ndim != 1:
        raise ValueError(f"group, splits and phash must be 1-D of equal length. Received shapes: "
                         f"{group.shape}, {splits.shape}, {phash.shape}")
    _, group_index = np.unique(group, return_inverse=True)
    _, split_index = np.unique(splits, return_inverse=True)
    pairs = np.unique(np.stack([group_index, split_index]), axis=1)  # distinct (group, split)
    spanning = int((np.bincount(pairs[0]) > 1).sum()) if group.size else 0
    result: dict[str, Any] = {"groups_in_two_splits": spanning}
    train = splits == "train"
    for name in ("valid", "test"):
        held = splits == name
        if not held.any():
            continue
        near = 0
        if train.any():
            near = int((phash_distances(phash[held], phash[train]).min(axis=1) <= near_threshold).sum())
        result[name] = {"images": int(held.sum()),
                        "share_group_with_train": int(np.isin(group[held], group[train]).sum()),
                        "near_duplicate_of_train": near}
    return result
