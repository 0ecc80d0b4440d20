import cv2
import numpy as np
import pytest

from groundwork.heatmaps import normalize_heatmap
from localize.boxes import DEFAULT_THRESHOLD, boxes_at_thresholds, heatmap_to_boxes, scale_boxes


def blobs(shape=(40, 60)):
    """A big blob (rows 5..14, cols 10..29, heat 1.0) and a small one (rows 30..33, cols 50..53, 0.6)."""
    h = np.zeros(shape, np.float32)
    h[5:15, 10:30] = 1.0
    h[30:34, 50:54] = 0.6
    return h


class TestHeatmapToBoxes:
    def test_one_blob_edges_convention(self):
        h = np.zeros((20, 30))
        h[4:9, 10:20] = 1.0
        boxes, scores = heatmap_to_boxes(h, threshold=0.5)
        np.testing.assert_array_equal(boxes, [[10, 4, 20, 9]])  # exclusive max: covered cols 10..19
        np.testing.assert_allclose(scores, [1.0])
        assert boxes.dtype == np.float64 and scores.dtype == np.float64

    def test_largest_picks_biggest_component(self):
        boxes, _ = heatmap_to_boxes(blobs(), threshold=0.5, mode="largest")
        np.testing.assert_array_equal(boxes, [[10, 5, 30, 15]])

    def test_all_gives_one_box_per_component_sorted_by_score(self):
        boxes, scores = heatmap_to_boxes(blobs(), threshold=0.5, mode="all")
        np.testing.assert_array_equal(boxes, [[10, 5, 30, 15], [50, 30, 54, 34]])
        np.testing.assert_allclose(scores, [1.0, 0.6])

    def test_threshold_above_small_blob_drops_it(self):
        boxes, _ = heatmap_to_boxes(blobs(), threshold=0.7, mode="all")
        assert len(boxes) == 1

    def test_min_area_drops_small_components(self):
        boxes, _ = heatmap_to_boxes(blobs(), threshold=0.5, mode="all", min_area=17)
        np.testing.assert_array_equal(boxes, [[10, 5, 30, 15]])
        boxes, _ = heatmap_to_boxes(blobs(), threshold=0.5, mode="all", min_area=16)
        assert len(boxes) == 2
        boxes, _ = heatmap_to_boxes(blobs(), threshold=0.5, mode="largest", min_area=201)
        assert boxes.shape == (0, 4)

    def test_mean_and_peak_scores(self):
        h = np.zeros((10, 10))
        h[2:6, 2:6] = 0.5
        h[3, 3] = 1.0
        _, mean = heatmap_to_boxes(h, threshold=0.4, score="mean")
        _, peak = heatmap_to_boxes(h, threshold=0.4, score="peak")
        np.testing.assert_allclose(mean, [(15 * 0.5 + 1.0) / 16])
        np.testing.assert_allclose(peak, [1.0])

    def test_threshold_zero_is_whole_image(self):
        boxes, _ = heatmap_to_boxes(blobs(), threshold=0.0)
        np.testing.assert_array_equal(boxes, [[0, 0, 60, 40]])

    def test_component_at_border_is_clipped_to_image(self):
        h = np.zeros((10, 10))
        h[6:, 7:] = 1.0
        boxes, _ = heatmap_to_boxes(h, threshold=0.5)
        np.testing.assert_array_equal(boxes, [[7, 6, 10, 10]])
        boxes, _ = heatmap_to_boxes(h, threshold=0.5, image_size=(25, 33))
        assert boxes[0, 2] <= 33 and boxes[0, 3] <= 25
        np.testing.assert_array_equal(boxes, [[23, 15, 33, 25]])

    def test_image_size_scales_boxes(self):
        h = np.zeros((10, 20))
        h[2:5, 4:8] = 1.0
        boxes, _ = heatmap_to_boxes(h, threshold=0.5, image_size=(40, 80))
        np.testing.assert_array_equal(boxes, [[16, 8, 32, 20]])

    @pytest.mark.parametrize("value", [0.0, 3.5, -2.0])
    def test_flat_heatmap_gives_no_box(self, value):
        boxes, scores = heatmap_to_boxes(np.full((8, 8), value))
        assert boxes.shape == (0, 4) and scores.shape == (0,)

    def test_nan_heatmap_gives_no_box(self):
        h = blobs()
        h[0, 0] = np.nan
        boxes, _ = heatmap_to_boxes(h)
        assert boxes.shape == (0, 4)
        boxes, _ = heatmap_to_boxes(np.full((5, 5), np.nan), threshold="otsu")
        assert boxes.shape == (0, 4)

    def test_inf_heatmap_gives_no_box(self):
        h = blobs()
        h[1, 1] = np.inf
        assert heatmap_to_boxes(h)[0].shape == (0, 4)

    def test_negative_values_are_min_max_normalised(self):
        h = blobs() * 2.0 - 5.0  # background -5, blob -3
        boxes, _ = heatmap_to_boxes(h, threshold=0.5)
        np.testing.assert_array_equal(boxes, [[10, 5, 30, 15]])

    def test_otsu_separates_blob_from_noise(self):
        rng = np.random.default_rng(0)
        h = rng.uniform(0, 0.2, (40, 60))
        h[10:20, 20:35] += 0.8
        boxes, _ = heatmap_to_boxes(h, threshold="otsu")
        np.testing.assert_array_equal(boxes, [[20, 10, 35, 20]])

    def test_integer_heatmap_accepted(self):
        h = np.zeros((6, 6), np.uint8)
        h[1:3, 1:4] = 200
        np.testing.assert_array_equal(heatmap_to_boxes(h)[0], [[1, 1, 4, 3]])

    def test_ring_gives_one_box(self):
        h = np.zeros((20, 20))
        h[5:15, 5:15] = 1.0
        h[8:12, 8:12] = 0.0
        boxes, _ = heatmap_to_boxes(h, threshold=0.5, mode="all")
        np.testing.assert_array_equal(boxes, [[5, 5, 15, 15]])

    def test_default_threshold_is_cam_papers(self):
        assert DEFAULT_THRESHOLD == 0.2

    @pytest.mark.parametrize("bad, kind, match", [
        (np.zeros((3, 4, 2)), ValueError, "2-D"),
        (np.zeros((0, 4)), ValueError, "2-D"),
        (np.array([["a", "b"]]), TypeError, "real-valued"),
        (np.zeros((3, 3), bool), TypeError, "real-valued"),
        (np.zeros((3, 3), complex), TypeError, "real-valued"),
    ])
    def test_bad_heatmap(self, bad, kind, match):
        with pytest.raises(kind, match=match):
            heatmap_to_boxes(bad)

    @pytest.mark.parametrize("kwargs, kind, match", [
        ({"threshold": 1.5}, ValueError, "threshold must be"),
        ({"threshold": -0.1}, ValueError, "threshold must be"),
        ({"threshold": "mean"}, ValueError, "'otsu'"),
        ({"threshold": None}, TypeError, "threshold must be"),
        ({"min_area": -1}, ValueError, "min_area"),
        ({"mode": "biggest"}, ValueError, "mode must be"),
        ({"score": "median"}, ValueError, "score must be"),
        ({"image_size": (10,)}, ValueError, "image_size"),
        ({"image_size": (0, 10)}, ValueError, "image_size"),
        ({"image_size": (10.5, 10)}, ValueError, "image_size"),
    ])
    def test_bad_arguments(self, kwargs, kind, match):
        with pytest.raises(kind, match=match):
            heatmap_to_boxes(blobs(), **kwargs)


class TestHelpers:
    def test_normalize(self):
        np.testing.assert_allclose(normalize_heatmap(np.array([[1.0, 3.0, 2.0]])), [[0, 1, 0.5]])
        assert normalize_heatmap(np.zeros((2, 2))) is None

    def test_scale_boxes_rounds_outward_and_clips(self):
        out = scale_boxes(np.array([[1.0, 1.0, 3.0, 3.0]]), (4, 4), (10, 10))
        np.testing.assert_array_equal(out, [[2, 2, 8, 8]])


class TestMidpointThreshold:
    def test_half_way_from_the_median_to_the_peak(self):
        from localize.boxes import midpoint_threshold

        h = np.full((10, 10), 2.0)
        h[0, 0], h[4:6, 4:6] = 0.0, 10.0  # normalised: median 0.2, peak 1
        assert midpoint_threshold(h) == pytest.approx(0.6)
        assert midpoint_threshold(np.ones((3, 3))) == 0.5  # flat: no evidence either way
        assert midpoint_threshold(np.array([[0.0, np.nan]])) == 0.5

    def test_boxes_the_object_on_a_raised_background(self):
        from localize.boxes import heatmap_to_boxes, midpoint_threshold

        h = np.full((40, 40), 0.4)
        h[10:20, 15:30] = 1.0
        h[39, 39] = 0.0  # one cold corner: the rest of the background sits at 0.4 of the range
        boxes, _ = heatmap_to_boxes(h, threshold=midpoint_threshold(h))
        np.testing.assert_array_equal(boxes, [[15, 10, 30, 20]])
        whole, _ = heatmap_to_boxes(h, threshold=0.2)  # the CAM paper's fixed fraction boxes everything
        np.testing.assert_array_equal(whole, [[0, 0, 40, 40]])


class TestBoxesAtThresholds:
    @pytest.mark.parametrize("mode", ["largest", "all"])
    @pytest.mark.parametrize("image_size", [None, (90, 130)])
    def test_the_boxes_heatmap_to_boxes_gives_at_each_threshold(self, mode, image_size):
        rng = np.random.default_rng(3)
        heatmap = cv2.GaussianBlur(rng.random((30, 40)), (0, 0), 2.0)  # several blobs at most thresholds
        thresholds = np.linspace(0, 1, 21)
        swept = boxes_at_thresholds(heatmap, thresholds, mode=mode, image_size=image_size)
        assert len(swept) == len(thresholds)
        for tau, boxes in zip(thresholds, swept, strict=True):
            expected, _ = heatmap_to_boxes(heatmap, threshold=tau, mode=mode, image_size=image_size)
            np.testing.assert_array_equal(boxes, expected)
        assert max(len(b) for b in swept) > 1 or mode == "largest"

    def test_a_flat_map_gives_no_box_at_any_threshold(self):
        assert [len(b) for b in boxes_at_thresholds(np.ones((4, 4)), [0.0, 0.5])] == [0, 0]

    def test_otsu_is_refused(self):
        with pytest.raises(ValueError, match="not 'otsu'"):
            boxes_at_thresholds(np.eye(4), [0.5, "otsu"])
