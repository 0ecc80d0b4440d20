import numpy as np
import pytest

from localize.boxes import heatmap_to_boxes
from localize.ddt import ddt_maps


def object_features(n=3, shape=(12, 16), depth=8, seed=0):
    """Descriptor maps whose object (a different place per image) shares one direction."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=depth)
    feats, boxes = [], []
    for i in range(n):
        f = rng.normal(scale=0.1, size=(*shape, depth))
        y0, x0 = 2 + i, 3 + 2 * i
        f[y0:y0 + 4, x0:x0 + 5] += direction
        feats.append(f.astype(np.float32))
        boxes.append([x0, y0, x0 + 5, y0 + 4])
    return feats, np.array(boxes, np.float64)


class TestDdtMaps:
    def test_positive_region_is_the_common_object(self):
        feats, boxes = object_features()
        for p, box in zip(ddt_maps(feats), boxes, strict=True):
            found, _ = heatmap_to_boxes(np.maximum(p, 0), threshold=1e-6)
            np.testing.assert_array_equal(found, [box])

    def test_reference_orients_the_sign(self):
        feats, boxes = object_features()
        # a reference that is hot *outside* the objects flips the sign
        refs = []
        for box in boxes.astype(int):
            r = np.ones((24, 32))
            r[2 * box[1]:2 * box[3], 2 * box[0]:2 * box[2]] = 0
            refs.append(r)
        flipped = ddt_maps(feats, reference=refs)
        plain = ddt_maps(feats)
        np.testing.assert_allclose(flipped[0], -plain[0], rtol=1e-5, atol=1e-6)

    def test_different_sizes(self):
        feats, _ = object_features()
        feats[1] = feats[1][:10, :14]
        maps = ddt_maps(feats)
        assert [m.shape for m in maps] == [(12, 16), (10, 14), (12, 16)]

    def test_errors(self):
        feats, _ = object_features()
        with pytest.raises(ValueError, match="features is empty"):
            ddt_maps([])
        with pytest.raises(ValueError, match=r"must be \(h, w, D\)"):
            ddt_maps([np.zeros((4, 4))])
        with pytest.raises(ValueError, match="must agree"):
            ddt_maps([np.zeros((4, 4, 3)), np.zeros((4, 4, 2))])
        with pytest.raises(TypeError, match="real-valued"):
            ddt_maps([np.zeros((4, 4, 3), bool)])
        bad = feats[0].copy()
        bad[0, 0, 0] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            ddt_maps([bad])
        with pytest.raises(ValueError, match="one map per image"):
            ddt_maps(feats, reference=[np.zeros((4, 4))])
