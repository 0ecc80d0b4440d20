import numpy as np
import pytest

from classifier.backbones.vgg16 import VGG16
from classifier.model import build_classifier
from classifier.multi_view_maps import forward
from detector.box_losses import box_loss
from detector.box_model import build_box_model
from detector.box_train_config import BoxTrainConfig
from detector.box_views import feature_views, normalise_boxes
from detector.train_box_head import train_box_head
from groundwork.box_geometry import cxcywh_to_xyxy, xyxy_to_cxcywh

TINY = (4, 4, 8, 8, 8)


@pytest.fixture(scope="module")
def classifier():
    return build_classifier(2, (64, 96), backbone="vgg16", filters=TINY, weights="none")


class TestBuildBoxModel:
    @pytest.mark.parametrize("head_kind", ["cells", "dense"])
    def test_outputs_and_shared_layers(self, classifier, head_kind):
        config = BoxTrainConfig(head=head_kind, hidden=8, reduce_filters=4)
        box_model, head = build_box_model(classifier, config, feature_layer=VGG16.feature_layer)
        x = np.random.default_rng(0).normal(size=(2, 64, 96, 3)).astype(np.float32)
        probabilities, box = box_model.predict(x, verbose=0)
        assert probabilities.shape == (2, 2) and box.shape == (2, 4)
        # The untrained head gives the centred half-size box (its outputs have gradient there).
        np.testing.assert_allclose(box, [[0.5, 0.5, 0.5, 0.5]] * 2, atol=1e-6)
        np.testing.assert_allclose(probabilities, classifier.predict(x, verbose=0)[0], atol=1e-5)
        # Shared, not copied: weights set on the head move the box model's boxes the same way.
        rng = np.random.default_rng(1)
        for layer in head.layers:
            if layer.trainable_weights:
                layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
        box = box_model.predict(x, verbose=0)[1]
        assert np.all((box >= 0) & (box <= 1)) and np.abs(box - 0.5).max() > 0.01
        features = forward(classifier, x, feature_layer=VGG16.feature_layer)[2]
        np.testing.assert_allclose(head.predict(features.astype(np.float32), verbose=0), box, atol=2e-2)

    def test_cells_box_is_weighted_centre_and_reach(self, classifier):
        # Every cell equally likely: the centre is the grid's centre; each cell reaching 0.1 left,
        # 0.2 up, 0.3 right and 0.4 down makes the box (0.5 + (0.3 - 0.1) / 2, 0.5 + (0.4 - 0.2) / 2, 0.4, 0.6).
        _, head = build_box_model(classifier, BoxTrainConfig(head="cells", reduce_filters=4), feature_layer=VGG16.feature_layer)
        reach = head.get_layer("box_reach")
        kernel, _ = reach.get_weights()
        reach_to = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
        reach.set_weights([np.zeros_like(kernel), np.log(reach_to / (1 - reach_to))])
        features = np.random.default_rng(0).normal(size=(3, *head.input.shape[1:])).astype(np.float32)
        np.testing.assert_allclose(head.predict(features, verbose=0), [[0.6, 0.6, 0.4, 0.6]] * 3, atol=1e-5)

    def test_cells_box_follows_the_likeliest_cell(self, classifier):
        # All the weight on one cell: the box is centred on that cell (plus its reach).
        _, head = build_box_model(classifier, BoxTrainConfig(head="cells", reduce_filters=4), feature_layer=VGG16.feature_layer)
        h, w = head.input.shape[1:3]
        reduce = head.get_layer("box_reduce")
        kernel, bias = reduce.get_weights()
        kernel = np.zeros_like(kernel)
        kernel[kernel.shape[0] // 2, kernel.shape[1] // 2, 0, 0] = 1.0  # channel 0 passes feature 0 through
        reduce.set_weights([kernel, np.zeros_like(bias)])
        logit = head.get_layer("box_logit")
        logit_kernel = np.zeros((1, 1, 4, 1), np.float32)
        logit_kernel[0, 0, 0, 0] = 50.0  # a cell whose channel 0 is on is far likelier than the others
        logit.set_weights([logit_kernel, np.zeros(1, np.float32)])
        features = np.zeros((1, h, w, head.input.shape[-1]), np.float32)
        features[0, 1, 2, 0] = 1.0
        cx, cy, bw, bh = head.predict(features, verbose=0)[0]
        assert (cx, cy) == (pytest.approx(2.5 / w, abs=1e-3), pytest.approx(1.5 / h, abs=1e-3))
        assert (bw, bh) == (pytest.approx(0.5, abs=1e-3), pytest.approx(0.5, abs=1e-3))

    def test_needs_a_classifier(self):
        import keras

        other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 1, name="conv")])
        with pytest.raises(ValueError, match="Missing: \\['block5_conv3', 'probabilities'\\]"):
            build_box_model(other, feature_layer=VGG16.feature_layer)


class TestFeatureViews:
    def test_flip_mirrors_box(self):
        features = np.arange(2 * 3 * 4 * 1, dtype=np.float32).reshape(2, 3, 4, 1)
        boxes = np.array([[0.25, 0.5, 0.2, 0.4], [0.5, 0.5, 1.0, 1.0]], np.float32)
        x, y = feature_views(features, boxes, BoxTrainConfig(crops=0, flip=True))
        assert x.shape == (4, 3, 4, 1)
        np.testing.assert_array_equal(x[2], features[0, :, ::-1])
        np.testing.assert_allclose(y[2], [0.75, 0.5, 0.2, 0.4])

    def test_crop_keeps_box_on_same_cells(self):
        # A one-hot feature grid marks the box's cells; after a crop the box must still cover them.
        rng = np.random.default_rng(0)
        features, boxes = [], []
        for _ in range(20):
            grid = np.zeros((6, 8, 1), np.float32)
            r, c = rng.integers(0, 5), rng.integers(0, 7)
            grid[r:r + 2, c:c + 2] = 1
            features.append(grid)
            boxes.append(xyxy_to_cxcywh(np.array([[c / 8, r / 6, (c + 2) / 8, (r + 2) / 6]]))[0])
        x, y = feature_views(np.stack(features), np.stack(boxes), BoxTrainConfig(crops=3, flip=False))
        assert x.shape == (80, 6, 8, 1) and y.shape == (80, 4)
        # The crops are crops: most views stretch their box beyond the original's size.
        assert np.mean(y[20:, 2] * y[20:, 3] > np.tile(y[:20, 2] * y[:20, 3], 3) + 1e-6) > 0.5
        for grid, box in zip(x[20:], y[20:], strict=True):
            x0, y0, x1, y1 = cxcywh_to_xyxy(box[None])[0]
            rows, cols = np.nonzero(grid[..., 0])
            assert rows.min() >= np.floor(y0 * 6 + 1e-4) - 0 and rows.max() <= np.ceil(y1 * 6 - 1e-4) - 1
            assert cols.min() >= np.floor(x0 * 8 + 1e-4) and cols.max() <= np.ceil(x1 * 8 - 1e-4) - 1

    def test_bad_boxes(self):
        with pytest.raises(ValueError, match="Received shape: \\(1, 3\\)"):
            feature_views(np.zeros((1, 2, 2, 1)), np.zeros((1, 3)), BoxTrainConfig())
        with pytest.raises(ValueError, match="in \\[0, 1\\]"):
            feature_views(np.zeros((1, 2, 2, 1)), np.array([[0.5, 0.5, 2.0, 0.1]]), BoxTrainConfig())


class TestTrainBoxHead:
    @pytest.mark.parametrize("cell_weight", [0.0, 1.0])
    def test_learns_box_from_features(self, classifier, cell_weight):
        # Features that mark the object's cells: the head must learn to read the box off them.
        rng = np.random.default_rng(1)
        _, head = build_box_model(classifier, BoxTrainConfig(head="cells", hidden=32, reduce_filters=8), feature_layer=VGG16.feature_layer)
        h, w = head.input.shape[1:3]
        features, boxes = [], []
        for _ in range(96):
            grid = np.zeros((h, w, 8), np.float32)
            bw, bh = rng.integers(1, 3), rng.integers(1, 3)
            r, c = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
            grid[r:r + bh, c:c + bw] = 4.0
            features.append(grid)
            boxes.append(xyxy_to_cxcywh(np.array([[c / w, r / h, (c + bw) / w, (r + bh) / h]]))[0])
        features, boxes = np.stack(features), np.stack(boxes)
        config = BoxTrainConfig(head="cells", hidden=32, reduce_filters=8, epochs=12, crops=0, dropout=0.0, learning_rate=1e-2,
                                cell_weight=cell_weight)
        history = train_box_head(head, features[:80], boxes[:80], config, valid=(features[80:], boxes[80:]),
                                 verbose=0)
        assert history["loss"][-1] < history["loss"][0]
        assert max(history["val_iou"]) > 0.5 and len(history["val_iou"]) == 12
        if cell_weight:
            # Taught cell by cell, the likeliest cell lies inside the object.
            from detector.box_model import cell_parts

            parts = cell_parts(head)
            _, logits, _ = parts.predict(features[80:], verbose=0)
            best = np.argmax(logits, axis=1)
            inside = [features[80 + k].reshape(h * w, -1)[b, 0] > 0 for k, b in enumerate(best)]
            assert np.mean(inside) > 0.8

    def test_cell_targets(self):
        from detector.box_losses import cell_targets_of

        boxes, centre, reaches = cell_targets_of(np.array([[0.375, 0.5, 0.25, 0.5]]), (2, 4))
        assert centre.shape == (1, 8) and centre.sum() == pytest.approx(1.0) and reaches.shape == (1, 8, 5)
        assert set(np.argsort(centre[0])[-2:]) == {1, 5}  # the two cells of column 1 hold the centre
        np.testing.assert_allclose(reaches[0, 1, :4], [0.125, 0.0, 0.125, 0.5])  # cell (0, 1): centre (0.375, 0.25)
        np.testing.assert_allclose(reaches[0, :, 4], centre[0])

    def test_crops_chosen_by_hand_boxes(self):
        from detector.box_train_config import LABELS_ONLY_CROPS

        assert BoxTrainConfig().crops is None
        assert BoxTrainConfig().for_training(hand_boxes=True).crops == 0
        assert BoxTrainConfig().for_training(hand_boxes=False).crops == LABELS_ONLY_CROPS == 2
        assert BoxTrainConfig(crops=1).for_training(hand_boxes=False).crops == 1  # as set
        assert BoxTrainConfig(crops=3).for_training(hand_boxes=True).crops == 3
        # Unchosen, the views have no crops: the originals and the flips.
        x, _ = feature_views(np.zeros((2, 4, 6, 3), np.float32), np.full((2, 4), 0.5, np.float32), BoxTrainConfig())
        assert len(x) == 4
        for bad in (-1, True, 1.5):
            with pytest.raises(ValueError, match="crops must be an int >= 0"):
                BoxTrainConfig(crops=bad)

    def test_bad_config(self):
        with pytest.raises(ValueError, match="head must be one of"):
            BoxTrainConfig(head="yolo")
        with pytest.raises(ValueError, match="kernel must be an int >= 1"):
            BoxTrainConfig(kernel=0)
        with pytest.raises(ValueError, match="cell_weight must be >= 0"):
            BoxTrainConfig(cell_weight=-1.0)
        for name in ("split_inside", "fuse_iou"):
            for bad in (0.0, 1.5, True):
                with pytest.raises(ValueError, match=f"{name} must be in \\(0, 1\\] or None"):
                    BoxTrainConfig(**{name: bad})
            assert getattr(BoxTrainConfig(**{name: None}), name) is None

    def test_no_boxes(self, classifier):
        _, head = build_box_model(classifier, feature_layer=VGG16.feature_layer)
        with pytest.raises(ValueError, match="No pseudo boxes"):
            train_box_head(head, np.zeros((0, 4, 6, 8)), np.zeros((0, 4)), BoxTrainConfig(head="cells"), verbose=0)


class TestBoxMath:
    def test_loss_is_zero_for_perfect_boxes(self):
        y = np.array([[0.5, 0.5, 0.2, 0.3]], np.float32)
        assert float(np.asarray(box_loss()(y, y))[0]) == pytest.approx(0.0, abs=1e-5)
        assert float(np.asarray(box_loss()(y, y + 0.1))[0]) > 0.1

    def test_normalise_boxes(self):
        out = normalise_boxes(np.array([[0, 0, 320, 240]]), [(640, 480)])
        np.testing.assert_allclose(out, [[0.25, 0.25, 0.5, 0.5]])
        with pytest.raises(ValueError, match="one image size per box"):
            normalise_boxes(np.zeros((2, 4)), [(640, 480)])


class TestFeatureScale:
    def test_unit_scale_and_layer(self, classifier):
        from detector.box_model import feature_scale

        features = np.random.default_rng(0).normal(0, 300, (4, 4, 6, 8)).astype(np.float32)
        scale = feature_scale(features)
        assert np.std(features * scale) == pytest.approx(1.0, rel=1e-3)
        _, head = build_box_model(classifier, BoxTrainConfig(hidden=8, reduce_filters=4), feature_scale=scale, feature_layer=VGG16.feature_layer)
        assert head.get_layer("box_scale").scale == pytest.approx(scale)

    def test_bad_scale(self, classifier):
        with pytest.raises(ValueError, match="feature_scale must be a positive number"):
            build_box_model(classifier, feature_scale=0.0, feature_layer=VGG16.feature_layer)
