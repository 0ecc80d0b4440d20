import numpy as np
import pytest

from detector.paste_photos import MAX_OVERLAP, paste_photos
from groundwork.box_geometry import box_ioa, cxcywh_to_xyxy

GREY, RED, GREEN = (128, 128, 128), (220, 30, 30), (30, 200, 30)


def photo(colour, box, size=(96, 128), disk=True):
    """A grey photo with one object in ``box`` (normalised cx, cy, w, h): a disk filling it, or the
    whole box."""
    height, width = size
    image = np.full((height, width, 3), GREY, np.uint8)
    x0, y0, x1, y1 = (cxcywh_to_xyxy(np.array([box]))[0] * [width, height, width, height]).astype(int)
    yy, xx = np.mgrid[:height, :width]
    inside = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    if disk:
        inside &= ((xx - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2 + ((yy - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2 <= 1
    image[inside] = colour
    return image


def scenes(photos, boxes, labels, **kwargs):
    kwargs = {"sources": range(len(photos)), "backgrounds": range(len(photos)), **kwargs}
    return list(paste_photos(lambda row: photos[row], boxes, labels, **kwargs))


class TestPastePhotos:
    def test_objects_of_the_class_are_pasted_where_they_cover_no_box(self):
        boxes = [np.array([[0.25, 0.3, 0.3, 0.4]]), np.array([[0.7, 0.6, 0.35, 0.45]]),
                 np.array([[0.5, 0.5, 0.3, 0.3]])]
        photos = [photo(RED, boxes[0][0]), photo(RED, boxes[1][0]), photo(GREEN, boxes[2][0])]
        out = scenes(photos, boxes, ["a", "a", "b"], sets=3, seed=1)
        # Only the two red photos share a class: the green one gets nothing and gives nothing.
        assert {row for row, _, _ in out} == {0, 1}
        for row, image, scene in out:
            assert image.shape == photos[row].shape and image.dtype == np.uint8
            np.testing.assert_allclose(scene[:1], boxes[row], atol=1e-6)  # its own box first
            assert 2 <= len(scene) <= 3
            xyxy = cxcywh_to_xyxy(scene.astype(np.float64))
            for k in range(1, len(xyxy)):
                others = np.delete(xyxy, k, axis=0)
                assert box_ioa(xyxy[k:k + 1], others).max() < MAX_OVERLAP + 0.02
                assert box_ioa(others, xyxy[k:k + 1]).max() < MAX_OVERLAP + 0.02
                # The pasted disk is red at its centre; the box's corners keep the scene's grey
                # (GrabCut cut the disk, not its box).
                h, w = image.shape[:2]
                x0, y0, x1, y1 = np.rint(xyxy[k] * [w, h, w, h]).astype(int)
                centre = image[(y0 + y1) // 2, (x0 + x1) // 2].astype(int)
                assert np.abs(centre - RED).max() < 40, centre
                corner = image[y0 + 1, x0 + 1].astype(int)
                assert np.abs(corner - GREY).max() < 40, corner
        # The originals were read, not changed.
        assert np.all(photos[0][0, 0] == GREY)

    def test_the_same_seed_composes_the_same_scenes(self):
        boxes = [np.array([[0.25, 0.3, 0.3, 0.4]]), np.array([[0.7, 0.6, 0.35, 0.45]])]
        photos = [photo(RED, b[0]) for b in boxes]
        first, again = scenes(photos, boxes, ["a", "a"], seed=3), scenes(photos, boxes, ["a", "a"], seed=3)
        assert len(first) == len(again) > 0
        for (r1, i1, b1), (r2, i2, b2) in zip(first, again, strict=True):
            assert r1 == r2
            np.testing.assert_array_equal(i1, i2)
            np.testing.assert_array_equal(b1, b2)

    def test_photos_of_several_boxes_give_no_object_and_full_photos_take_none(self):
        two = np.array([[0.25, 0.3, 0.2, 0.2], [0.75, 0.7, 0.2, 0.2]])
        whole = np.array([[0.5, 0.5, 1.0, 1.0]])
        one = np.array([[0.3, 0.3, 0.3, 0.3]])
        photos = [photo(RED, two[0]), photo(RED, whole[0], disk=False), photo(RED, one[0])]
        out = scenes(photos, [two, whole, one], ["a"] * 3, sets=2)
        # Objects come from the one-box photos (1 and 2); photo 1's box fills it: nothing fits there.
        assert {row for row, _, _ in out} <= {0, 2} and out
        assert all(len(b) > len(two if row == 0 else one) for row, _, b in out)

    def test_only_the_given_backgrounds_get_scenes(self):
        boxes = [np.array([[0.25, 0.3, 0.3, 0.4]]), np.array([[0.7, 0.6, 0.35, 0.45]]),
                 np.array([[0.3, 0.7, 0.3, 0.3]])]
        photos = [photo(RED, b[0]) for b in boxes]
        out = scenes(photos, boxes, ["a"] * 3, sources=[0], backgrounds=[1, 2], sets=2)
        assert {row for row, _, _ in out} == {1, 2}

    @pytest.mark.parametrize("kwargs, message", [({"sets": 0}, "sets and max_objects"),
                                                 ({"max_objects": 0}, "sets and max_objects"),
                                                 ({"scale": (0.0, 1.0)}, "scale must be")])
    def test_bad_settings_are_refused(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            scenes([photo(RED, (0.5, 0.5, 0.3, 0.3))], [np.array([[0.5, 0.5, 0.3, 0.3]])], ["a"], **kwargs)


class TestConfig:
    def test_paste_photos_needs_the_centres_head_and_a_count(self):
        from detector.box_train_config import BoxTrainConfig

        assert BoxTrainConfig().paste_photos == 0
        with pytest.raises(ValueError, match="paste_photos needs the 'centres' head"):
            BoxTrainConfig(head="cells", paste_photos=1)
        with pytest.raises(ValueError, match="paste_photos must be an int >= 0"):
            BoxTrainConfig(paste_photos=-1)
