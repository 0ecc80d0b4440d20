import numpy as np
import pytest

from classifier.backbones.vgg16 import VGG16, vgg16_preprocessing
from classifier.model import build_classifier
from classifier.multi_view_maps import forward, multi_view_maps
from groundwork.box_geometry import matched_box_iou
from localize.cell_localizer import CellLocalizer
from localize.pseudo_boxes import (
    BoxingRule,
    LocalizeConfig,
    box_classes,
    boxing_rule,
    class_heatmaps,
    pseudo_boxes,
)


def _scene(rng, n=6, size=(48, 64)):
    """Images with a red square; class maps that peak on it (class 1) and nowhere for class 0."""
    images, maps, truth = [], [], []
    for _ in range(n):
        image = np.full((*size, 3), 90, np.uint8)
        y, x = rng.integers(4, size[0] - 20), rng.integers(4, size[1] - 20)
        image[y:y + 16, x:x + 16] = (220, 30, 30)
        cm = np.zeros((size[0] // 4, size[1] // 4, 2), np.float32)
        cm[y // 4:(y + 16) // 4, x // 4:(x + 16) // 4, 1] = 5.0
        images.append(image)
        maps.append(cm)
        truth.append([x, y, x + 16, y + 16])
    features = np.stack(maps).astype(np.float16)
    features = np.concatenate([features, features[..., 1:] * 0.5], axis=-1)
    probabilities = np.tile(np.array([[0.05, 0.95]], np.float32), (n, 1))
    return images, probabilities, np.stack(maps), features, np.array(truth, float)


class TestPseudoBoxes:
    @pytest.mark.parametrize("method", ["cam", "grabcut", "ddt"])
    def test_boxes_find_the_object(self, method):
        images, p, cm, f, truth = _scene(np.random.default_rng(0))
        out = pseudo_boxes(images, p, cm, f, input_size=(48, 64), config=LocalizeConfig(method=method, threshold=0.5))
        assert all(len(b) == 1 for b in out.boxes)
        ious = matched_box_iou(np.stack([b[0] for b in out.boxes]), truth)
        assert min(ious) > 0.5, ious
        assert list(out.classes) == [1] * 6 and out.notes == [""] * 6

    def test_known_label_is_used_and_doubt_flagged(self):
        images, p, cm, f, _ = _scene(np.random.default_rng(1), n=2)
        config = LocalizeConfig(min_confidence=0.5, without_boxes="midpoint")
        out = pseudo_boxes(images, p, cm, f, known=[0, None], config=config)
        assert list(out.classes) == [0, 1]
        # Class 0's map is flat: no box, and the known label's low probability is flagged.
        assert len(out.boxes[0]) == 0
        assert out.notes[0] == "no box: empty heatmap; low confidence (0.05)"

    def test_by_default_a_photo_below_0_9_is_doubtful(self):
        # datasets.review.MIN_CONFIDENCE: a two-class model is never below 0.5, so 0.5 flagged nothing.
        images, p, cm, f, _ = _scene(np.random.default_rng(2), n=2)
        p = np.array([[0.15, 0.85], [0.05, 0.95]], np.float32)
        out = pseudo_boxes(images, p, cm, f, input_size=(48, 64), config=LocalizeConfig(method="cam", threshold=0.5))
        assert out.notes == ["low confidence (0.85)", ""]

    def test_labels_only_is_co_localisation_of_the_class(self):
        images, p, cm, f, truth = _scene(np.random.default_rng(3))
        out = pseudo_boxes(images, p, cm, f, input_size=(48, 64))  # nothing learned: DDT at 0.3
        ious = matched_box_iou(np.stack([b[0] for b in out.boxes]), truth)
        assert min(ious) > 0.5, ious
        midpoint = pseudo_boxes(images, p, cm, f, input_size=(48, 64),
                                config=LocalizeConfig(without_boxes="midpoint", method="cam"))
        assert [h.shape for h in midpoint.heatmaps] == [h.shape for h in out.heatmaps] == [(48, 64)] * 6

    def test_lengths_must_agree(self):
        images, p, cm, f, _ = _scene(np.random.default_rng(2), n=2)
        with pytest.raises(ValueError, match="one entry per image"):
            pseudo_boxes(images[:1], p, cm, f)

    def test_classes_and_heatmaps_are_the_ones_boxed(self):
        images, p, cm, f, _ = _scene(np.random.default_rng(3), n=3)
        classes = box_classes(p, [0, None, None])
        assert classes.tolist() == [0, 1, 1]
        maps = class_heatmaps(cm, classes, (48, 64))
        assert [m.shape for m in maps] == [(48, 64)] * 3
        assert maps[1].max() == pytest.approx(1.0) and maps[1].min() == pytest.approx(0.0)
        # The boxes are made from exactly these maps (calibration reads them too).
        out = pseudo_boxes(images, p, cm, f, known=[0, None, None], input_size=(48, 64),
                           config=LocalizeConfig(method="cam", threshold=0.5))
        for mine, boxed in zip(maps, out.heatmaps, strict=True):
            np.testing.assert_array_equal(mine, boxed)
        with pytest.raises(ValueError, match=r"known class indices must be in \[0, 1\]"):
            box_classes(p, [2, None, None])
        with pytest.raises(ValueError, match="known must have one entry per image"):
            box_classes(p, [0])

    def test_bad_config(self):
        with pytest.raises(ValueError, match="method must be one of"):
            LocalizeConfig(method="magic")
        with pytest.raises(ValueError, match="scales must be a non-empty sequence"):
            LocalizeConfig(scales=())
        with pytest.raises(ValueError, match="scales must be a non-empty sequence"):
            LocalizeConfig(scales=(1.0, -2.0))
        with pytest.raises(ValueError, match="scales must be a sequence of numbers"):
            LocalizeConfig(scales=("big",))
        with pytest.raises(TypeError, match="flip must be a bool"):
            LocalizeConfig(flip="yes")
        assert LocalizeConfig(scales=[1, 2]).scales == (1.0, 2.0)


class TestForward:
    def test_one_pass_gives_all_three(self):
        model = build_classifier(2, (64, 64), backbone="vgg16", filters=(4, 4, 8, 8, 8), weights="none")
        x = np.zeros((3, 64, 64, 3), np.float32)
        p, cm, f, _ = forward(model, x, batch_size=2, feature_layer=VGG16.feature_layer)
        assert p.shape == (3, 2) and cm.shape == (3, 4, 4, 2) and f.shape == (3, 4, 4, 8)
        assert f.dtype == np.float16


@pytest.fixture(scope="module")
def tiny():
    model = build_classifier(2, (64, 64), backbone="vgg16", filters=(4, 4, 8, 8, 8), weights="none")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48 + 8 * i, 60, 3), np.uint8) for i in range(3)]
    pre = vgg16_preprocessing((64, 64))
    x = np.stack([pre.apply(pre.resize(image)) for image in images]).astype(np.float32)
    return model, images, pre, x


class TestMultiView:
    def test_scales_and_flip_average_on_the_finest_grid(self, tiny):
        model, images, pre, x = tiny
        done = []
        p, cm, f, g = forward(model, x, batch_size=2, scales=(1.0, 1.5), flip=True, images=images,
                           preprocessing=pre, progress=done.append, feature_layer=VGG16.feature_layer)
        assert p.shape == (3, 2) and f.shape == (3, 4, 4, 8)
        assert cm.shape == (3, 6, 6, 2)  # 1.5 x 64 = 96 pixels, stride 16
        assert cm.dtype == np.float32 and cm.min() >= 0 and cm.max() <= 1
        assert sum(done) == 3
        p1, _, f1, g1 = forward(model, x, feature_layer=VGG16.feature_layer)
        np.testing.assert_allclose(p, p1, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f, f1, atol=1e-5)  # float16; batches of 2 and of 8
        # The cell localizer's descriptors: the input size's, averaged with the mirrored photo's; the
        # plain pass's own.
        assert g.shape == (3, 4, 4, 8) and g.dtype == np.float16
        np.testing.assert_array_equal(g1, f1)
        _, _, mirrored, _ = forward(model, np.ascontiguousarray(x[:, :, ::-1]), feature_layer=VGG16.feature_layer)
        np.testing.assert_allclose(g, (f1.astype(np.float32) + mirrored[:, :, ::-1]) / 2, atol=2e-2)

    def test_multi_view_maps_match_forward(self, tiny):
        model, images, pre, x = tiny
        _, cm, _, _ = forward(model, x, scales=(1.5,), flip=True, images=images, preprocessing=pre, feature_layer=VGG16.feature_layer)
        alone = multi_view_maps(model, x, scales=(1.5,), flip=True, images=images, preprocessing=pre, batch_size=2)
        np.testing.assert_allclose(alone, cm, atol=1e-5)
        np.testing.assert_allclose(multi_view_maps(model, x), forward(model, x, feature_layer=VGG16.feature_layer)[1], atol=1e-6)
        with pytest.raises(ValueError, match="need the photos"):
            multi_view_maps(model, x, scales=(2.0,))

    def test_flip_average_is_mirror_symmetric(self, tiny):
        model, _, _, x = tiny
        _, cm, _, _ = forward(model, x, flip=True, feature_layer=VGG16.feature_layer)
        _, cm_mirror, _, _ = forward(model, np.ascontiguousarray(x[:, :, ::-1]), flip=True, feature_layer=VGG16.feature_layer)
        np.testing.assert_allclose(cm_mirror, cm[:, :, ::-1], atol=1e-5)

    def test_other_scales_need_the_photos(self, tiny):
        model, images, pre, x = tiny
        with pytest.raises(ValueError, match="need the photos"):
            forward(model, x, scales=(1.5,), feature_layer=VGG16.feature_layer)
        with pytest.raises(ValueError, match="one photo per row of x"):
            forward(model, x, scales=(1.5,), images=images[:2], preprocessing=pre, feature_layer=VGG16.feature_layer)
        with pytest.raises(TypeError, match="flip must be a bool"):
            forward(model, x, flip=1, feature_layer=VGG16.feature_layer)


class TestBoxingRule:
    LOCALIZER = CellLocalizer(mean=(0.0, 0.0), scale=(1.0, 1.0), coef=(1.0, 1.0), intercept=0.0, threshold=0.4,
                              n_boxes=2, cut="cam")

    @pytest.mark.parametrize(("config", "learned", "expected"), [
        (LocalizeConfig(), {}, BoxingRule("ddt", 0.3, "cam", "ddt")),
        (LocalizeConfig(ddt_threshold=0.25, method="grabcut"), {}, BoxingRule("ddt", 0.25, "grabcut", "ddt")),
        (LocalizeConfig(without_boxes="midpoint"), {}, BoxingRule("class_map", None, "grabcut", "midpoint")),
        (LocalizeConfig(), {"calibrated_threshold": 0.6}, BoxingRule("class_map", 0.6, "grabcut", "calibrated")),
        (LocalizeConfig(threshold=0.7, method="cam"), {}, BoxingRule("class_map", 0.7, "cam", "fixed")),
        (LocalizeConfig(), {"localizer": LOCALIZER}, BoxingRule("cell_localizer", 0.4, "cam", "cell_localizer")),
        (LocalizeConfig(threshold=0.5), {"localizer": LOCALIZER}, BoxingRule("cell_localizer", 0.5, "cam", "fixed")),
        (LocalizeConfig(method="ddt"), {"localizer": LOCALIZER}, BoxingRule("ddt", 0.3, "cam", "ddt")),
    ])
    def test_decided_once_from_what_was_learned(self, config, learned, expected):
        rule = boxing_rule(config, **learned)
        assert rule == expected
        assert rule.per_class == (expected.source == "ddt")

    @pytest.mark.parametrize(("field", "value", "match"), [("without_boxes", "cam", "without_boxes must be one of"),
                                                           ("ddt_threshold", 1.0, "ddt_threshold must be in"),
                                                           ("ddt_threshold", 0, "ddt_threshold must be in"),
                                                           ("method", "otsu", "method must be one of")])
    def test_bad_settings_are_named(self, field, value, match):
        with pytest.raises(ValueError, match=match):
            LocalizeConfig(**{field: value})
