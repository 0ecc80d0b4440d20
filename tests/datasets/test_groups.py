import numpy as np
import pytest

from datasets.groups import capture_groups, file_number, parse_phash, phash_distances

FAR = np.uint64(2**64 - 1)  # 64 bits away from hash 0


def _hashes(*values):
    return np.array(values, dtype=np.uint64)


class TestPhashDistances:
    def test_counts_differing_bits(self):
        d = phash_distances(_hashes(0, 0b111), _hashes(0b1, FAR))
        assert d.tolist() == [[1, 64], [2, 61]]

    def test_parse_phash_roundtrips_hex(self):
        assert parse_phash(["ffffffffffffffff", "0000000000000001"]).tolist() == [2**64 - 1, 1]


class TestFileNumber:
    def test_prefix_and_number(self):
        assert file_number("IMG_0002") == ("img_", 2)
        assert file_number("DSC 12") == ("dsc ", 12)
        assert file_number("holiday") is None


class TestCaptureGroups:
    def test_exact_duplicates_same_class_share_a_group_without_conflict(self):
        g = capture_groups(["a", "b", "a"], _hashes(0, FAR, 0), np.array([0, 0, 0]))
        assert g.group.tolist() == [0, 1, 0] and g.conflicts == () and g.links["exact"] == 1

    def test_exact_duplicate_across_classes_is_a_conflict(self):
        g = capture_groups(["a", "a"], _hashes(0, 0), np.array([0, 1]))
        assert g.group.tolist() == [0, 0]
        assert g.conflicts == ({"a": 0, "b": 1, "kind": "exact", "distance": 0},)

    def test_near_duplicates_by_threshold(self):
        hashes = _hashes(0, 0b111111, 0b1111111 << 32)  # 6 and 7 bits from the first, 13 apart
        g = capture_groups(["a", "b", "c"], hashes, np.array([0, 1, 0]), near_threshold=6)
        assert g.group.tolist() == [0, 0, 1]
        assert [c["kind"] for c in g.conflicts] == ["near"] and g.conflicts[0]["distance"] == 6
        strict = capture_groups(["a", "b", "c"], _hashes(0, 0b111111, FAR), np.array([0, 1, 0]), near_threshold=5)
        assert strict.count == 3 and strict.conflicts == ()

    def test_file_number_bursts_link_within_a_class_only(self):
        stems = ["IMG_0002", "IMG_0003", "IMG_0005", "IMG_0009", "IMG_0004"]
        labels = np.array([0, 0, 0, 0, 1])
        hashes = _hashes(0, 0b1, 0b11, 0b111, 0)
        g = capture_groups(list("abcde"), hashes, labels, stems=stems, near_threshold=-1,
                           burst_gap=2, burst_max_distance=None)
        # 2-3-5 chain (gaps 1 and 2); 9 is 4 away; 4 belongs to another class.
        assert g.group.tolist() == [0, 0, 0, 1, 2]
        assert g.links["burst_number"] == 2

    def test_file_number_burst_needs_alike_images(self):
        g = capture_groups(["a", "b"], _hashes(0, FAR), np.array([0, 0]), stems=["IMG_1", "IMG_2"],
                           burst_max_distance=16)
        assert g.count == 2
        g = capture_groups(["a", "b"], _hashes(0, FAR), np.array([0, 0]), stems=["IMG_1", "IMG_2"],
                           burst_max_distance=None)
        assert g.count == 1

    def test_file_numbers_of_different_prefixes_do_not_link(self):
        g = capture_groups(["a", "b"], _hashes(0, FAR), np.array([0, 0]), stems=["IMG_1", "DSC_2"],
                           burst_max_distance=None)
        assert g.count == 2

    def test_burst_rules_can_be_switched_off(self):
        g = capture_groups(["a", "b"], _hashes(0, FAR), np.array([0, 0]), stems=["IMG_1", "IMG_2"],
                           times=np.array([0.0, 1.0]), burst_gap=None, burst_seconds=None)
        assert g.count == 2

    def test_time_bursts(self):
        times = np.array([0.0, 1.5, 10.0, np.nan, 2.0])
        labels = np.array([0, 0, 0, 0, 1])
        g = capture_groups(list("abcde"), _hashes(0, 1, 3, 7, 0), labels, times=times, near_threshold=-1,
                           burst_seconds=2.0, burst_max_distance=None)
        assert g.group.tolist() == [0, 0, 1, 2, 3] and g.links["burst_time"] == 1

    def test_report(self):
        g = capture_groups(["a", "a", "b"], _hashes(0, 0, FAR), np.array([0, 0, 0]))
        report = g.report()
        assert report["count"] == 2 and report["singletons"] == 1 and report["largest"] == [2, 1]
        assert report["size_histogram"] == {"1": 1, "2": 1} and report["links"]["exact"] == 1

    def test_empty_input(self):
        g = capture_groups([], _hashes(), np.array([], int))
        assert g.count == 0 and g.report()["count"] == 0

    def test_errors(self):
        with pytest.raises(ValueError, match="one entry per image"):
            capture_groups(["a"], _hashes(0, 0), np.array([0]))
        with pytest.raises(ValueError, match="times must have 1 entries"):
            capture_groups(["a"], _hashes(0), np.array([0]), times=np.zeros(2))
        with pytest.raises(ValueError, match="stems must have 1 entries"):
            capture_groups(["a"], _hashes(0), np.array([0]), stems=[])
        with pytest.raises(ValueError, match="near_threshold must be an int <= 64"):
            capture_groups(["a"], _hashes(0), np.array([0]), near_threshold=65)
        with pytest.raises(ValueError, match="burst_gap must be a positive int"):
            capture_groups(["a"], _hashes(0), np.array([0]), burst_gap=0)
        with pytest.raises(ValueError, match="burst_seconds must be >= 0"):
            capture_groups(["a"], _hashes(0), np.array([0]), burst_seconds=-1.0)


class TestColour:
    def test_signature_and_distance(self):
        from datasets.images import colour_distance, colour_signature

        green = np.zeros((8, 8, 3), np.uint8)
        green[..., 1] = 200
        grey = np.full((8, 8, 3), 120, np.uint8)
        half = green.copy()
        half[:, 4:] = 120
        assert colour_signature(grey) == "000000000000f"
        assert colour_distance(colour_signature(green), colour_signature(grey)) == 1.0
        assert colour_distance(colour_signature(green), colour_signature(half)) == pytest.approx(0.5)
        assert colour_distance("", colour_signature(green)) is None

    def test_near_and_burst_links_need_the_same_colours(self):
        from datasets.images import colour_signature

        green, blue = (np.zeros((4, 4, 3), np.uint8) for _ in range(2))
        green[..., 1], blue[..., 2] = 200, 200
        colours = [colour_signature(green), colour_signature(blue), colour_signature(green)]
        hashes = np.zeros(3, np.uint64)  # identical grey-level hashes
        labels = np.array([0, 1, 1])
        g = capture_groups(["a", "b", "c"], hashes, labels, colours=colours, stems=["IMG_1", "IMG_2", "IMG_3"])
        assert g.group.tolist() == [0, 1, 0] and [(c["a"], c["b"]) for c in g.conflicts] == [(0, 2)]
        # Without colours (an older manifest) or with the check off, the hash alone decides.
        assert capture_groups(["a", "b", "c"], hashes, labels).group.tolist() == [0, 0, 0]
        off = capture_groups(["a", "b", "c"], hashes, labels, colours=colours, colour_max_distance=None)
        assert off.group.tolist() == [0, 0, 0]
        # File-number bursts of one class also need the same colours.
        burst = capture_groups(["a", "b"], np.array([0, 2**63], np.uint64), np.array([0, 0]),
                               stems=["IMG_1", "IMG_2"], burst_max_distance=None, colours=colours[:2])
        assert burst.group.tolist() == [0, 1]
