"""Tests of classifier.features: extraction, views, chunked resume and the cache."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.backbones.vgg16 import vgg16_preprocessing
from classifier.features import CHUNK, FeatureCache, cache_key, extract_features
from classifier.model import build_classifier, split_model
from datasets.tf_input import Augmentation

TINY = (4, 4, 8, 8, 8)


@pytest.fixture(scope="module")
def lower():
    model = build_classifier(2, (32, 32), backbone="vgg16", filters=TINY)
    return split_model(model, "block4_pool", backbone="vgg16")[0]


def images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)


class TestExtractFeatures:
    def test_plain_view_is_the_lower_model(self, lower):
        x = images(3)
        pre = vgg16_preprocessing((32, 32))
        out = extract_features(lower, x, pre.apply)
        assert out.dtype == np.float16 and out.shape == (3, 2, 2, 8)
        np.testing.assert_allclose(out, np.asarray(lower(pre.apply(x))), rtol=1e-2, atol=1e-2)

    def test_augmented_views_are_seeded(self, lower):
        x, pre = images(2), vgg16_preprocessing((32, 32))
        a = extract_features(lower, x, pre.apply, augmentation=Augmentation(), seed=1, view=1)
        b = extract_features(lower, x, pre.apply, augmentation=Augmentation(), seed=1, view=1)
        c = extract_features(lower, x, pre.apply, augmentation=Augmentation(), seed=1, view=2)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)

    def test_chunks_are_reused(self, lower, tmp_path):
        x, pre = images(CHUNK + 3), vgg16_preprocessing((32, 32))
        first = extract_features(lower, x, pre.apply, chunk_dir=tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["00000.npy", "00001.npy"]
        # A finished chunk is read back, not recomputed: poison it and see it come back.
        np.save(tmp_path / "00000.npy", np.zeros_like(first[:CHUNK]))
        again = extract_features(lower, x, pre.apply, chunk_dir=tmp_path)
        assert np.all(again[:CHUNK] == 0)
        np.testing.assert_array_equal(again[CHUNK:], first[CHUNK:])

    def test_progress(self, lower):
        done = []
        extract_features(lower, images(5), vgg16_preprocessing((32, 32)).apply, batch_size=2,
                         progress=done.append)
        assert done == [2, 2, 1]

    @pytest.mark.parametrize("bad", [np.zeros((0, 32, 32, 3), np.uint8), np.zeros((2, 32, 32, 3), np.float32),
                                     np.zeros((32, 32, 3), np.uint8)])
    def test_bad_images(self, lower, bad):
        with pytest.raises(ValueError, match=r"images must be a non-empty \(N, H, W, 3\) uint8 array"):
            extract_features(lower, bad, vgg16_preprocessing((32, 32)).apply)


class TestFeatureCache:
    def test_put_get(self, tmp_path):
        cache = FeatureCache(tmp_path, cache_key({"a": 1}), {"a": 1})
        assert cache.get("train_v0") is None
        cache.chunk_dir("train_v0")
        cache.put("train_v0", np.arange(3, dtype=np.float16))
        np.testing.assert_array_equal(cache.get("train_v0"), [0, 1, 2])
        assert not (cache.path / "train_v0.chunks").exists()
        assert (cache.path / "key.json").is_file()

    def test_key_depends_on_content(self):
        assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
        assert cache_key({"a": 1}) != cache_key({"a": 2})
