import cv2
import numpy as np
import pytest

from groundwork.box_geometry import box_iou
from localize.boxes import heatmap_to_boxes
from localize.refine import grabcut_refine, seed_levels, seed_mask


def scene(rect=(40, 50, 100, 70), shape=(128, 160), color=(220, 40, 40), sigma=15.0, seed=0):
    """A textured grey image with a coloured rectangle and a coarse round blob heatmap on it."""
    rng = np.random.default_rng(seed)
    image = rng.normal(120, 20, (*shape, 3)).clip(0, 255).astype(np.uint8)
    x0, y0, x1, y1 = rect
    image[y0:y1, x0:x1] = color
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    heat = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    return image, heat, np.array([rect], np.float64)


class TestGrabcutRefine:
    @pytest.mark.parametrize("rect, color, sigma", [
        ((40, 50, 100, 70), (220, 40, 40), 15.0),   # wide rod under a round blob
        ((60, 30, 85, 100), (30, 60, 200), 20.0),   # tall rod
        ((50, 40, 110, 90), (40, 200, 60), 35.0),   # big square under a wide blob
    ])
    def test_beats_thresholded_box(self, rect, color, sigma):
        image, heat, gt = scene(rect, color=color, sigma=sigma)
        coarse, _ = heatmap_to_boxes(heat, threshold=0.2)
        refined, scores = grabcut_refine(image, heat)
        iou_coarse, iou_refined = box_iou(coarse, gt)[0, 0], box_iou(refined, gt)[0, 0]
        assert iou_refined > iou_coarse
        assert iou_refined > 0.75
        assert refined.shape == (1, 4) and 0 < scores[0] <= 1

    def test_low_resolution_heatmap(self):
        image, heat, gt = scene()
        small = cv2.resize(heat.astype(np.float32), (10, 8), interpolation=cv2.INTER_AREA)
        refined, _ = grabcut_refine(image, small)
        assert box_iou(refined, gt)[0, 0] > 0.75

    def test_downscaled_grabcut_maps_box_back(self):
        image, heat, gt = scene()
        refined, _ = grabcut_refine(image, heat, max_side=64)
        assert box_iou(refined, gt)[0, 0] > 0.6
        assert refined[0, 2] <= 160 and refined[0, 3] <= 128

    def test_deterministic(self):
        image, heat, _ = scene()
        np.testing.assert_array_equal(grabcut_refine(image, heat)[0], grabcut_refine(image, heat)[0])

    def test_flat_and_nan_heatmap_give_no_box(self):
        image, heat, _ = scene()
        assert grabcut_refine(image, np.zeros_like(heat))[0].shape == (0, 4)
        heat[0, 0] = np.nan
        assert grabcut_refine(image, heat)[0].shape == (0, 4)

    def test_heatmap_covering_everything_falls_back(self):
        image, _, _ = scene()
        heat = np.ones((128, 160))
        heat[0, 0] = 0.95  # not flat, but every pixel is above fg_threshold: no background seed
        boxes, _ = grabcut_refine(image, heat)
        np.testing.assert_array_equal(boxes, [[0, 0, 160, 128]])

    def test_seed_levels_follow_threshold(self):
        assert seed_levels(0.8) == {"fg_threshold": 0.94, "probable_threshold": 0.8, "bg_threshold": 0.65}
        assert seed_levels(0.1)["bg_threshold"] == 0.0

    def test_high_threshold_for_a_broad_map(self):
        # a broad map (sigma 30 over a 60x20 object): seeds from a low threshold call most of the
        # image probable foreground; seeds from a high (calibrated) threshold still find the object
        image, heat, gt = scene(sigma=30.0)
        low = box_iou(grabcut_refine(image, heat, threshold=0.2)[0], gt)[0, 0]
        high = box_iou(grabcut_refine(image, heat, threshold=0.8)[0], gt)[0, 0]
        assert high > 0.75 and high > low + 0.2

    def test_seed_mask_levels(self):
        norm = np.array([[0.0, 0.05, 0.15, 0.5, 0.9]])
        mask = seed_mask(norm, fg_threshold=0.8, probable_threshold=0.3, bg_threshold=0.1, margin=0.0)
        np.testing.assert_array_equal(mask, [[cv2.GC_BGD, cv2.GC_BGD, cv2.GC_PR_BGD, cv2.GC_PR_FGD, cv2.GC_FGD]])
        mask = seed_mask(norm, fg_threshold=0.8, probable_threshold=0.3, bg_threshold=0.1, margin=0.4)  # radius 2 px
        assert mask[0, 2] == cv2.GC_PR_BGD and mask[0, 1] == cv2.GC_PR_BGD and mask[0, 0] == cv2.GC_BGD

    @pytest.mark.parametrize("kwargs, match", [
        ({"fg_threshold": 1.2}, "fg_threshold must be"),
        ({"fg_threshold": 0.1}, "bg_threshold <= probable_threshold <= fg_threshold"),
        ({"threshold": 1.5}, "threshold must be a number in"),
        ({"margin": -1}, "margin must be"),
        ({"iterations": 0}, "iterations must be"),
        ({"max_side": 8}, "max_side must be"),
    ])
    def test_bad_parameters(self, kwargs, match):
        image, heat, _ = scene()
        with pytest.raises(ValueError, match=match):
            grabcut_refine(image, heat, **kwargs)

    def test_bad_image(self):
        _, heat, _ = scene()
        with pytest.raises(TypeError, match="uint8"):
            grabcut_refine(np.zeros((128, 160, 3), np.float32), heat)
        with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
            grabcut_refine(np.zeros((128, 160), np.uint8), heat)
        with pytest.raises(ValueError, match="2-D"):
            grabcut_refine(np.zeros((128, 160, 3), np.uint8), np.zeros((4, 4, 1)))


def test_same_boxes_on_threads_in_any_order():
    """GrabCut seeds its k-means per call on the calling thread: boxing photos side by side (as
    :func:`localize.pseudo_boxes.pseudo_boxes` does) gives each photo the box it gets alone."""
    from groundwork.thread_map import thread_map

    scenes = [scene(rect, color=color, sigma=sigma, seed=k) for k, (rect, color, sigma) in enumerate([
        ((40, 50, 100, 70), (220, 40, 40), 15.0), ((60, 30, 85, 100), (30, 60, 200), 20.0),
        ((50, 40, 110, 90), (40, 200, 60), 35.0), ((20, 20, 70, 60), (200, 200, 40), 18.0)])]
    alone = [grabcut_refine(image, heat)[0] for image, heat, _ in scenes]
    backwards = thread_map(lambda s: grabcut_refine(s[0], s[1])[0], scenes[::-1], workers=3)[::-1]
    for a, b in zip(alone, backwards, strict=True):
        np.testing.assert_array_equal(a, b)
