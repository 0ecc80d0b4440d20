"""Tests of datasets.textures: the background textures of the synthetic scenes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from datasets.textures import KINDS, texture

# sha256 of texture(kind, 96, 128, default_rng(100 + i)), recorded while the code still lived in
# datasets.synthetic (numpy 2.4.6, opencv 5.0.0): moving it must not change a value. Another numpy
# or OpenCV build may round differently and need new values.
RECORDED = {
    "wood": "3628d253b33bf8360bd1b429c314321e48b93ef84d5018c9ac8ef4253630a7fc",
    "carpet": "ac01d6df6a93ba1f87c0b90807a23ae43be62b606ecdbbc0d997cf0fba42ab02",
    "fabric": "4c56b4b02f2e9bfec47a48300fdc5f9eeeacf29afba3831c90076f473969df93",
    "granite": "933d6eb333265096ad961d467dd0680b83faaf3db55b320cc31fc5ff718d8645",
    "paper": "f935a93920537e54ba96e334a8eae6b78f8fff061283b7953f5cae9b2703b945",
    "tiles": "7fed29f16ed2caf49eae925e3d4340889c5b3aaeabf6b237c44b408c01e09947",
    "gradient": "64f87f0fb595d3d53a8953fa42e6f8f3be08e1b777d1c813e452a82647724ad2",
}


class TestTexture:
    @pytest.mark.parametrize("kind", KINDS)
    def test_shape_dtype_and_range(self, kind):
        image = texture(kind, 48, 80, np.random.default_rng(1))
        assert image.shape == (48, 80, 3) and image.dtype == np.float32
        assert np.all(np.isfinite(image)) and 0 < image.mean() < 1.5 and image.std() > 0

    @pytest.mark.parametrize(("index", "kind"), list(enumerate(KINDS)))
    def test_same_values_for_a_seed_as_recorded(self, index, kind):
        image = texture(kind, 96, 128, np.random.default_rng(100 + index))
        assert hashlib.sha256(image.tobytes()).hexdigest() == RECORDED[kind]

    def test_seed_fixes_the_texture(self):
        a, b, c = (texture("granite", 64, 64, np.random.default_rng(s)) for s in (5, 5, 6))
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)

    @pytest.mark.parametrize(("args", "error", "match"), [
        (("marble", 64, 64), ValueError, "kind must be one of"),
        (("wood", 0, 64), ValueError, "height must be an int >= 1. Received: 0"),
        (("wood", 64, 6.5), ValueError, "width must be an int >= 1. Received: 6.5"),
        (("wood", True, 64), ValueError, "height must be an int >= 1"),
    ])
    def test_errors(self, args, error, match):
        with pytest.raises(error, match=match):
            texture(*args, np.random.default_rng(0))

    def test_rng_type(self):
        with pytest.raises(TypeError, match="rng must be a numpy.random.Generator. Received: int"):
            texture("wood", 64, 64, 0)
