import numpy as np
import pytest

from groundwork.box_scores import check_gt_boxes, coco_map, corloc, top_box_iou
from localize.scoring import CAM_THRESHOLDS, box_accuracy, max_box_acc, max_box_acc_v2


def arr(*rows):
    return np.array(rows, np.float64).reshape(-1, 4)


class TestCorLoc:
    def test_hand_computed(self):
        pred = [arr([0, 0, 10, 10]), arr([0, 0, 10, 10], [20, 20, 30, 30]), arr([20, 20, 30, 30], [0, 0, 10, 10]),
                np.zeros((0, 4))]
        gt = [arr([0, 0, 10, 10]), arr([0, 0, 10, 12]), arr([0, 0, 10, 10]), arr([0, 0, 5, 5])]
        # hit; hit (IoU 100/120); miss (only the second box is right); no box
        assert corloc(pred, gt) == pytest.approx(0.5)
        np.testing.assert_allclose(top_box_iou(pred, gt), [1.0, 100 / 120, 0.0, 0.0])

    def test_iou_threshold(self):
        pred, gt = [arr([0, 0, 10, 10])], [arr([5, 0, 15, 10])]
        assert corloc(pred, gt) == 0.0
        assert corloc(pred, gt, iou_threshold=0.3) == 1.0

    def test_best_matching_gt_box_counts(self):
        assert corloc([arr([20, 20, 30, 30])], [arr([0, 0, 10, 10], [20, 20, 30, 30])]) == 1.0

    def test_length_mismatch(self):
        with pytest.raises(ValueError, match="same length"):
            corloc([arr([0, 0, 1, 1])], [])

    def test_empty(self):
        with pytest.raises(ValueError, match="empty"):
            corloc([], [])

    def test_bad_iou_threshold(self):
        with pytest.raises(ValueError, match="iou_threshold"):
            corloc([arr([0, 0, 1, 1])], [arr([0, 0, 1, 1])], iou_threshold=1.5)


def two_level_map():
    """A 40x40 map: plateau 0.4 on the gt box [10, 10, 30, 30), a 1.0 core on [16, 16, 24, 24)."""
    h = np.zeros((40, 40))
    h[10:30, 10:30] = 0.4
    h[16:24, 16:24] = 1.0
    return h, arr([10, 10, 30, 30])


class TestBoxAccuracy:
    def test_curve_on_constructed_case(self):
        h, gt = two_level_map()
        result = box_accuracy([h], [gt], thresholds=[0.0, 0.3, 0.5, 0.9], iou_thresholds=[0.1, 0.5])
        # tau 0: whole image (IoU 0.25); 0.3: the gt box (IoU 1); 0.5 and 0.9: the core (IoU 0.16)
        np.testing.assert_array_equal(result.accuracy, [[1, 0], [1, 1], [1, 0], [1, 0]])
        assert result.best_thresholds == (0.0, 0.3)
        assert result.max_accuracy == (1.0, 1.0)

    def test_multi_contour_counts_any_component(self):
        h = np.zeros((40, 40))
        h[0:4, 0:30] = 1.0          # largest component, wrong place
        h[20:30, 20:30] = 0.9       # the object
        gt = [arr([20, 20, 30, 30])]
        assert max_box_acc([h], gt, thresholds=[0.5]) == 0.0
        assert max_box_acc_v2([h], gt, thresholds=[0.5]) == 1.0

    def test_max_box_acc_v2_is_mean_of_best_per_iou(self):
        h, gt = two_level_map()
        h2 = np.zeros((40, 40))
        h2[10:30, 10:22] = 1.0  # IoU 0.6 with its gt at every threshold > 0
        result = box_accuracy([h, h2], [gt, gt])
        per_delta = result.max_accuracy
        assert per_delta == (1.0, 1.0, 0.5)
        assert max_box_acc_v2([h, h2], [gt, gt]) == pytest.approx(2.5 / 3)

    def test_flat_and_nan_maps_are_misses(self):
        _, gt = two_level_map()
        result = box_accuracy([np.zeros((40, 40)), np.full((40, 40), np.nan)], [gt, gt], thresholds=[0.2])
        assert result.accuracy.max() == 0.0

    def test_image_sizes_scale_boxes(self):
        h, gt = two_level_map()
        assert max_box_acc([h[::2, ::2]], [gt * 2], image_sizes=[(80, 80)]) == 1.0

    def test_default_thresholds_are_choe(self):
        assert len(CAM_THRESHOLDS) == 100 and CAM_THRESHOLDS[1] == 0.01 and CAM_THRESHOLDS[-1] == 0.99

    def test_gt_outside_image(self):
        h, _ = two_level_map()
        with pytest.raises(ValueError, match=r"gt_boxes\[0\] has boxes outside the 40x40 image"):
            box_accuracy([h], [arr([30, 30, 50, 50])])

    def test_gt_without_boxes(self):
        h, _ = two_level_map()
        with pytest.raises(ValueError, match="at least one ground-truth box"):
            box_accuracy([h], [np.zeros((0, 4))])

    def test_bad_thresholds(self):
        h, gt = two_level_map()
        with pytest.raises(ValueError, match="thresholds must be in"):
            box_accuracy([h], [gt], thresholds=[1.2])
        with pytest.raises(ValueError, match=r"iou_thresholds must be in \(0, 1\]"):
            box_accuracy([h], [gt], iou_thresholds=[0.0])
        with pytest.raises(ValueError, match="not be empty"):
            box_accuracy([h], [gt], thresholds=[])

    def test_bad_heatmap(self):
        _, gt = two_level_map()
        with pytest.raises(ValueError, match=r"heatmaps\[0\] must be a non-empty 2-D"):
            box_accuracy([np.zeros((4, 4, 3))], [gt])

    def test_check_gt_boxes_tolerates_one_pixel(self):
        np.testing.assert_array_equal(check_gt_boxes(arr([0, 0, 41, 40]), (40, 40)), [[0, 0, 41, 40]])
        with pytest.raises(ValueError, match="without area"):
            check_gt_boxes(arr([5, 5, 5, 9]), (40, 40))


class TestCocoMap:
    gt = [(arr([0, 0, 20, 20]), ["cube"]), (arr([10, 10, 50, 30], [60, 0, 80, 40]), ["rod", "cube"])]

    def test_perfect_predictions_score_one(self):
        pred = [(g[0], np.full(len(g[0]), 0.9), g[1]) for g in self.gt]
        result = coco_map(pred, self.gt)
        assert result["mAP@0.5"] == pytest.approx(1.0)
        assert result["mAP@[.5:.95]"] == pytest.approx(1.0)

    def test_shifted_predictions_score_lower(self):
        pred = [(g[0] + np.array([4, 0, 4, 0]), np.full(len(g[0]), 0.9), g[1]) for g in self.gt]
        result = coco_map(pred, self.gt)
        assert result["mAP@0.5"] == pytest.approx(1.0)  # IoU >= 0.6 everywhere
        assert result["mAP@[.5:.95]"] < 0.8

    def test_wrong_label_scores_zero(self):
        pred = [(arr([0, 0, 20, 20]), [0.9], ["rod"]), (np.zeros((0, 4)), [], [])]
        assert coco_map(pred, self.gt)["mAP@0.5"] == 0.0

    def test_no_predictions_scores_zero(self):
        pred = [(np.zeros((0, 4)), [], []), (np.zeros((0, 4)), [], [])]
        assert coco_map(pred, self.gt) == {"mAP@0.5": 0.0, "mAP@[.5:.95]": 0.0}

    def test_no_ground_truth_is_nan(self):
        result = coco_map([(arr([0, 0, 1, 1]), [0.5], ["a"])], [(np.zeros((0, 4)), [])])
        assert np.isnan(result["mAP@0.5"])

    def test_prints_nothing(self, capsys):
        coco_map([(arr([0, 0, 20, 20]), [0.9], ["cube"])], self.gt[:1])
        assert capsys.readouterr().out == ""

    def test_unknown_label(self):
        with pytest.raises(ValueError, match=r"labels \['dog'\] are not among the categories"):
            coco_map([(arr([0, 0, 20, 20]), [0.9], ["dog"])], self.gt[:1], labels=["cube", "rod"])

    def test_lengths_checked(self):
        with pytest.raises(ValueError, match="one score and label per box"):
            coco_map([(arr([0, 0, 20, 20]), [0.9, 0.1], ["cube"])], self.gt[:1])
        with pytest.raises(ValueError, match="one label per box"):
            coco_map([(arr([0, 0, 20, 20]), [0.9], ["cube"])], [(arr([0, 0, 20, 20]), [])])
        with pytest.raises(ValueError, match="same length"):
            coco_map([], self.gt)
