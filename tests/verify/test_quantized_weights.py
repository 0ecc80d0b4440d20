"""Dequantization of 8-bit weights (NeuralNetwork WeightParams and ML Program constexpr ops)."""

import numpy as np
import pytest

from verify.mil_runtime import _affine_dequantize, _blockwise_shift_scale
from verify.nn_runtime import _weights
from verify.runtime_result import UnsupportedOperationError


def _params(q, scale, bias, bits=8):
    from coremltools.proto import NeuralNetwork_pb2

    params = NeuralNetwork_pb2.WeightParams()
    params.rawValue = np.asarray(q, np.uint8).tobytes()
    params.quantization.numberOfBits = bits
    params.quantization.linearQuantization.scale.extend(scale)
    params.quantization.linearQuantization.bias.extend(bias)
    return params


class TestNeuralNetworkWeights:
    def test_linear_per_channel(self):
        w = _weights(_params([0, 1, 2, 3], [1.0, 0.5], [0.0, -1.0]), (2, 2))
        np.testing.assert_allclose(w, [[0, 1], [0, 0.5]])

    def test_other_bit_widths_are_named(self):
        with pytest.raises(UnsupportedOperationError, match="4-bit quantized weights"):
            _weights(_params([0], [1.0], [0.0], bits=4))


class TestMilConstexpr:
    def test_affine_dequantize_along_axis(self):
        (w,) = _affine_dequantize(np.array([[2, 4], [6, 8]], np.int8), np.array([0, 2], np.int8),
                                  np.array([1.0, 0.5], np.float32), 0)
        np.testing.assert_allclose(w, [[2, 4], [2, 3]])

    def test_blockwise_shift_scale(self):
        (w,) = _blockwise_shift_scale(np.array([[1, 2, 3, 4]], np.int8), np.array([[1.0, 2.0]], np.float32),
                                      np.array([[0, 1]], np.int8))
        np.testing.assert_allclose(w, [[1, 2, 4, 6]])
