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


class TestEfficientNetLayers:
    """Layers a converted EfficientNet-Lite may contain besides what its tiny export has."""

    def test_clip(self):
        params = _layer("clip", minVal=0.0, maxVal=6.0)
        x = np.array([-1.0, 3.0, 7.5], np.float32)
        np.testing.assert_array_equal(_LAYERS["clip"](params, [x])[0], [0.0, 3.0, 6.0])

    def test_relu6_as_converted(self):
        """coremltools writes ReLU6 as ReLU, -x, max(x, -6), -x."""
        x = np.array([-2.0, 0.5, 6.0, 9.0], np.float32).reshape(1, 4, 1, 1)
        relu = _layer("activation")
        relu._message.ReLU.SetInParent()
        negate = _layer("activation")
        negate._message.linear.alpha = -1.0
        threshold = _layer("unary", type=7, alpha=-6.0)
        y = _LAYERS["activation"](relu, [x])[0]
        y = _LAYERS["activation"](negate, [y])[0]
        y = _LAYERS["unary"](threshold, [y])[0]
        y = _LAYERS["activation"](negate, [y])[0]
        np.testing.assert_array_equal(y.reshape(-1), [0.0, 0.5, 6.0, 6.0])

    def test_batchnorm_matches_keras(self):
        import keras

        rng = np.random.default_rng(0)
        gamma, beta, mean = (rng.normal(size=3).astype(np.float32) for _ in range(3))
        variance = rng.uniform(0.5, 2.0, 3).astype(np.float32)
        layer = keras.layers.BatchNormalization(epsilon=1e-3)
        layer.build((1, 4, 5, 3))
        layer.set_weights([gamma, beta, mean, variance])
        x = rng.normal(size=(1, 4, 5, 3)).astype(np.float32)
        expected = np.asarray(layer(x, training=False)).transpose(0, 3, 1, 2)
        params = _layer("batchnorm", channels=3, epsilon=1e-3)
        for name, value in (("gamma", gamma), ("beta", beta), ("mean", mean), ("variance", variance)):
            getattr(params._message, name).floatValue.extend(value)
        np.testing.assert_allclose(_LAYERS["batchnorm"](params, [x.transpose(0, 3, 1, 2)])[0], expected, atol=1e-5)

    def test_add_broadcasts(self):
        a = np.ones((1, 3, 2, 2), np.float32)
        b = np.arange(3, dtype=np.float32).reshape(1, 3, 1, 1)
        y = _LAYERS["add"](_layer("add"), [a, b])[0]
        np.testing.assert_array_equal(y[0, :, 1, 1], [1.0, 2.0, 3.0])

    @pytest.mark.parametrize("kind,function", [("minBroadcastable", np.minimum), ("maxBroadcastable", np.maximum)])
    def test_min_max_broadcast(self, kind, function):
        # ReLU(max_value=1) (the box head's clip) converts to a relu and a minBroadcastable with a constant.
        a = np.array([[-0.5, 0.5, 1.5]], np.float32)
        y = _LAYERS[kind](_layer(kind), [a, np.ones((1, 1), np.float32)])[0]
        np.testing.assert_array_equal(y, function(a, 1.0))


class TestTile:
    def test_reps_from_the_layer_or_a_second_input(self):
        from types import SimpleNamespace

        x = np.arange(4, dtype=np.float32).reshape(1, 2, 2)
        (y,) = _LAYERS["tile"](SimpleNamespace(reps=[1, 1, 3]), [x])
        np.testing.assert_array_equal(y, np.tile(x, (1, 1, 3)))
        (z,) = _LAYERS["tile"](SimpleNamespace(reps=[]), [x, np.array([2, 1, 1])])
        assert z.shape == (2, 2, 2)
