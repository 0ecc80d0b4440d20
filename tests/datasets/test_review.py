import math

import cv2
import numpy as np
import pytest

from datasets.review import GT_COLOR, PRED_COLOR, ReviewItem, render_contact_sheets, render_overlay, write_png


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
