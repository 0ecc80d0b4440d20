import numpy as np
import pytest

from verify.parity import compare_outputs


class TestCompareOutputs:
    def test_identical_outputs(self):
        a = np.array([[0.2, 0.8], [0.9, 0.1]])
        c = compare_outputs(a, a.copy())
        assert (c.max_abs_diff, c.mean_abs_diff, c.top1_agreement, c.disagreements) == (0.0, 0.0, 1.0, ())

    def test_differences_and_disagreements(self):
        a = np.array([[0.9, 0.1], [0.4, 0.6], [0.5, 0.5]])
        b = np.array([[0.8, 0.2], [0.6, 0.4], [0.5, 0.5]])
        c = compare_outputs(a, b)
        assert c.max_abs_diff == pytest.approx(0.2)
        assert c.mean_abs_diff == pytest.approx((0.1 + 0.1 + 0.2 + 0.2) / 6)
        np.testing.assert_allclose(c.per_sample_max_abs_diff, [0.1, 0.2, 0.0])
        assert c.top1_agreement == pytest.approx(2 / 3)
        assert c.disagreements == (1,)

    def test_maps_have_no_top1(self):
        c = compare_outputs(np.zeros((2, 3, 3, 2)), np.ones((2, 3, 3, 2)))
        assert c.top1_agreement is None and c.max_abs_diff == 1.0

    def test_boxes(self):
        c = compare_outputs(np.zeros((1, 2)), np.zeros((1, 2)), reference_boxes=np.array([[0, 0, 10, 10]]),
                            candidate_boxes=np.array([[0, 0, 10, 5]]))
        np.testing.assert_allclose(c.box_iou, [0.5])
        assert c.min_box_iou == pytest.approx(0.5)

    @pytest.mark.parametrize("bad", [np.nan, np.inf])
    def test_nan_or_inf_is_infinitely_far_and_disagrees(self, bad):
        reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
        candidate = reference.copy()
        candidate[1, 0] = bad  # argmax of a NaN row would be class 0: "agreement" by accident
        c = compare_outputs(reference, candidate)
        assert c.non_finite == (1,) and c.disagreements == (1,)
        assert c.max_abs_diff == np.inf and not c.max_abs_diff <= 1.0
        assert c.per_sample_max_abs_diff.tolist() == [0.0, np.inf, 0.0]

    def test_shape_mismatch_is_an_error(self):
        with pytest.raises(ValueError, match="same shape"):
            compare_outputs(np.zeros((2, 2)), np.zeros((2, 3)))

    def test_empty_batch_is_an_error(self):
        with pytest.raises(ValueError, match="non-empty batch"):
            compare_outputs(np.zeros((0, 2)), np.zeros((0, 2)))

    def test_one_set_of_boxes_is_an_error(self):
        with pytest.raises(ValueError, match="given together"):
            compare_outputs(np.zeros((1, 2)), np.zeros((1, 2)), reference_boxes=np.zeros((1, 4)))

