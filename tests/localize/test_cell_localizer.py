import numpy as np
import pytest

from localize.cell_localizer import (
    CellLocalizer,
    cell_targets,
    cross_fit,
    fit_cell_localizer,
    group_folds,
    load_cell_localizer,
    save_cell_localizer,
)


def scenes(n, seed=0, grid=(8, 10), channels=6):
    """Descriptor grids where channel 0 marks the object (a random box) and the rest is noise; the
    class map is a blurred, shifted hint (as a class map is)."""
    rng = np.random.default_rng(seed)
    h, w = grid
    features = rng.normal(0, 1, (n, h, w, channels)).astype(np.float32)
    maps, boxes = [], []
    for i in range(n):
        x0, y0 = rng.integers(0, w - 4), rng.integers(0, h - 4)
        x1, y1 = x0 + rng.integers(2, 5), y0 + rng.integers(2, 5)
        features[i, y0:y1, x0:x1, 0] += 3.0
        cam = np.zeros((h, w), np.float32)
        cam[y0:y1, max(0, x0 - 1):x1] = 1.0
        maps.append(cam)
        boxes.append([x0 / w, y0 / h, x1 / w, y1 / h])
    return features, maps, np.array(boxes)


def box_iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


class TestCellTargets:
    def test_fraction_of_each_cell_inside(self):
        t = cell_targets(np.array([0.1, 0.0, 0.5, 1.0]), (1, 5))
        np.testing.assert_allclose(t, [[0.5, 1.0, 0.5, 0.0, 0.0]])

    def test_every_box_of_a_photo_is_object(self):
        t = cell_targets(np.array([[0.0, 0.0, 0.2, 1.0], [0.6, 0.0, 1.0, 1.0], [0.0, 0.0, 0.1, 1.0]]), (1, 5))
        np.testing.assert_allclose(t, [[1.0, 0.0, 0.0, 1.0, 1.0]])

    def test_folds_keep_groups_together(self):
        groups = [3, 3, 3, 8, 8, 1, 9, 9, 4]
        fold = group_folds(groups, 3)
        for g in set(groups):
            assert len({fold[i] for i, x in enumerate(groups) if x == g}) == 1
        assert set(fold.tolist()) == {0, 1, 2}


class TestFit:
    def test_learns_the_object_cells_and_boxes_unseen_images(self):
        from localize.boxes import heatmap_to_boxes

        features, maps, boxes = scenes(40)
        localizer = fit_cell_localizer(features[:30], maps[:30], boxes[:30], folds=3)
        assert localizer.n_boxes == 30 and localizer.channels == 6 and 0 < localizer.threshold < 1
        assert localizer.coef[0] > 0 and max(abs(c) for c in localizer.coef[1:6]) < localizer.coef[0] / 3
        ious = []
        for m, box in zip(localizer.maps(features[30:], maps[30:]), boxes[30:], strict=True):
            b, _ = heatmap_to_boxes(m, threshold=localizer.threshold)
            ious.append(box_iou(b[0] / [10, 8, 10, 8], box))
        assert np.mean(np.array(ious) >= 0.5) >= 0.8

    def test_cross_fit_never_fits_on_the_fold_it_boxes(self):
        features, maps, boxes = scenes(12, seed=1)
        groups = np.repeat(np.arange(6), 2)
        localizers, fold = cross_fit(features, maps, boxes, groups=groups, folds=3)
        assert len(localizers) == 3 and all(loc.n_boxes == 8 for loc in localizers)
        # Changing a fold's boxes changes every localizer but its own.
        moved = boxes.copy()
        moved[fold == 0] = [0.0, 0.0, 1.0, 1.0]
        again, _ = cross_fit(features, maps, moved, groups=groups, folds=3)
        assert again[0].coef == localizers[0].coef
        assert again[1].coef != localizers[1].coef and again[2].coef != localizers[2].coef

    @pytest.mark.parametrize("bad, match", [
        (dict(boxes=np.array([[0.5, 0.5, 0.2, 0.9]] * 4)), "x0 < x1"),
        (dict(boxes=np.array([[0, 0, 2.0, 1.0]] * 4)), "normalised"),
        (dict(maps=[np.zeros((8, 10))] * 3), "one entry per image"),
        (dict(n=1), "at least 2"),
    ])
    def test_bad_inputs(self, bad, match):
        features, maps, boxes = scenes(bad.get("n", 4))
        with pytest.raises(ValueError, match=match):
            fit_cell_localizer(features, bad.get("maps", maps), bad.get("boxes", boxes))

    def test_photos_with_several_objects_learn_from_all_of_them(self):
        features, maps, boxes = scenes(30, seed=3)
        # A second object in every photo, marked like the first: with only the first box as the truth
        # its cells count as background.
        second = []
        for i in range(30):
            features[i, 5:7, 7:9, 0] += 3.0
            second.append([np.asarray(boxes[i]), np.array([7 / 10, 5 / 8, 9 / 10, 7 / 8])])
        both = fit_cell_localizer(features, maps, second, folds=3)
        first = fit_cell_localizer(features, maps, boxes, folds=3)
        # The marking channel weighs more when the second objects' cells count as object too.
        assert both.coef[0] > 1.3 * first.coef[0]
        assert both.maps(features[:1], maps[:1])[0][6, 8] > 1.5 * first.maps(features[:1], maps[:1])[0][6, 8]

    def test_the_cut_is_chosen_on_held_out_maps(self):
        from localize.cell_localizer import choose_cut

        # A dark square on a plain background, a map blurred around it: GrabCut follows the square's
        # edges (10..20), the thresholded map boxes 7..23.
        image = np.full((40, 40, 3), 200, np.uint8)
        image[10:20, 10:20] = 30
        yy, xx = np.mgrid[0:40, 0:40]
        blob = np.exp(-((yy - 14.5) ** 2 + (xx - 14.5) ** 2) / (2 * 7.0 ** 2)).astype(np.float32)
        square, wider = np.array([[10.0, 10.0, 20.0, 20.0]]), np.array([[7.0, 7.0, 23.0, 23.0]])
        assert choose_cut([image] * 2, [blob] * 2, [square] * 2, 0.5) == "grabcut"
        assert choose_cut([image] * 2, [blob] * 2, [wider] * 2, 0.5) == "cam"
        features, maps, boxes = scenes(8)
        photos = [np.full((80, 100, 3), 128, np.uint8)] * 8
        assert fit_cell_localizer(features, maps, boxes, folds=2, images=photos).cut in ("cam", "grabcut")
        with pytest.raises(ValueError, match="one photo per hand-boxed image"):
            fit_cell_localizer(features, maps, boxes, folds=2, images=photos[:3])

    def test_one_group_cannot_be_scored(self):
        features, maps, boxes = scenes(4)
        with pytest.raises(ValueError, match="2 capture groups"):
            cross_fit(features, maps, boxes, groups=[5, 5, 5, 5])


class TestSaveLoad:
    def test_round_trip_and_damage(self, tmp_path):
        features, maps, boxes = scenes(6)
        localizer = fit_cell_localizer(features, maps, boxes, folds=2, model_sha256="ab")
        save_cell_localizer(localizer, tmp_path)
        loaded = load_cell_localizer(tmp_path, model_sha256="ab")
        assert loaded == localizer
        np.testing.assert_array_equal(loaded.maps(features, maps)[0], localizer.maps(features, maps)[0])
        assert load_cell_localizer(tmp_path / "none") is None
        with pytest.raises(ValueError, match="another classifier"):
            load_cell_localizer(tmp_path, model_sha256="cd")
        (tmp_path / "cell_localizer.json").write_text('{"mean": [1], "scale": [0], "coef": [1], "intercept": 0, '
                                                      '"threshold": 0.5, "n_boxes": 2}')
        with pytest.raises(ValueError, match="not a valid cell localizer"):
            load_cell_localizer(tmp_path)

    def test_wrong_descriptor_width(self):
        localizer = CellLocalizer(mean=(0, 0, 0), scale=(1, 1, 1), coef=(1, 1, 1), intercept=0.0, threshold=0.5,
                                  n_boxes=2)
        with pytest.raises(ValueError, match=r"\(N, h, w, 2\)"):
            localizer.maps(np.zeros((1, 3, 3, 5)), [np.zeros((3, 3))])
