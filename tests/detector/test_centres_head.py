"""The ``"centres"`` head: a box per cell, a centre score per cell, several objects per photo."""

import numpy as np
import pytest

from classifier.backbones.vgg16 import VGG16
from classifier.model import build_classifier
from detector.box_decode import non_max_suppression
from detector.box_losses import centre_targets_of
from detector.box_model import CENTRES_OUTPUT_NAMES, build_box_model
from detector.box_train_config import BoxTrainConfig
from detector.box_views import pad_boxes, paste_views, several_box_views
from detector.train_box_head import train_box_head
from groundwork.box_geometry import cxcywh_to_xyxy, xyxy_to_cxcywh
from groundwork.box_scores import match_boxes

TINY = (4, 4, 8, 8, 8)


@pytest.fixture(scope="module")
def classifier():
    # 128 x 128 input: an 8 x 8 grid at VGG16's feature layer (16 pixels a cell).
    return build_classifier(2, (128, 128), backbone="vgg16", filters=TINY, weights="none")


def scenes(n, rng, grid=8, depth=8):
    """Feature grids with 1-3 objects of 3 x 3 cells each (channel 0 lit), and their boxes."""
    features = rng.normal(0, 0.3, (n, grid, grid, depth)).astype(np.float32)
    boxes = []
    for i in range(n):
        placed = []
        for _ in range(1 + i % 3):
            for _ in range(20):
                r, c = rng.integers(0, grid - 2, 2)
                if all(abs(r - r2) >= 3 or abs(c - c2) >= 3 for r2, c2 in placed):
                    placed.append((r, c))
                    break
        for r, c in placed:
            features[i, r:r + 3, c:c + 3, 0] += 3.0
        boxes.append(xyxy_to_cxcywh(np.array([[c, r, c + 3, r + 3] for r, c in placed], np.float32) / grid))
    return features, boxes


class TestCentresHead:
    def test_outputs(self, classifier):
        config = BoxTrainConfig(head="centres", reduce_filters=4)
        box_model, head = build_box_model(classifier, config, feature_layer=VGG16.feature_layer)
        assert tuple(box_model.output_names) == CENTRES_OUTPUT_NAMES
        x = np.random.default_rng(0).normal(size=(2, 128, 128, 3)).astype(np.float32)
        probabilities, confidence, boxes = box_model.predict(x, verbose=0)
        assert probabilities.shape == (2, 2) and confidence.shape == (2, 64, 2) and boxes.shape == (2, 64, 4)
        # A cell's confidence is its centre score (0.01 untrained) times the class probabilities.
        np.testing.assert_allclose(confidence, np.repeat(0.01 * probabilities[:, None, :], 64, axis=1), rtol=1e-4)
        # Untrained, each cell gives the half-size box centred on itself.
        centres = (np.stack(np.meshgrid(np.arange(8), np.arange(8), indexing="ij"), -1).reshape(-1, 2)[:, ::-1] + 0.5) / 8
        np.testing.assert_allclose(boxes[0, :, :2], centres, atol=1e-5)
        np.testing.assert_allclose(boxes[0, :, 2:], 0.5, atol=1e-5)  # reaching a quarter each way

    def test_learns_several_objects_per_photo(self, classifier):
        rng = np.random.default_rng(0)
        features, boxes = scenes(192, rng)
        config = BoxTrainConfig(head="centres", reduce_filters=8, epochs=40, crops=0, learning_rate=1e-2)
        _, head = build_box_model(classifier, config, feature_layer=VGG16.feature_layer)
        train_box_head(head, features, pad_boxes(boxes), config, verbose=0)
        test_features, test_boxes = scenes(30, rng)
        scores, cells = head.predict(test_features, verbose=0)
        found = extra = total = 0
        for s, b, truth in zip(scores, cells, test_boxes, strict=True):
            _, kept = non_max_suppression(s[:, None], b)
            pred_matched, gt_matched = match_boxes(cxcywh_to_xyxy(kept), cxcywh_to_xyxy(truth))
            found, extra, total = found + gt_matched.sum(), extra + (~pred_matched).sum(), total + len(truth)
        assert total == 60  # 1, 2 and 3 objects per photo: one box per photo finds at most 30
        assert found / total >= 0.85 and extra / len(test_boxes) <= 0.5, (found, extra)

    @pytest.mark.parametrize("max_steps, epochs", [(20, 3), (0, 5), (1000, 5)])
    def test_max_steps_stops_at_the_epoch_reaching_it(self, classifier, max_steps, epochs):
        features, boxes = scenes(64, np.random.default_rng(1))
        # 64 photos and their mirrors in batches of 16: 8 batches per epoch.
        config = BoxTrainConfig(head="centres", reduce_filters=4, epochs=5, crops=0, batch_size=16,
                                max_steps=max_steps)
        _, head = build_box_model(classifier, config, feature_layer=VGG16.feature_layer)
        history = train_box_head(head, features, pad_boxes(boxes), config, verbose=0)
        assert len(history["loss"]) == epochs

    @pytest.mark.parametrize("name", ["max_steps", "refine_steps"])
    def test_steps_must_not_be_negative(self, name):
        with pytest.raises(ValueError, match=f"{name} must be an int >= 0"):
            BoxTrainConfig(**{name: -1})
        with pytest.raises(ValueError, match=f"{name} must be an int >= 0"):
            BoxTrainConfig(**{name: 1.5})


class TestCentreTargets:
    def test_peaks_at_each_centre_and_padding_ignored(self):
        boxes = pad_boxes([np.array([[0.125, 0.125, 0.25, 0.25], [0.875, 0.625, 0.25, 0.25]]), np.zeros((0, 4))])
        heat, assigned = centre_targets_of(boxes, (4, 4))
        assert heat.shape == (2, 16) and assigned.shape == (2, 16, 5)
        grid = heat[0].reshape(4, 4)
        assert grid[0, 0] == 1.0 and grid[2, 3] == 1.0 and np.sum(grid == 1.0) == 2
        np.testing.assert_allclose(assigned[0].reshape(4, 4, 5)[2, 3, :4], [0.875, 0.625, 0.25, 0.25])
        assert np.all(heat[1] == 0) and np.all(assigned[1, :, 4] == 0)


class TestSeveralBoxViews:
    def test_flips_crops_and_pastes_keep_every_box_on_its_object(self):
        rng = np.random.default_rng(3)
        features, boxes = scenes(12, rng)
        config = BoxTrainConfig(head="centres", crops=2, paste=1)
        views, moved = several_box_views(features, pad_boxes(boxes), config, epoch=1)
        assert len(views) == 12 * 5 and moved.shape[1] == 4  # originals, flips, 2 crops, a paste set
        for f, b in zip(views, moved, strict=True):
            for box in b[b[:, 2] > 0]:
                x0, y0, x1, y1 = np.round(cxcywh_to_xyxy(box[None])[0] * 8).astype(int)
                # The lit channel is under every box, moved, flipped, cropped or pasted.
                assert f[y0:y1, x0:x1, 0].mean() > 1.5, (box, f[..., 0].round(1))

    def test_paste_adds_a_box_where_it_covers_none(self):
        rng = np.random.default_rng(5)
        features = np.zeros((2, 8, 8, 1), np.float32)
        features[0, 0:2, 0:2] = 1.0
        features[1, 5:8, 5:8] = 2.0
        boxes = pad_boxes([np.array([[0.125, 0.125, 0.25, 0.25]]), np.array([[0.8125, 0.8125, 0.375, 0.375]])])
        pasted, new_boxes = paste_views(features, boxes, rng)
        assert new_boxes.shape == (2, 2, 4)
        for j in range(2):
            added = new_boxes[j, 1]
            assert added[2] > 0  # both photos got the other's object
            x0, y0, x1, y1 = np.round(cxcywh_to_xyxy(added[None])[0] * 8).astype(int)
            assert pasted[j, y0:y1, x0:x1, 0].min() == features[1 - j].max()
        np.testing.assert_array_equal(new_boxes[:, 0], boxes[:, 0])  # their own boxes stand
