"""A pseudo box around a group, split into the box model's boxes inside it; a pseudo box of one
object averaged with the box model's box of it."""

import numpy as np
import pytest

from datasets.annotations import Box, ImageAnnotation
from detector.split_groups import fuse_box, model_scores, split_groups
from detector.train_box_model import _split

GROUP = np.array([0.5, 0.5, 0.8, 0.4])  # x 0.1-0.9, y 0.3-0.7
LEFT = [0.3, 0.5, 0.3, 0.4]
RIGHT = [0.7, 0.5, 0.3, 0.4]
BELOW = [0.5, 0.9, 0.2, 0.2]  # wholly outside the group


class TestSplitGroups:
    def test_two_boxes_inside_replace_the_group_in_their_order(self):
        boxes, scores = split_groups(GROUP, np.array([RIGHT, BELOW, LEFT]), np.array([0.8, 0.9, 0.6]), min_inside=0.7)
        np.testing.assert_allclose(boxes, [RIGHT, LEFT])
        assert scores.tolist() == [0.8, 0.6]

    def test_one_box_inside_keeps_the_group(self):
        assert split_groups(GROUP, np.array([LEFT, BELOW]), np.array([0.9, 0.8]), min_inside=0.7) is None
        assert split_groups(GROUP, np.array([LEFT]), np.array([0.9]), min_inside=0.7) is None
        assert split_groups(GROUP, np.zeros((0, 4)), np.zeros(0), min_inside=0.7) is None

    def test_a_box_counts_by_the_share_of_it_inside(self):
        # Half of this box lies below the group (y 0.6-0.8 against the group's 0.3-0.7).
        half = [0.7, 0.7, 0.2, 0.2]
        found = np.array([LEFT, half])
        assert split_groups(GROUP, found, np.array([0.9, 0.8]), min_inside=0.7) is None
        boxes, _ = split_groups(GROUP, found, np.array([0.9, 0.8]), min_inside=0.5)
        assert len(boxes) == 2

    def test_a_box_inside_another_of_the_group_is_a_part_not_an_object(self):
        part = [0.3, 0.5, 0.1, 0.1]  # wholly inside LEFT
        assert split_groups(GROUP, np.array([LEFT, part]), np.array([0.9, 0.8]), min_inside=0.7) is None
        boxes, scores = split_groups(GROUP, np.array([LEFT, part, RIGHT]), np.array([0.9, 0.8, 0.7]), min_inside=0.7)
        np.testing.assert_allclose(boxes, [LEFT, RIGHT])
        assert scores.tolist() == [0.9, 0.7]

    @pytest.mark.parametrize("bad", [0.0, 1.5, -0.1])
    def test_min_inside_out_of_range_is_refused(self, bad):
        with pytest.raises(ValueError, match="min_inside must be in"):
            split_groups(GROUP, np.array([LEFT, RIGHT]), np.array([0.9, 0.8]), min_inside=bad)


class TestFuseBox:
    def test_the_mean_with_the_box_that_overlaps_most(self):
        own = np.array([0.3, 0.5, 0.2, 0.4])
        near = [0.32, 0.52, 0.24, 0.4]  # IoU 0.75 with own
        fused = fuse_box(own, np.array([RIGHT, near, BELOW]), min_iou=0.3)
        np.testing.assert_allclose(fused, [0.31, 0.51, 0.22, 0.4], atol=1e-6)
        assert fused.dtype == np.float32

    def test_too_little_overlap_or_no_box_keeps_it(self):
        own = np.array([0.3, 0.5, 0.2, 0.4])
        shifted = np.array([[0.45, 0.5, 0.2, 0.4]])  # x 0.35-0.55 against 0.2-0.4: IoU 1/7
        assert fuse_box(own, shifted, min_iou=0.3) is None
        assert fuse_box(own, shifted, min_iou=0.1) is not None
        assert fuse_box(own, np.zeros((0, 4)), min_iou=0.3) is None

    @pytest.mark.parametrize("bad", [0.0, 1.5])
    def test_min_iou_out_of_range_is_refused(self, bad):
        with pytest.raises(ValueError, match="min_iou must be in"):
            fuse_box(GROUP, np.array([LEFT]), min_iou=bad)


class TestSplitAnnotations:
    def test_only_photos_of_one_pseudo_box_are_split_with_the_box_models_scores(self):
        group = ImageAnnotation("one/a.jpg", 200, 100, (Box("one", 20, 30, 180, 70, score=0.8),))
        two = ImageAnnotation("one/b.jpg", 200, 100, (Box("one", 0, 0, 50, 50, score=0.8),
                                                      Box("one", 60, 0, 120, 50, score=0.7)))
        empty = ImageAnnotation("one/c.jpg", 200, 100, (), label="one")
        found = (np.array([LEFT, RIGHT], np.float32), np.array([0.6, 0.5], np.float32), np.array([0.5, 0.4], np.float32))
        out = _split([group, two, empty], [found, found, found], 0.7, None)
        assert out[1] is two and out[2] is empty
        assert [b.score for b in out[0].boxes] == pytest.approx([0.6, 0.5])
        assert [b.label for b in out[0].boxes] == ["one", "one"]
        np.testing.assert_allclose(out[0].xyxy(), [[30, 30, 90, 70], [110, 30, 170, 70]], atol=1e-3)
        # The box model's boxes do not lie inside a box elsewhere in the photo: it stays whole.
        corner = ImageAnnotation("one/d.jpg", 200, 100, (Box("one", 0, 0, 40, 30, score=0.8),))
        assert _split([corner], [found], 0.7, None)[0] is corner

    def test_a_box_not_split_is_averaged_with_the_box_models_keeping_its_score(self):
        # One pseudo box, x 20-100 y 20-80 of a 200 x 100 photo; the box model's box x 40-120 y 20-80
        # (IoU 0.6) and one elsewhere.
        own = ImageAnnotation("one/a.jpg", 200, 100, (Box("one", 20, 20, 100, 80, score=0.8),))
        found = (np.array([[0.4, 0.5, 0.4, 0.6], [0.9, 0.1, 0.1, 0.1]], np.float32), np.array([0.6, 0.9], np.float32),
                 np.array([0.5, 0.8], np.float32))
        out = _split([own], [found], 0.8, 0.3)[0]
        np.testing.assert_allclose(out.xyxy(), [[30, 20, 110, 80]], atol=1e-3)
        assert out.boxes[0].score == pytest.approx(0.8) and out.boxes[0].label == "one"
        assert _split([own], [found], 0.8, 0.7)[0] is own  # IoU 0.6 < 0.7
        assert _split([own], [found], 0.8, None)[0] is own

    def test_a_split_wins_over_averaging(self):
        group = ImageAnnotation("one/a.jpg", 200, 100, (Box("one", 20, 30, 180, 70, score=0.8),))
        found = (np.array([LEFT, RIGHT], np.float32), np.array([0.6, 0.5], np.float32), np.array([0.5, 0.4], np.float32))
        assert len(_split([group], [found], 0.7, 0.1)[0].boxes) == 2


class TestModelScores:
    def test_each_box_takes_the_score_of_the_model_box_overlapping_it_most_times_their_iou(self):
        shifted = [0.55, 0.5, 0.8, 0.4]  # GROUP moved right by 0.05: IoU 0.75 / 0.85 with it, 0.375 with LEFT
        scores = model_scores(np.array([LEFT, GROUP, [0.9, 0.1, 0.05, 0.05]]), np.array([LEFT, shifted]),
                              np.array([0.6, 0.9]))
        assert scores[0] == pytest.approx(0.6)  # its own box, over the larger one's 0.9 x 0.375
        assert scores[1] == pytest.approx(0.9 * 0.75 / 0.85)
        assert scores[2] == 0.0  # overlaps no box of the model

    def test_no_box_and_mismatched_scores(self):
        assert model_scores(np.array([LEFT]), np.zeros((0, 4)), np.zeros(0)).tolist() == [0.0]
        assert model_scores(np.zeros((0, 4)), np.array([LEFT]), np.array([0.5])).shape == (0,)
        with pytest.raises(ValueError, match="one score per box"):
            model_scores(np.array([LEFT]), np.array([LEFT, RIGHT]), np.array([0.5]))
