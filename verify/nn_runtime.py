"""The reference runtime of a ``.mlmodel`` NeuralNetwork: the spec's layers executed in numpy.

It reads the layers, their weights and the image preprocessing (``scaler``) from the spec and
runs them in order. A layer type it does not implement is an
:class:`~verify.runtime_result.UnsupportedOperationError` naming the layer, never a skip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from verify import kernels
from verify.model_info import ModelInfo, neural_network
from verify.runtime_result import Intermediate, RuntimeResult, UnsupportedOperationError, image_tensor

__all__ = ["NeuralNetworkRuntime"]

log = logging.getLogger(__name__)


class NeuralNetworkRuntime:
    """Execute a NeuralNetwork (classifier) Core ML model on RGB images.

    Parameters
    ----------
    info : ModelInfo
        From :func:`verify.model_info.read_model_info` of a ``.mlmodel``.

    Raises
    ------
    ValueError
        If the model is not a NeuralNetwork, or has no image input.
    UnsupportedOperationError
        If it contains a layer type this runtime does not implement (checked up front).
    """

    def __init__(self, info: ModelInfo) -> None:
        if info.kind != "neuralnetwork":
            raise ValueError(f"info must describe a NeuralNetwork model. Received kind: {info.kind!r}")
        if len(info.image_inputs) != 1:
            raise ValueError(f"{info.path}: expected one image input, found {len(info.image_inputs)}.")
        self.info = info
        self.image_input = info.image_inputs[0]
        self._nn = neural_network(info.spec)
        self._layers = []
        for layer in self._nn.layers:
            kind = layer.WhichOneof("layer")
            handler = _LAYERS.get(kind)
            if handler is None:
                raise UnsupportedOperationError(
                    f"{info.path}: layer {layer.name!r} has type {kind!r}, which the reference runtime does not "
                    f"implement. Implemented: {sorted(_LAYERS)}"
                )
            self._layers.append((layer, kind, handler, _Params(getattr(layer, kind))))

    def run(self, rgb: np.ndarray, *, keep_intermediates: bool = False) -> RuntimeResult:
        """Predict on one ``(H, W, 3)`` uint8 RGB image at the model's input size."""
        image = self.image_input
        x = image_tensor(rgb, image) * np.float32(image.scale) + np.asarray(image.bias, np.float32).reshape(1, 3, 1, 1)
        values: dict[str, np.ndarray] = {image.name: x}
        intermediates = [Intermediate(image.name, "preprocessing", x)] if keep_intermediates else []
        for layer, kind, handler, params in self._layers:
            inputs = [values[name] for name in layer.input]
            try:
                outputs = handler(params, inputs)
            except UnsupportedOperationError as error:
                raise UnsupportedOperationError(f"{self.info.path}: layer {layer.name!r}: {error}") from None
            for name, value in zip(layer.output, outputs, strict=True):
                values[name] = value
                if keep_intermediates:
                    intermediates.append(Intermediate(name, kind, value))
        return RuntimeResult(self._outputs(values), intermediates)

    def _outputs(self, values: dict[str, np.ndarray]) -> dict[str, Any]:
        info = self.info
        outputs: dict[str, Any] = {}
        probabilities_name = info.probabilities_output
        for name in info.output_names:
            if name == info.predicted_feature and info.labels is not None:
                continue
            if name == probabilities_name and info.labels is not None:
                source = self._nn.labelProbabilityLayerName or name
                probabilities = values[source].reshape(-1)
                outputs[name] = dict(zip(info.labels, (float(p) for p in probabilities), strict=True))
                outputs[info.predicted_feature] = info.labels[int(np.argmax(probabilities))]
            else:
                outputs[name] = values[name]
        return outputs


# --- weights ---------------------------------------------------------------------------------
class _Params:
    """A layer's parameters plus a cache of its decoded weights (decoded once, not per image)."""

    def __init__(self, message: Any) -> None:
        self._message = message
        self.cache: dict[str, np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._message, name)

    def weights(self, field: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        key = f"{field}{shape}"
        if key not in self.cache:
            self.cache[key] = _weights(getattr(self._message, field), shape)
        return self.cache[key]


def _weights(params: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    if params.HasField("quantization"):
        array = _dequantize(params)
    elif len(params.floatValue):
        array = np.asarray(params.floatValue, np.float32)
    elif len(params.float16Value):
        array = np.frombuffer(params.float16Value, np.float16).astype(np.float32)
    elif len(params.rawValue):
        array = np.frombuffer(params.rawValue, np.float32).copy()
    else:
        array = np.zeros(0, np.float32)
    return array.reshape(shape) if shape is not None else array


def _dequantize(params: Any) -> np.ndarray:
    """8-bit linear or look-up-table quantized weights back to float32 (per output channel)."""
    quantization = params.quantization
    if quantization.numberOfBits != 8:
        raise UnsupportedOperationError(f"{quantization.numberOfBits}-bit quantized weights are not implemented")
    q = np.frombuffer(params.rawValue, np.uint8)
    kind = quantization.WhichOneof("QuantizationType")
    if kind == "linearQuantization":
        scale = np.asarray(quantization.linearQuantization.scale, np.float32)
        bias = np.asarray(quantization.linearQuantization.bias, np.float32)
        rows = q.reshape(scale.size, -1) if scale.size > 1 else q.reshape(1, -1)
        return (rows * scale.reshape(-1, 1) + bias.reshape(-1, 1)).reshape(-1).astype(np.float32)
    if kind == "lookupTableQuantization":
        return np.asarray(quantization.lookupTableQuantization.floatValue, np.float32)[q]
    raise UnsupportedOperationError(f"weight quantization {kind!r} is not implemented")


# --- layers: each takes (params, inputs) and returns a list of outputs -------------------------
def _convolution(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    if p.isDeconvolution:
        raise UnsupportedOperationError("deconvolution is not implemented")
    x = inputs[0]
    kernel = tuple(p.kernelSize) or (3, 3)
    strides = tuple(p.stride) or (1, 1)
    dilations = tuple(p.dilationFactor) or (1, 1)
    groups = max(int(p.nGroups), 1)
    weight = p.weights("weights", (p.outputChannels, p.kernelChannels, *kernel))
    bias = p.weights("bias") if p.hasBias else None
    spatial = x.shape[-2:]
    if p.WhichOneof("ConvolutionPaddingType") == "same":
        mode = "same_lower" if p.same.asymmetryMode == 1 else "same"
        padding = kernels.resolve_padding(mode, spatial, kernel, strides, dilations)
    else:
        amounts = p.valid.paddingAmounts.borderAmounts
        padding = tuple((b.startEdgeSize, b.endEdgeSize) for b in amounts) if len(amounts) else ((0, 0), (0, 0))
    batch_shape = x.shape[:-3]
    x4 = x.reshape((-1, *x.shape[-3:]))
    y = kernels.conv2d(x4, weight, bias, strides=strides, dilations=dilations, padding=padding, groups=groups)
    return [y.reshape((*batch_shape, *y.shape[1:]))]


def _activation(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    x = inputs[0]
    kind = p.WhichOneof("NonlinearityType")
    if kind == "ReLU":
        y = np.maximum(x, 0)
    elif kind == "leakyReLU":
        y = np.where(x >= 0, x, x * p.leakyReLU.alpha)
    elif kind == "linear":
        y = x * p.linear.alpha + p.linear.beta
    elif kind == "sigmoid":
        y = kernels.sigmoid(x)
    elif kind == "tanh":
        y = np.tanh(x)
    elif kind == "scaledTanh":
        y = p.scaledTanh.alpha * np.tanh(p.scaledTanh.beta * x)
    elif kind == "sigmoidHard":
        y = np.clip(p.sigmoidHard.alpha * x + p.sigmoidHard.beta, 0, 1)
    elif kind == "ELU":
        y = np.where(x >= 0, x, p.ELU.alpha * (np.exp(np.minimum(x, 0)) - 1))
    elif kind == "softsign":
        y = x / (1 + np.abs(x))
    elif kind == "softplus":
        y = np.logaddexp(0, x)
    elif kind == "thresholdedReLU":
        y = np.where(x > p.thresholdedReLU.alpha, x, 0)
    else:
        raise UnsupportedOperationError(f"activation {kind!r} is not implemented")
    return [np.asarray(y, np.float32)]


def _pooling(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    x = inputs[0]
    kinds = {0: "max", 1: "avg"}
    if p.type not in kinds:
        raise UnsupportedOperationError(f"pooling type {p.type} (L2) is not implemented")
    kind = kinds[p.type]
    if p.globalPooling:
        reduce = np.max if kind == "max" else np.mean
        return [reduce(x, axis=(-2, -1), keepdims=True).astype(np.float32)]
    kernel = tuple(p.kernelSize) or (3, 3)
    strides = tuple(p.stride) or (1, 1)
    padding_type = p.WhichOneof("PoolingPaddingType")
    ceil_mode = False
    if padding_type == "same":
        mode = "same_lower" if p.same.asymmetryMode == 1 else "same"
        padding = kernels.resolve_padding(mode, x.shape[-2:], kernel, strides, (1, 1))
    else:
        amounts = getattr(p, padding_type).paddingAmounts.borderAmounts
        padding = tuple((b.startEdgeSize, b.endEdgeSize) for b in amounts) if len(amounts) else ((0, 0), (0, 0))
        ceil_mode = padding_type == "includeLastPixel"
    return [kernels.pool2d(x, kind=kind, kernel=kernel, strides=strides, padding=padding,
                           exclude_padding=p.avgPoolExcludePadding, ceil_mode=ceil_mode)]


def _reduce(function: Callable[..., np.ndarray]) -> Callable[[Any, list[np.ndarray]], list[np.ndarray]]:
    def run(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
        x = inputs[0]
        axes = None if p.reduceAll else tuple(int(a) for a in p.axes)
        return [np.asarray(function(x, axis=axes, keepdims=p.keepDims), np.float32)]

    return run


def _batched_matmul(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    a = np.swapaxes(inputs[0], -1, -2) if p.transposeA else inputs[0]
    if len(inputs) == 2:
        b = np.swapaxes(inputs[1], -1, -2) if p.transposeB else inputs[1]
        return [np.matmul(a, b).astype(np.float32)]
    # Stored transposed, output channel first: (second, first) = (C_out, C_in).
    weight = p.weights("weights", (p.weightMatrixSecondDimension, p.weightMatrixFirstDimension))
    y = a @ weight.T
    if p.hasBias:
        y = y + p.weights("bias")
    return [np.asarray(y, np.float32)]


def _unary(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    x = inputs[0] * np.float32(p.scale if p.scale else 1.0) + np.float32(p.shift)
    eps = np.float32(p.epsilon)
    functions = {
        0: lambda: np.sqrt(x),
        1: lambda: 1 / np.sqrt(x + eps),
        2: lambda: 1 / (x + eps),
        3: lambda: np.power(x, np.float32(p.alpha)),
        4: lambda: np.exp(x),
        5: lambda: np.log(x + eps),
        6: lambda: np.abs(x),
        7: lambda: np.maximum(x, np.float32(p.alpha)),
    }
    if p.type not in functions:
        raise UnsupportedOperationError(f"unary function type {p.type} is not implemented")
    return [np.asarray(functions[p.type](), np.float32)]


def _inner_product(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    x = inputs[0]
    weight = p.weights("weights", (p.outputChannels, p.inputChannels))
    trailing = x.ndim >= 3 and x.shape[-2:] == (1, 1)
    flat = x.reshape(x.shape[:-2]) if trailing else x
    y = flat @ weight.T
    if p.hasBias:
        y = y + p.weights("bias")
    return [(y.reshape((*y.shape, 1, 1)) if trailing else y).astype(np.float32)]


def _binary(function: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    def run(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
        result = inputs[0]
        for other in inputs[1:]:
            result = function(result, other)
        if len(inputs) == 1 and hasattr(p, "alpha"):
            result = function(result, np.float32(p.alpha))
        return [np.asarray(result, np.float32)]

    return run


def _flatten(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    x = inputs[0]
    chw = x.transpose(*range(x.ndim - 3), -2, -1, -3) if p.mode == 1 else x
    return [chw.reshape((*x.shape[:-3], -1, 1, 1))]


def _load_constant_nd(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    return [p.weights("data", tuple(int(s) for s in p.shape))]


def _squeeze(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    x = inputs[0]
    return [np.squeeze(x) if p.squeezeAll else np.squeeze(x, axis=tuple(int(a) for a in p.axes))]


def _batchnorm(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    if p.computeMeanVar:
        raise UnsupportedOperationError("batchnorm with computeMeanVar is not implemented")
    gamma, beta, mean, var = (p.weights(w).reshape(-1, 1, 1) for w in ("gamma", "beta", "mean", "variance"))
    return [((inputs[0] - mean) / np.sqrt(var + p.epsilon) * gamma + beta).astype(np.float32)]


def _scale(p: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    y = inputs[0] * p.weights("scale", tuple(p.shapeScale) or None)
    if p.hasBias:
        y = y + p.weights("bias", tuple(p.shapeBias) or None)
    return [y.astype(np.float32)]


_LAYERS: dict[str, Callable[[Any, list[np.ndarray]], list[np.ndarray]]] = {
    "convolution": _convolution,
    "activation": _activation,
    "clip": lambda p, i: [np.clip(i[0], np.float32(p.minVal), np.float32(p.maxVal)).astype(np.float32)],
    "pooling": _pooling,
    "transpose": lambda p, i: [np.ascontiguousarray(i[0].transpose(tuple(p.axes)))],
    "reduceMean": _reduce(np.mean),
    "reduceMax": _reduce(np.max),
    "reduceSum": _reduce(np.sum),
    "reduceLogSumExp": _reduce(lambda x, axis, keepdims: kernels.log_sum_exp(x, axis, keepdims)),
    "softmaxND": lambda p, i: [kernels.softmax(i[0], axis=int(p.axis))],
    "softmax": lambda p, i: [kernels.softmax(i[0], axis=-3)],
    "innerProduct": _inner_product,
    "unary": _unary,
    "batchedMatmul": _batched_matmul,
    "flatten": _flatten,
    "flattenTo2D": lambda p, i: [i[0].reshape(int(np.prod(i[0].shape[:p.axis], dtype=int)), -1)],
    "reshapeStatic": lambda p, i: [i[0].reshape(tuple(int(s) for s in p.targetShape))],
    "concat": lambda p, i: [np.concatenate(i, axis=-3)],
    "concatND": lambda p, i: [np.concatenate(i, axis=int(p.axis))],
    "add": _binary(np.add),
    "multiply": _binary(np.multiply),
    "addBroadcastable": _binary(np.add),
    "multiplyBroadcastable": _binary(np.multiply),
    "subtractBroadcastable": _binary(np.subtract),
    "divideBroadcastable": _binary(np.divide),
    "minBroadcastable": _binary(np.minimum),
    "maxBroadcastable": _binary(np.maximum),
    "loadConstantND": _load_constant_nd,
    "loadConstant": _load_constant_nd,
    "squeeze": _squeeze,
    "expandDims": lambda p, i: [np.expand_dims(i[0], tuple(int(a) for a in p.axes))],
    "tile": lambda p, i: [np.tile(i[0], tuple(int(r) for r in (p.reps if len(i) == 1 else i[1])))],
    "batchnorm": _batchnorm,
    "scale": _scale,
    "bias": lambda p, i: [(i[0] + p.weights("bias", tuple(p.shape) or None)).astype(np.float32)],
}
