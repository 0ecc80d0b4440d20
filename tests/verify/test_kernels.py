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

    def test_output_channels_must_split_into_groups(self):
        with pytest.raises(ValueError, match="5 output channels do not split into 2 groups"):
            kernels.conv2d(np.zeros((1, 4, 4, 4)), np.zeros((5, 2, 3, 3)), groups=2)

    def test_channel_mismatch_is_an_error(self):
        with pytest.raises(ValueError, match="expects 3 input channels"):
            kernels.conv2d(np.zeros((1, 2, 4, 4)), np.zeros((1, 3, 3, 3)))


def _naive_conv(x, w, strides, padding, groups):
    """Direct definition of a grouped convolution, one output value at a time (tiny arrays only)."""
    (pt, pb), (pl, pr) = padding
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    c_out, c_per_group, kh, kw = w.shape
    out_per_group = c_out // groups
    h_out = (xp.shape[2] - kh) // strides[0] + 1
    w_out = (xp.shape[3] - kw) // strides[1] + 1
    y = np.zeros((x.shape[0], c_out, h_out, w_out))
    for o in range(c_out):
        g = o // out_per_group
        for i in range(h_out):
            for j in range(w_out):
                window = xp[:, g * c_per_group:(g + 1) * c_per_group,
                            i * strides[0]:i * strides[0] + kh, j * strides[1]:j * strides[1] + kw]
                y[:, o, i, j] = (window * w[o]).sum(axis=(1, 2, 3))
    return y


class TestGroupedConv2d:
    """Depthwise and grouped convolutions (EfficientNet-Lite's), including TensorFlow's asymmetric
    ``same`` padding on odd and even sizes."""

    @pytest.mark.parametrize("size", [(9, 11), (8, 10), (7, 6)])
    @pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
    @pytest.mark.parametrize("multiplier", [1, 2])
    def test_depthwise_matches_tensorflow(self, size, kernel, stride, multiplier):
        import tensorflow as tf

        rng = np.random.default_rng(0)
        channels = 6
        x = rng.normal(size=(2, channels, *size)).astype(np.float32)
        w_tf = rng.normal(size=(kernel, kernel, channels, multiplier)).astype(np.float32)  # (kh, kw, C, M)
        # Core ML's depthwise weight: (C * M, 1, kh, kw), output channel c * M + m reads input channel c.
        w = w_tf.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, kernel, kernel)
        pads = kernels.resolve_padding("same", size, (kernel, kernel), (stride, stride), (1, 1))
        ours = kernels.conv2d(x, w, strides=(stride, stride), padding=pads, groups=channels)
        theirs = tf.nn.depthwise_conv2d(x.transpose(0, 2, 3, 1), w_tf, (1, stride, stride, 1), "SAME")
        np.testing.assert_allclose(ours, theirs.numpy().transpose(0, 3, 1, 2), atol=1e-4)

    @pytest.mark.parametrize("groups,c_in,c_out", [(2, 4, 6), (3, 6, 3), (4, 4, 4), (4, 4, 8)])
    @pytest.mark.parametrize("strides", [(1, 1), (2, 2), (2, 1)])
    def test_grouped_matches_the_definition(self, groups, c_in, c_out, strides):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(2, c_in, 7, 8)).astype(np.float32)
        w = rng.normal(size=(c_out, c_in // groups, 3, 3)).astype(np.float32)
        b = rng.normal(size=c_out).astype(np.float32)
        pads = kernels.resolve_padding("same", (7, 8), (3, 3), strides, (1, 1))
        ours = kernels.conv2d(x, w, b, strides=strides, padding=pads, groups=groups)
        expected = _naive_conv(x, w, strides, pads, groups) + b.reshape(1, -1, 1, 1)
        np.testing.assert_allclose(ours, expected, atol=1e-4)

    def test_depthwise_1x1_is_a_per_channel_scale(self):
        x = np.random.default_rng(2).normal(size=(1, 3, 4, 5)).astype(np.float32)
        w = np.array([2.0, -1.0, 0.5], np.float32).reshape(3, 1, 1, 1)
        np.testing.assert_allclose(kernels.conv2d(x, w, groups=3), x * w.reshape(1, 3, 1, 1), rtol=1e-6)

    def test_asymmetric_same_padding_puts_the_odd_pixel_last(self):
        # A 5x5 stride-2 window over 9 pixels pads 2/2, over 8 pixels 1/2; over 7 with stride 1, 2/2.
        assert kernels.same_padding(9, 5, 2) == (2, 2)
        assert kernels.same_padding(8, 5, 2) == (1, 2)
        assert kernels.same_padding(8, 3, 2) == (0, 1)
        x = np.zeros((1, 1, 4, 4), np.float32)
        x[0, 0, 0, 0] = 1.0  # an impulse at the top left
        w = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
        pads = kernels.resolve_padding("same", (4, 4), (3, 3), (2, 2), (1, 1))
        y = kernels.conv2d(x, w, strides=(2, 2), padding=pads)
        # Padding (0, 1): output (0, 0) sees the impulse through tap (0, 0), not tap (1, 1).
        assert pads == ((0, 1), (0, 1)) and y[0, 0, 0, 0] == 0.0
        lower = kernels.resolve_padding("same_lower", (4, 4), (3, 3), (2, 2), (1, 1))
        assert lower == ((1, 0), (1, 0))
        assert kernels.conv2d(x, w, strides=(2, 2), padding=lower)[0, 0, 0, 0] == 4.0


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
