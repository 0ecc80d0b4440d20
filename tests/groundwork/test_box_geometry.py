import numpy as np
import pytest

from groundwork.box_geometry import (
    box_ioa,
    box_iou,
    check_boxes,
    cxcywh_to_xyxy,
    matched_box_iou,
    xyxy_to_cxcywh,
)


def arr(*rows):
    return np.array(rows, np.float64).reshape(-1, 4)


class TestCheckBoxes:
    def test_returns_float64(self):
        out = check_boxes([[0, 0, 2, 3]])
        assert out.dtype == np.float64 and out.tolist() == [[0.0, 0.0, 2.0, 3.0]]

    def test_empty_reads_as_zero_by_four(self):
        assert check_boxes([]).shape == (0, 4)

    def test_error_names_the_argument(self):
        with pytest.raises(ValueError, match=r"gt_boxes must be an \(N, 4\) xyxy array. Received shape: \(4,\)"):
            check_boxes(np.zeros(4), "gt_boxes")


class TestBoxIou:
    # Moved from tests/localize/test_scoring.py (localize.scoring.box_iou).
    def test_known_values(self):
        a = arr([0, 0, 10, 10])
        b = arr([5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [5, 5, 10, 10])
        # 50 / 150, identical, disjoint, contained (25 / 100)
        np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 1.0, 0.0, 0.25]])

    def test_shapes_and_empty(self):
        assert box_iou(arr([0, 0, 1, 1], [0, 0, 2, 2]), arr([0, 0, 1, 1])).shape == (2, 1)
        assert box_iou(np.zeros((0, 4)), arr([0, 0, 1, 1])).shape == (0, 1)

    def test_zero_area_boxes_give_zero(self):
        assert box_iou(arr([1, 1, 1, 1]), arr([1, 1, 1, 1]))[0, 0] == 0.0

    def test_edges_have_no_plus_one(self):
        # Edges [0, 10) and [9, 19) share one pixel column: 10 / (100 + 100 - 10).
        assert box_iou(arr([0, 0, 10, 10]), arr([9, 0, 19, 10]))[0, 0] == pytest.approx(10 / 190)
        # Touching edges share nothing (read as inclusive pixels, +1, they would share a column).
        assert box_iou(arr([0, 0, 9, 9]), arr([9, 0, 18, 9]))[0, 0] == 0.0

    @pytest.mark.parametrize("bad, kind, match", [
        (np.zeros((2, 3)), ValueError, r"\(N, 4\)"),
        (arr([0, 0, np.nan, 1]), ValueError, "finite"),
        (arr([5, 0, 1, 1]), ValueError, "xmax >= xmin"),
        (np.array([["a", "b", "c", "d"]]), TypeError, "real numbers"),
    ])
    def test_bad_boxes(self, bad, kind, match):
        with pytest.raises(kind, match=match):
            box_iou(bad, arr([0, 0, 1, 1]))

    def test_bad_second_argument_is_named(self):
        with pytest.raises(ValueError, match="boxes_b must have xmax >= xmin"):
            box_iou(arr([0, 0, 1, 1]), arr([0, 5, 1, 1]))


class TestBoxIoa:
    def test_share_of_the_first_box_inside_the_second(self):
        out = box_ioa(arr([0, 0, 10, 10], [2, 2, 4, 4]), arr([5, 0, 15, 10], [0, 0, 20, 20], [50, 50, 60, 60]))
        np.testing.assert_allclose(out, [[0.5, 1.0, 0.0], [0.0, 1.0, 0.0]])
        # Not symmetric: the large box is a quarter inside the small one.
        np.testing.assert_allclose(box_ioa(arr([0, 0, 20, 20]), arr([0, 0, 10, 10])), [[0.25]])

    def test_a_box_without_area_gives_zero_and_shapes_follow_the_inputs(self):
        assert box_ioa(arr([3, 3, 3, 8]), arr([0, 0, 10, 10])).tolist() == [[0.0]]
        assert box_ioa(arr(), arr([0, 0, 1, 1])).shape == (0, 1)

    def test_bad_boxes_are_named(self):
        with pytest.raises(ValueError, match="boxes_b must have xmax >= xmin"):
            box_ioa(arr([0, 0, 1, 1]), arr([0, 5, 1, 1]))


class TestMatchedBoxIou:
    # Moved from tests/verify/test_parity.py (verify.parity.box_iou).
    def test_values(self):
        a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
        b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
        np.testing.assert_allclose(matched_box_iou(a, b), [1.0, 1 / 3, 0.0])

    def test_normalised_boxes(self):
        # Detector outputs are fractions of the image: no pixel offsets may creep in.
        a = np.array([[0.1, 0.1, 0.3, 0.3]])
        np.testing.assert_allclose(matched_box_iou(a, a + [0.1, 0, 0.1, 0]), [1 / 3])

    def test_bad_shape_is_an_error(self):
        with pytest.raises(ValueError, match=r"boxes must both be \(N, 4\)"):
            matched_box_iou(np.zeros((2, 3)), np.zeros((2, 3)))

    def test_different_lengths_are_an_error(self):
        with pytest.raises(ValueError, match=r"Received: boxes_a \(2, 4\), boxes_b \(3, 4\)"):
            matched_box_iou(np.zeros((2, 4)), np.zeros((3, 4)))

    def test_not_numbers_is_an_error(self):
        with pytest.raises(TypeError, match="boxes_b must hold real numbers"):
            matched_box_iou(np.zeros((1, 4)), np.array([["a", "b", "c", "d"]]))

    def test_boxes_without_area_give_zero(self):
        # Parity measures a broken export instead of refusing it: empty, inverted, NaN boxes.
        a = arr([1, 1, 1, 1], [5, 0, 0, 5], [0, 0, 4, 4], [0, 0, 4, 4])
        b = arr([1, 1, 1, 1], [0, 0, 5, 5], [0, 0, np.nan, 4], [4, 0, 0, 4])
        np.testing.assert_array_equal(matched_box_iou(a, b), [0.0, 0.0, 0.0, 0.0])

    def test_empty(self):
        assert matched_box_iou(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)

    def test_agrees_with_pairwise_on_valid_boxes(self):
        # The same computation: bit for bit the diagonal of box_iou.
        rng = np.random.default_rng(0)
        a = np.sort(rng.uniform(0, 1, (50, 2, 2)), axis=1).transpose(0, 2, 1).reshape(50, 4)[:, [0, 2, 1, 3]]
        b = np.sort(rng.uniform(0, 1, (50, 2, 2)), axis=1).transpose(0, 2, 1).reshape(50, 4)[:, [0, 2, 1, 3]]
        np.testing.assert_array_equal(matched_box_iou(a, b), np.diag(box_iou(a, b)))
        assert (matched_box_iou(a, b) > 0).sum() > 10


class TestCxcywhToXyxy:
    def test_known_values(self):
        np.testing.assert_array_equal(cxcywh_to_xyxy([[5, 4, 10, 2], [0.5, 0.5, 0.2, 0.4]]),
                                      [[0, 3, 10, 5], [0.4, 0.3, 0.6, 0.7]])

    def test_dtype(self):
        assert cxcywh_to_xyxy(np.zeros((1, 4), np.float32)).dtype == np.float32
        assert cxcywh_to_xyxy(np.zeros((1, 4), np.float64)).dtype == np.float64
        assert cxcywh_to_xyxy(np.zeros((1, 4), np.int64)).dtype == np.float64
        out = cxcywh_to_xyxy(np.array([[0.3, 0.3, 0.1, 0.1]]), dtype=np.float32)
        assert out.dtype == np.float32
        # Computed in float32, not computed in float64 and rounded.
        box = np.array([[0.3, 0.3, 0.1, 0.1]], np.float32)
        np.testing.assert_array_equal(out[0, 0], box[0, 0] - box[0, 2] / np.float32(2))

    def test_empty(self):
        assert cxcywh_to_xyxy(np.zeros((0, 4))).shape == (0, 4)

    @pytest.mark.parametrize("bad, kind, match, kwargs", [
        (np.zeros(4), ValueError, r"boxes must be an \(N, 4\) array. Received shape: \(4,\)", {}),
        (np.zeros((2, 3)), ValueError, r"Received shape: \(2, 3\)", {}),
        (np.array([["a", "b", "c", "d"]]), TypeError, "boxes must hold real numbers", {}),
        (np.zeros((1, 4)), TypeError, "dtype must be a floating dtype. Received: int32", {"dtype": np.int32}),
    ])
    def test_bad_input(self, bad, kind, match, kwargs):
        with pytest.raises(kind, match=match):
            cxcywh_to_xyxy(bad, **kwargs)


class TestXyxyToCxcywh:
    def test_known_values(self):
        np.testing.assert_array_equal(xyxy_to_cxcywh([[0, 3, 10, 5]]), [[5, 4, 10, 2]])

    def test_conversions_round_trip(self):
        # Moved from tests/localize/test_box_model.py.
        xyxy = np.array([[0.1, 0.2, 0.5, 0.9]], np.float32)
        np.testing.assert_allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(xyxy)), xyxy, atol=1e-6)

    def test_dtype(self):
        assert xyxy_to_cxcywh(np.zeros((1, 4), np.float32)).dtype == np.float32
        assert xyxy_to_cxcywh([[0, 0, 1, 1]], dtype=np.float32).dtype == np.float32

    @pytest.mark.parametrize("bad, kind, match", [
        (np.zeros((1, 5)), ValueError, r"boxes must be an \(N, 4\) array. Received shape: \(1, 5\)"),
        (np.array([[True, False, True, True]]), TypeError, "boxes must hold real numbers. Received dtype: bool"),
    ])
    def test_bad_input(self, bad, kind, match):
        with pytest.raises(kind, match=match):
            xyxy_to_cxcywh(bad)
