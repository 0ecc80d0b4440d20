import numpy as np
import pytest

from classifier.multi_view_maps import average_maps


class TestAverageMaps:
    def test_normalises_each_view_and_resizes_to_the_largest(self):
        small = np.zeros((1, 2, 2, 1), np.float32)
        small[0, 0, 0, 0] = 10.0
        large = np.zeros((1, 4, 4, 1), np.float32)
        large[0, :2, :2, 0] = 3.0
        out = average_maps([small, large])
        assert out.shape == (1, 4, 4, 1)
        assert out[0, 0, 0, 0] == pytest.approx(1.0) and out[0, 3, 3, 0] == pytest.approx(0.0)

    def test_flat_view_counts_as_zero(self):
        out = average_maps([np.ones((1, 2, 2, 1)), np.eye(2).reshape(1, 2, 2, 1)])
        np.testing.assert_allclose(out[0, ..., 0], np.eye(2) / 2)

    def test_errors(self):
        with pytest.raises(ValueError, match="views is empty"):
            average_maps([])
        with pytest.raises(ValueError, match="same N and C"):
            average_maps([np.zeros((1, 2, 2, 1)), np.zeros((2, 2, 2, 1))])
