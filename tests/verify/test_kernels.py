import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from verify import kernels


def _tf_conv(x, w, strides, dilations, padding, groups=1):
    import tensorflow as tf

    y = tf.nn.conv2d(x.transpose(0, 2, 3, 1), w.transpose(2, 3, 1, 0), strides=strides,
                     dilations=dilations, padding=padding)
    return y.numpy().transpose(0, 3, 1, 2)


class TestSamePadding:
    @pytest.mark.parametrize("size,kernel,stride,expected", [(32, 3, 1, (1, 1)), (32, 2, 2, (0, 0)),
                                                             (7, 3, 2, (1, 1)), (8, 3, 2, (0, 1))])
    def test_matches_tensorflow_rule(self, size, kernel, stride, expected):
        assert kernels.same_padding(size, kernel, stride) == expected


class TestConv2d:
    @pytest.mark.parametrize("strides,dilations,padding", [((1, 1), (1, 1), "SAME"), ((2, 2), (1, 1), "SAME"),
                                                           ((1, 1), (2, 2), "SAME"), ((2, 1), (1, 1), "VALID")])
    def test_matches_tensorflow(self, strides, dilations, padding):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(1, 5, 11, 9)).astype(np.float32)
        w = rng.normal(size=(4, 5, 3, 3)).astype(np.float32)
        pads = kernels.resolve_padding(padding.lower(), x.shape[2:], (3, 3), strides, dilations)
        ours = kernels.conv2d(x, w, strides=strides, dilations=dilations, padding=pads)
        np.testing.assert_allclose(ours, _tf_conv(x, w, strides, dilations, padding), atol=1e-4)

    def test_bias_and_1x1(self):
        x = np.ones((1, 2, 3, 3), np.float32)
        w = np.full((3, 2, 1, 1), 0.5, np.float32)
        y = kernels.conv2d(x, w, np.array([1, 2, 3], np.float32))
        np.testing.assert_allclose(y[0, :, 0, 0], [2, 3, 4])

    def test_groups_are_separate_convolutions(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(1, 4, 6, 6)).astype(np.float32)
        w = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
        y = kernels.conv2d(x, w, groups=2)
        np.testing.assert_allclose(y[:, :2], kernels.conv2d(x[:, :2], w[:2]), atol=1e-5)
        np.testing.assert_allclose(y[:, 2:], kernels.conv2d(x[:, 2:], w[2:]), atol=1e-5)

    def test_channel_mismatch_is_an_error(self):
        with pytest.raises(ValueError, match="expects 3 input channels"):
            kernels.conv2d(np.zeros((1, 2, 4, 4)), np.zeros((1, 3, 3, 3)))


class TestPool2d:
    @pytest.mark.parametrize("kind", ["max", "avg"])
    @pytest.mark.parametrize("padding", ["SAME", "VALID"])
    def test_matches_tensorflow(self, kind, padding):
        import tensorflow as tf

        rng = np.random.default_rng(0)
        x = rng.normal(size=(1, 3, 7, 9)).astype(np.float32)
        pads = kernels.resolve_padding(padding.lower(), x.shape[2:], (3, 3), (2, 2), (1, 1))
        ours = kernels.pool2d(x, kind=kind, kernel=(3, 3), strides=(2, 2), padding=pads)
        pool = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
        theirs = pool(x.transpose(0, 2, 3, 1), 3, 2, padding).numpy().transpose(0, 3, 1, 2)
        np.testing.assert_allclose(ours, theirs, atol=1e-5)

    def test_ceil_mode_keeps_the_last_partial_window(self):
        x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
        assert kernels.pool2d(x, kind="max", kernel=(2, 2), strides=(2, 2), ceil_mode=True).shape == (1, 1, 3, 3)

    def test_unknown_kind_is_an_error(self):
        with pytest.raises(ValueError, match="kind must be 'max' or 'avg'"):
            kernels.pool2d(np.zeros((1, 1, 2, 2)), kind="l2", kernel=(2, 2), strides=(2, 2))


class TestSmallKernels:
    def test_softmax_sums_to_one_and_is_stable(self):
        y = kernels.softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
        np.testing.assert_allclose(y, [[0.5, 0.5], [0.25, 0.75]], rtol=1e-6)

    def test_log_sum_exp(self):
        x = np.array([[0.0, np.log(3.0)]], np.float32)
        np.testing.assert_allclose(kernels.log_sum_exp(x, axis=1, keepdims=False), [np.log(4.0)], rtol=1e-6)

    def test_round_fp16(self):
        y = kernels.round_fp16(np.array([1.0001, 65519.0], np.float32))
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, [1.0, 65504.0])

    def test_unknown_pad_type_is_an_error(self):
        with pytest.raises(ValueError, match="pad_type must be"):
            kernels.resolve_padding("full", (4, 4), (3, 3), (1, 1), (1, 1))


class TestRoundFp16:
    def test_same_numbers_as_numpy_float16(self):
        rng = np.random.default_rng(0)
        x = np.concatenate([rng.normal(0, s, 20000).astype(np.float32) for s in (1e-8, 1e-5, 1e-3, 1, 1e3, 1e5)]
                           + [np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504, 65519.99, 65520, 6.1035156e-05,
                                        5.96e-8, 2.98e-8], np.float32)])
        with np.errstate(over="ignore"):
            expected = x.astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(kernels.round_fp16(x), expected)

    def test_does_not_modify_its_input(self):
        x = np.array([1.0001], np.float32)
        kernels.round_fp16(x)
        assert x[0] == np.float32(1.0001)
