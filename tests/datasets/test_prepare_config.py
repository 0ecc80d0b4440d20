import pytest

from datasets.prepare_config import PrepareConfig


class TestPrepareConfig:
    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"max_side": 8}, ValueError, "max_side must be an int >= 16"),
            ({"valid": 1.2}, ValueError, "valid must be a fraction"),
            ({"valid": 0.6, "test": 0.5}, ValueError, "valid \\+ test must be below 1"),
            ({"phash_threshold": 65}, ValueError, "phash_threshold must be an int in \\[0, 64\\]"),
            ({"burst_gap": 0}, ValueError, "burst_gap must be an int >= 1"),
            ({"burst_seconds": -1}, ValueError, "burst_seconds must be >= 0"),
            ({"burst_max_distance": 70}, ValueError, "burst_max_distance must be an int"),
            ({"seed": "x"}, ValueError, "seed must be an int"),
            ({"resplit": "yes"}, TypeError, "resplit must be a bool"),
            ({"src": 3}, TypeError, "src must be a path"),
        ],
    )
    def test_invalid_values(self, tmp_path, kwargs, error, match):
        base = {"src": tmp_path, "out": tmp_path / "out"}
        with pytest.raises(error, match=match):
            PrepareConfig(**{**base, **kwargs})
