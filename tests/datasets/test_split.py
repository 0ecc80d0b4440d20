import numpy as np
import pytest

from datasets.split import leakage, split_groups


def _data(n_groups=60, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n_groups)
    group = np.repeat(np.arange(n_groups), sizes)
    labels = np.repeat(np.arange(n_groups) % 2, sizes)
    return group, labels


class TestSplitGroups:
    def test_no_group_in_two_splits(self):
        group, labels = _data()
        splits = split_groups(group, labels, valid=0.15, test=0.15, seed=1)
        for g in np.unique(group):
            assert len(set(splits[group == g])) == 1

    def test_fractions_per_class_are_close(self):
        group, labels = _data(200)
        splits = split_groups(group, labels, valid=0.15, test=0.15, seed=0)
        for label in (0, 1):
            n = (labels == label).sum()
            for name, fraction in (("train", 0.7), ("valid", 0.15), ("test", 0.15)):
                share = ((splits == name) & (labels == label)).sum() / n
                assert abs(share - fraction) < 0.03, (label, name, share)

    def test_seeded_and_deterministic(self):
        group, labels = _data()
        a = split_groups(group, labels, seed=3)
        assert (a == split_groups(group, labels, seed=3)).all()
        assert (a != split_groups(group, labels, seed=4)).any()

    def test_every_requested_split_gets_a_group_per_class(self):
        group = np.arange(6)
        labels = np.array([0, 0, 0, 1, 1, 1])
        splits = split_groups(group, labels, valid=0.1, test=0.1)
        for label in (0, 1):
            assert set(splits[labels == label]) == {"train", "valid", "test"}

    def test_zero_test_fraction_leaves_test_empty(self):
        group, labels = _data()
        splits = split_groups(group, labels, valid=0.2, test=0.0)
        assert "test" not in set(splits) and "valid" in set(splits)

    def test_mixed_group_goes_with_its_majority_class(self):
        group = np.array([0, 0, 0, 1, 2, 3])
        labels = np.array([0, 0, 1, 1, 1, 1])
        splits = split_groups(group, labels, valid=0.2, test=0.2)
        assert len(set(splits[group == 0])) == 1

    def test_empty(self):
        assert split_groups(np.array([], int), np.array([], int)).size == 0

    def test_errors(self):
        with pytest.raises(ValueError, match="equal length"):
            split_groups(np.arange(3), np.arange(2))
        with pytest.raises(ValueError, match="valid must be a fraction"):
            split_groups(np.arange(3), np.zeros(3, int), valid=1.5)
        with pytest.raises(ValueError, match="test must be a fraction"):
            split_groups(np.arange(3), np.zeros(3, int), test=-0.1)
        with pytest.raises(ValueError, match="valid \\+ test must be below 1"):
            split_groups(np.arange(3), np.zeros(3, int), valid=0.5, test=0.5)


class TestLeakage:
    def test_counts_shared_groups_and_near_duplicates(self):
        group = np.array([0, 0, 1, 2, 2, 3])
        splits = np.array(["train", "valid", "train", "valid", "test", "test"])
        far = 2**64 - 1
        phash = np.array([0, 0b11, far, 0xF0F0, 0xF0F0, far - 1], np.uint64)
        report = leakage(group, splits, phash, near_threshold=2)
        assert report["groups_in_two_splits"] == 2
        assert report["valid"] == {"images": 2, "share_group_with_train": 1, "near_duplicate_of_train": 1}
        # The last image is one bit from a training image without sharing its group.
        assert report["test"] == {"images": 2, "share_group_with_train": 0, "near_duplicate_of_train": 1}

    def test_split_from_split_groups_does_not_leak(self):
        group, labels = _data()
        splits = split_groups(group, labels)
        phash = np.random.default_rng(0).integers(0, 2**63, group.max() + 1, dtype=np.uint64)[group]
        report = leakage(group, splits, phash)
        assert report["groups_in_two_splits"] == 0
        assert report["valid"]["share_group_with_train"] == report["test"]["share_group_with_train"] == 0

    def test_missing_splits_and_errors(self):
        report = leakage(np.array([0]), np.array(["train"]), np.array([0], np.uint64))
        assert report == {"groups_in_two_splits": 0}
        with pytest.raises(ValueError, match="equal length"):
            leakage(np.array([0, 1]), np.array(["train"]), np.array([0], np.uint64))
