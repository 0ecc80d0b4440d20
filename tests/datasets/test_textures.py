"""Tests of datasets.textures: the background textures of the synthetic scenes."""

from __future__ import annotations

import numpy as np
import pytest

from datasets.textures import KINDS, texture

# Per-channel mean and standard deviation of texture(kind, 96, 128, default_rng(100 + i)),
# recorded while the code still lived in datasets.synthetic: moving or tidying it must not change
# the textures. Compared to 1e-4, not as a hash of the bytes: OpenCV's warpAffine rounds
# differently on different processors (the wood hash changed between an Intel and an AMD machine
# with the same numpy 2.4.6 and OpenCV 5.0.0), while a real change moves these by far more.
RECORDED = {
    "wood": ([0.56012, 0.38703, 0.21882], [0.06037, 0.04172, 0.02359]),
    "carpet": ([0.28959, 0.35394, 0.27672], [0.05518, 0.06744, 0.05273]),
    "fabric": ([0.10847, 0.44088, 0.31841], [0.01766, 0.0718, 0.05185]),
    "granite": ([0.47982, 0.43712, 0.26023], [0.0622, 0.05667, 0.03374]),
    "paper": ([0.8943, 0.87535, 0.79462], [0.03138, 0.03071, 0.02788]),
    "tiles": ([0.22473, 0.66397, 0.04341], [0.0301, 0.08894, 0.00582]),
    "gradient": ([0.39793, 0.43713, 0.44301], [0.01867, 0.01, 0.01804]),
}


class TestTexture:
    @pytest.mark.parametrize("kind", KINDS)
    def test_shape_dtype_and_range(self, kind):
        image = texture(kind, 48, 80, np.random.default_rng(1))
        assert image.shape == (48, 80, 3) and image.dtype == np.float32
        assert np.all(np.isfinite(image)) and 0 < image.mean() < 1.5 and image.std() > 0

    @pytest.mark.parametrize(("index", "kind"), list(enumerate(KINDS)))
    def test_same_values_for_a_seed_as_recorded(self, index, kind):
        image = texture(kind, 96, 128, np.random.default_rng(100 + index)).astype(np.float64)
        mean, std = RECORDED[kind]
        np.testing.assert_allclose(image.mean((0, 1)), mean, atol=1e-4)
        np.testing.assert_allclose(image.std((0, 1)), std, atol=1e-4)

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
