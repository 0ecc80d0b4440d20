import math

import cv2
import numpy as np
import pytest

from datasets.review import (
    GT_COLOR,
    PRED_COLOR,
    ReviewItem,
    joint_confidence,
    render_contact_sheets,
    render_overlay,
    review_order,
    write_png,
)


def image(h=48, w=64, value=100):
    return np.full((h, w, 3), value, np.uint8)


class TestRenderOverlay:
    def test_shape_dtype_and_input_untouched(self):
        rgb = image()
        heat = np.zeros((6, 8))
        heat[2:4, 3:5] = 1.0
        out = render_overlay(rgb, heatmap=heat, boxes=[[10, 10, 30, 30]], scores=[0.87], labels=["one"])
        assert out.shape == (48, 64, 3) and out.dtype == np.uint8
        assert (rgb == 100).all()
        assert not np.array_equal(out, rgb)

    def test_boxes_drawn_in_their_colours(self):
        out = render_overlay(image(), boxes=[[5, 30, 20, 45]], gt_boxes=[[40, 5, 60, 25]])
        assert tuple(out[44, 10]) == PRED_COLOR  # bottom edge of the predicted box (last row 44)
        assert tuple(out[24, 50]) == GT_COLOR

    def test_jet_heat_is_red_where_hot_blue_where_cold(self):
        heat = np.zeros((48, 64))
        heat[:, 32:] = 1.0
        out = render_overlay(image(value=0), heatmap=heat, alpha=1.0).astype(int)
        assert out[24, 60, 0] > out[24, 60, 2]   # hot: red
        assert out[24, 2, 2] > out[24, 2, 0]     # cold: blue

    def test_flat_heatmap_not_drawn(self):
        out = render_overlay(image(), heatmap=np.ones((4, 4)))
        assert (out == 100).all()

    def test_errors(self):
        with pytest.raises(TypeError, match="uint8"):
            render_overlay(np.zeros((4, 4, 3)))
        with pytest.raises(ValueError, match="one value per box"):
            render_overlay(image(), boxes=[[0, 0, 4, 4]], scores=[0.1, 0.2])
        with pytest.raises(ValueError, match="one entry per box"):
            render_overlay(image(), boxes=[[0, 0, 4, 4]], labels=[])
        with pytest.raises(ValueError, match="alpha"):
            render_overlay(image(), alpha=2)


class TestContactSheets:
    def items(self, n):
        return [ReviewItem(image(value=10 * i), np.array([[4, 4, 40, 30]]), np.array([1 - i / n]), f"img_{i}.jpg")
                for i in range(n)]

    def test_grid_shapes(self):
        sheets = render_contact_sheets(self.items(11), columns=4, rows=2, thumb_size=32)
        assert len(sheets) == 2
        assert sheets[0].shape == (2 * (32 + 14), 4 * 32, 3) and sheets[0].dtype == np.uint8
        assert sheets[1].shape == (1 * (32 + 14), 4 * 32, 3)

    def test_lowest_confidence_first(self):
        items = self.items(3)  # confidences 1, 2/3, 1/3 with image values 0, 10, 20
        items.append(ReviewItem(image(value=250), caption="nothing.jpg"))
        assert items[-1].confidence == -math.inf
        sheet = render_contact_sheets(items, columns=4, rows=1, thumb_size=64)[0]
        # cell centres (away from the box) hold each image's grey value: no box, then 1/3, 2/3, 1
        centres = [int(sheet[64 - 4, 64 * k + 60, 1]) for k in range(4)]
        assert centres == [250, 20, 10, 0]

    def test_item_shrunk_scales_boxes(self):
        item = ReviewItem(image(48, 64), np.array([[8, 8, 32, 24]]), np.array([0.5]), "a.jpg").shrunk(32)
        assert item.rgb.shape == (24, 32, 3)
        np.testing.assert_allclose(item.boxes, [[4, 4, 16, 12]])

    def test_errors(self):
        with pytest.raises(ValueError, match="items is empty"):
            render_contact_sheets([])
        with pytest.raises(TypeError, match="ReviewItem"):
            render_contact_sheets([image()])
        with pytest.raises(ValueError, match="columns must be"):
            render_contact_sheets(self.items(1), columns=0)
        with pytest.raises(ValueError, match="one value per box"):
            ReviewItem(image(), np.array([[0, 0, 4, 4]]), np.array([]))


def test_write_png_round_trip(tmp_path):
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0] = 200
    path = write_png(tmp_path / "sub" / "x.png", rgb)
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, rgb)
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]


class TestReviewOrder:
    def test_without_groups_lowest_confidence_first_ties_in_photo_order(self):
        assert review_order([0.5, 0.1, 0.5, 0.3]).tolist() == [1, 3, 0, 2]
        assert review_order([0.5, 0.1, 0.5, 0.3], [None] * 4).tolist() == [1, 3, 0, 2]

    def test_every_group_shows_one_photo_before_any_shows_a_second(self):
        # A burst of three doubtful shots (group 1) and two single shots.
        confidence = [0.2, 0.25, 0.3, 0.6, 0.9]
        groups = [1, 1, 1, None, 2]
        order = review_order(confidence, groups).tolist()
        assert order == [0, 3, 4, 1, 2]
        assert review_order(confidence).tolist() == [0, 1, 2, 3, 4]  # the same photos by confidence alone

    def test_groups_take_turns_by_their_summed_doubt(self):
        # Group 5's least confident photo (0.4) beats group 6's (0.3): five doubtful shots against one.
        confidence = [0.3, 0.4, 0.5, 0.5, 0.5, 0.5]
        groups = [6, 5, 5, 5, 5, 5]
        assert review_order(confidence, groups).tolist() == [1, 0, 2, 3, 4, 5]

    def test_a_permutation_of_every_photo(self):
        rng = np.random.default_rng(0)
        confidence = rng.random(50)
        groups = [int(g) if g < 8 else None for g in rng.integers(0, 12, 50)]
        order = review_order(confidence, groups)
        assert sorted(order.tolist()) == list(range(50))
        turns = {}
        seen = []
        for i in order:  # a group's k-th photo comes after every group's (k-1)-th
            key = ("photo", i) if groups[i] is None else groups[i]
            seen.append(turns.get(key, 0))
            turns[key] = seen[-1] + 1
        assert seen == sorted(seen)

    def test_groups_must_match_the_photos(self):
        with pytest.raises(ValueError, match="one capture group per photo"):
            review_order([0.1, 0.2], groups=[1])


class TestJointConfidence:
    def test_the_mean_of_the_two_rank_fractions(self):
        # The classifier doubts photo 1 most, the box model photo 2: each comes before photo 0.
        joint = joint_confidence([0.99, 0.6, 0.9], [0.8, 0.9, 0.3])
        np.testing.assert_allclose(joint, [0.75, 0.5, 0.25])
        assert review_order(joint).tolist() == [2, 1, 0]

    def test_only_the_ranks_count_and_ties_share_theirs(self):
        # Values on other scales, same order: the same joint confidence; photos without a box tie.
        np.testing.assert_allclose(joint_confidence([0.5, 0.6, 0.7], [0.0, 0.0, 0.9]),
                                   joint_confidence([0.9, 0.95, 0.99], [0.0, 0.0, 0.31]))
        np.testing.assert_allclose(joint_confidence([0.5, 0.6, 0.7], [0.0, 0.0, 0.9]), [0.125, 0.375, 1.0])

    def test_one_photo_and_no_photo(self):
        assert joint_confidence([0.4], [0.0]).tolist() == [1.0]
        assert joint_confidence([], []).tolist() == []

    def test_bad_input_is_refused(self):
        with pytest.raises(ValueError, match="one confidence per photo. Received: 2 and 1"):
            joint_confidence([0.1, 0.2], [0.3])
        with pytest.raises(ValueError, match="finite"):
            joint_confidence([0.1, np.nan], [0.3, 0.4])


def test_write_review_lists_photos_in_review_order(tmp_path):
    import json

    from datasets.photo_items import PhotoItem
    from datasets.review import write_review

    items = [PhotoItem(tmp_path / f"{k}.jpg", f"{k}.jpg", "one", group=g) for k, g in enumerate([3, 3, 4])]
    box = [np.array([[4.0, 4.0, 20.0, 20.0]])] * 3
    write_review(tmp_path / "out", items, [image()] * 3, box, [np.array([0.5])] * 3, ["one"] * 3,
                 np.array([0.1, 0.2, 0.8]), ["", "", ""], overlays=False, progress=False)
    review = json.loads((tmp_path / "out" / "review.json").read_text())
    assert [r["image"] for r in review] == ["0.jpg", "2.jpg", "1.jpg"]  # group 4 before group 3's second shot
    assert (tmp_path / "out" / "contact_sheets" / "sheet_001.png").is_file()
