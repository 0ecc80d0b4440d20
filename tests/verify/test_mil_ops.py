"""ML Program ops a converted EfficientNet-Lite may contain, against Keras / numpy."""

import numpy as np
import pytest

from verify.mil_runtime import _EXACT, _OPS


class TestActivations:
    def test_relu6(self):
        x = np.array([-3.0, 0.0, 2.5, 6.0, 8.0], np.float32)
        np.testing.assert_array_equal(_OPS["relu6"](x=x)[0], [0.0, 0.0, 2.5, 6.0, 6.0])

    def test_clip(self):
        x = np.array([-3.0, 2.5, 8.0], np.float32)
        np.testing.assert_array_equal(_OPS["clip"](x=x, alpha=np.float32(0), beta=np.float32(6))[0], [0.0, 2.5, 6.0])

    @pytest.mark.parametrize("op", ["relu6", "clip"])
    def test_outputs_are_input_values_so_fp16_needs_no_rounding(self, op):
        assert op in _EXACT


class TestBatchNorm:
    def test_matches_keras_inference(self):
        import keras

        rng = np.random.default_rng(0)
        gamma, beta, mean = (rng.normal(size=4).astype(np.float32) for _ in range(3))
        variance = rng.uniform(0.5, 2.0, 4).astype(np.float32)
        layer = keras.layers.BatchNormalization(epsilon=1e-3)
        layer.build((1, 3, 5, 4))
        layer.set_weights([gamma, beta, mean, variance])
        x = rng.normal(size=(1, 3, 5, 4)).astype(np.float32)
        expected = np.asarray(layer(x, training=False)).transpose(0, 3, 1, 2)
        (y,) = _OPS["batch_norm"](x=x.transpose(0, 3, 1, 2), mean=mean, variance=variance, gamma=gamma, beta=beta,
                                  epsilon=np.float32(1e-3))
        np.testing.assert_allclose(y, expected, atol=1e-5)


class TestGroupedConv:
    def test_depthwise_same_padding_on_an_odd_size(self):
        """A 5x5 stride-2 depthwise ``conv`` (groups = channels) on 7x9: same padding 2/2 and 2/2."""
        rng = np.random.default_rng(0)
        x = rng.normal(size=(1, 3, 7, 9)).astype(np.float32)
        w = rng.normal(size=(3, 1, 5, 5)).astype(np.float32)
        (y,) = _OPS["conv"](x=x, weight=w, strides=np.array([2, 2]), pad_type="same", groups=np.int32(3))
        assert y.shape == (1, 3, 4, 5)
        padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
        np.testing.assert_allclose(y[0, 1, 1, 2], (padded[0, 1, 2:7, 4:9] * w[1, 0]).sum(), rtol=1e-5)

    def test_add_broadcasts(self):
        (y,) = _OPS["add"](x=np.ones((1, 2, 3, 3), np.float32), y=np.array([[[[1.0]], [[2.0]]]], np.float32))
        np.testing.assert_array_equal(y[0, :, 0, 0], [2.0, 3.0])


class TestUpsampling:
    def test_tile_as_nearest_upsampling_converts(self):
        x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
        (y,) = _OPS["tile"](x=x, reps=np.array([1, 2, 1]))
        np.testing.assert_array_equal(y, np.concatenate([x, x], axis=1))
