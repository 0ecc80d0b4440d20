"""NeuralNetwork layers the tiny exports do not contain, checked against numpy on hand-built specs."""

import numpy as np
import pytest

from verify.nn_runtime import _LAYERS, _Params
from verify.runtime_result import UnsupportedOperationError


def _layer(kind, **fields):
    from coremltools.proto import NeuralNetwork_pb2

    layer = NeuralNetwork_pb2.NeuralNetworkLayer()
    params = getattr(layer, kind)
    for name, value in fields.items():
        if name == "weights":
            params.weights.floatValue.extend(np.asarray(value, np.float32).reshape(-1))
        elif name == "bias":
            params.bias.floatValue.extend(np.asarray(value, np.float32).reshape(-1))
        else:
            setattr(params, name, value)
    return _Params(params)


class TestBatchedMatmul:
    def test_weights_are_stored_transposed(self):
        w = np.arange(6, dtype=np.float32).reshape(3, 2)  # (C_in, C_out)
        params = _layer("batchedMatmul", weightMatrixFirstDimension=3, weightMatrixSecondDimension=2,
                        weights=w.T, hasBias=True, bias=[1.0, -1.0])
        x = np.array([[1.0, 2.0, 3.0]], np.float32)
        np.testing.assert_allclose(_LAYERS["batchedMatmul"](params, [x])[0], x @ w + [1.0, -1.0])

    def test_two_inputs(self):
        a, b = np.ones((2, 3), np.float32), np.ones((2, 3), np.float32)
        params = _layer("batchedMatmul", transposeB=True)
        np.testing.assert_allclose(_LAYERS["batchedMatmul"](params, [a, b])[0], np.full((2, 2), 3.0))


class TestUnary:
    @pytest.mark.parametrize("kind,expected", [(0, np.sqrt), (4, np.exp), (5, np.log), (6, np.abs)])
    def test_functions_after_scale_and_shift(self, kind, expected):
        x = np.array([0.5, 1.0, 4.0], np.float32)
        params = _layer("unary", type=kind, scale=2.0, shift=1.0)
        np.testing.assert_allclose(_LAYERS["unary"](params, [x])[0], expected(2 * x + 1), rtol=1e-6)

    def test_inner_product(self):
        w = np.arange(6, dtype=np.float32).reshape(2, 3)  # (C_out, C_in)
        params = _layer("innerProduct", inputChannels=3, outputChannels=2, weights=w, hasBias=False)
        x = np.ones((1, 3, 1, 1), np.float32)
        np.testing.assert_allclose(_LAYERS["innerProduct"](params, [x])[0].reshape(-1), w.sum(axis=1))

    def test_unknown_activation_is_named(self):
        params = _layer("activation")
        params._message.parametricSoftplus.SetInParent()
        with pytest.raises(UnsupportedOperationError, match="activation 'parametricSoftplus' is not implemented"):
            _LAYERS["activation"](params, [np.zeros(1, np.float32)])
