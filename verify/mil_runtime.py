"""The reference runtime of a ``.mlpackage`` ML Program: its MIL ops executed in numpy.

The program comes from :func:`verify.model_info.read_model_info` (coremltools' milproto
loader, weights included). Ops run in program order; the image preprocessing is part of the
program (``image__scaled__``/``image__biased__``). When an op's output type is fp16, the result
is rounded to float16 after the op (values are kept as float32 holding float16 numbers), which
emulates an FP16 program on a float32 machine. An op this runtime does not implement is an
:class:`~verify.runtime_result.UnsupportedOperationError` naming it, raised before any run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from verify import kernels
from verify.model_info import ModelInfo
from verify.runtime_result import Intermediate, RuntimeResult, UnsupportedOperationError, image_tensor

__all__ = ["MilRuntime"]

log = logging.getLogger(__name__)


# Ops whose outputs are some of their inputs' values: fp16 inputs give fp16 outputs, no rounding needed.
_EXACT = frozenset({"relu", "relu6", "clip", "max_pool", "transpose", "reshape", "squeeze", "expand_dims", "concat", "identity",
                    "maximum", "minimum", "reduce_max"})


class MilRuntime:
    """Execute an ML Program Core ML model on RGB images.

    Parameters
    ----------
    info : ModelInfo
        From :func:`verify.model_info.read_model_info` of a ``.mlpackage``.
    emulate_fp16 : bool
        Round to float16 after every op whose output type is fp16 (default). With False the
        program runs in float32 throughout.

    Raises
    ------
    ValueError
        If the model is not an ML Program or has not exactly one image input.
    UnsupportedOperationError
        If the program contains an op this runtime does not implement.
    """

    def __init__(self, info: ModelInfo, *, emulate_fp16: bool = True) -> None:
        from coremltools.converters.mil.mil import types

        if info.kind != "mlprogram":
            raise ValueError(f"info must describe an ML Program model. Received kind: {info.kind!r}")
        if len(info.image_inputs) != 1:
            raise ValueError(f"{info.path}: expected one image input, found {len(info.image_inputs)}.")
        self.info = info
        self.image_input = info.image_inputs[0]
        self._function = info.program.functions["main"]
        # Constants by variable identity: const names are not unique in every loaded program.
        self._constants: dict[int, Any] = {}
        self._steps = []
        for op in self._function.operations:
            if op.op_type == "const":
                continue
            handler = _OPS.get(op.op_type)
            if handler is None:
                raise UnsupportedOperationError(
                    f"{info.path}: op {op.name!r} has type {op.op_type!r}, which the reference runtime does not "
                    f"implement. Implemented: {sorted(_OPS)}"
                )
            for var in op.inputs.values():
                for item in var if isinstance(var, tuple | list) else [var]:
                    if item.val is not None:
                        self._constants[id(item)] = _as_array(item.val)
            rounds = [emulate_fp16 and getattr(v, "dtype", None) == types.fp16 and op.op_type not in _EXACT
                      for v in op.outputs]
            self._steps.append((op, handler, rounds))
        self._output_names = [v.name for v in self._function.outputs]

    def run(self, rgb: np.ndarray, *, keep_intermediates: bool = False) -> RuntimeResult:
        """Predict on one ``(H, W, 3)`` uint8 RGB image at the model's input size."""
        values: dict[Any, Any] = dict(self._constants)
        x = image_tensor(rgb, self.image_input)
        values[self.image_input.name] = x
        intermediates = [Intermediate(self.image_input.name, "input", x)] if keep_intermediates else []
        for op, handler, rounds in self._steps:
            args = {name: _lookup(values, var) for name, var in op.inputs.items()}
            try:
                outputs = handler(**args)
            except UnsupportedOperationError as error:
                raise UnsupportedOperationError(f"{self.info.path}: op {op.name!r} ({op.op_type}): {error}") from None
            for var, value, round_it in zip(op.outputs, outputs, rounds, strict=True):
                if round_it:
                    value = kernels.round_fp16(value)
                values[var.name] = value
                if keep_intermediates and isinstance(value, np.ndarray):
                    intermediates.append(Intermediate(op.name, op.op_type, value))
        return RuntimeResult({name: values[name] for name in self._output_names}, intermediates)


def _as_array(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype in (np.float16, np.float64):
        return value.astype(np.float32)
    if isinstance(value, np.floating | float):
        return np.float32(value)
    return value


def _lookup(values: dict[str, Any], var: Any) -> Any:
    if isinstance(var, tuple | list):
        return [_lookup(values, v) for v in var]
    if id(var) in values:
        return values[id(var)]
    if var.name in values:
        return values[var.name]
    raise UnsupportedOperationError(f"value {var.name!r} is used before it is computed")


# --- ops: keyword arguments as in the MIL op, a list of outputs back -----------------------------
def _conv(x, weight, strides=(1, 1), pad_type="valid", pad=(0, 0, 0, 0), dilations=(1, 1), groups=1, bias=None):
    kernel = weight.shape[2:]
    if len(kernel) != 2:
        raise UnsupportedOperationError(f"only 2-D convolution is implemented, weight shape {weight.shape}")
    padding = kernels.resolve_padding(str(pad_type), x.shape[2:], kernel, strides, dilations, pad)
    return [kernels.conv2d(x, weight, bias, strides=strides, dilations=dilations, padding=padding, groups=int(groups))]


def _pool(kind: str):
    def run(x, kernel_sizes, strides, pad_type="valid", pad=(0, 0, 0, 0), ceil_mode=False,
            exclude_padding_from_average=True):
        if len(kernel_sizes) != 2:
            raise UnsupportedOperationError("only 2-D pooling is implemented")
        padding = kernels.resolve_padding(str(pad_type), x.shape[2:], kernel_sizes, strides, (1, 1), pad)
        return [kernels.pool2d(x, kind=kind, kernel=kernel_sizes, strides=strides, padding=padding,
                               exclude_padding=bool(exclude_padding_from_average), ceil_mode=bool(ceil_mode))]

    return run


def _reduce(function: Callable[..., np.ndarray]):
    def run(x, axes=None, keep_dims=False):
        axis = None if axes is None else tuple(int(a) for a in np.atleast_1d(axes))
        return [np.asarray(function(x, axis=axis, keepdims=bool(keep_dims)), np.float32)]

    return run


def _cast(x, dtype):
    targets = {"fp16": np.float32, "fp32": np.float32, "fp64": np.float32, "int32": np.int32,
               "int16": np.int32, "bool": np.bool_}
    if str(dtype) not in targets:
        raise UnsupportedOperationError(f"cast to {dtype!r} is not implemented")
    value = np.asarray(x)
    if str(dtype) in ("int32", "int16") and np.issubdtype(value.dtype, np.floating):
        value = np.trunc(value)
    return [value.astype(targets[str(dtype)])]


def _squeeze(x, axes=None):
    return [np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(int(a) for a in np.atleast_1d(axes)))]


def _concat(values, axis, interleave=False):
    if interleave:
        raise UnsupportedOperationError("concat with interleave=True is not implemented")
    return [np.concatenate([np.asarray(v) for v in values], axis=int(axis))]


def _classify(probabilities, classes):
    probabilities = np.asarray(probabilities, np.float32).reshape(-1)
    labels = [str(c) for c in classes]
    if len(labels) != probabilities.size:
        raise UnsupportedOperationError(f"classify got {probabilities.size} probabilities for {len(labels)} classes")
    return [labels[int(np.argmax(probabilities))], dict(zip(labels, (float(p) for p in probabilities), strict=True))]


def _matmul(x, y, transpose_x=False, transpose_y=False):
    x = np.swapaxes(x, -1, -2) if transpose_x else x
    y = np.swapaxes(y, -1, -2) if transpose_y else y
    return [np.matmul(x, y).astype(np.float32)]


def _linear(x, weight, bias=None):
    y = x @ np.asarray(weight, np.float32).T
    return [(y + bias if bias is not None else y).astype(np.float32)]


def _batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + epsilon)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return [y.astype(np.float32)]


def _affine_dequantize(quantized_data, zero_point, scale, axis):
    """iOS16 ``constexpr_affine_dequantize``: ``(q - zero_point) * scale`` along ``axis``."""
    q = np.asarray(quantized_data, np.float32)
    shape = [1] * q.ndim
    axis = int(axis) % q.ndim

    def along(value):
        value = np.asarray(value, np.float32)
        if value.ndim == 0 or value.size == 1:
            return value.reshape(())
        shape[axis] = value.size
        return value.reshape(shape)

    return [((q - along(zero_point)) * along(scale)).astype(np.float32)]


def _blockwise_shift_scale(data, scale, offset=None):
    """iOS18 ``constexpr_blockwise_shift_scale``: ``(data - offset) * scale``, scale/offset per block."""
    data = np.asarray(data, np.float32)
    scale = np.asarray(scale, np.float32)

    def expand(value):
        for axis, (n, m) in enumerate(zip(data.shape, value.shape, strict=True)):
            value = np.repeat(value, n // m, axis=axis)
        return value

    shifted = data - expand(np.asarray(offset, np.float32)) if offset is not None else data
    return [(shifted * expand(scale)).astype(np.float32)]


def _elementwise(function: Callable[..., Any]):
    return lambda x, y: [np.asarray(function(x, y))]


_OPS: dict[str, Callable[..., list[Any]]] = {
    "conv": _conv,
    "relu": lambda x: [np.maximum(x, np.float32(0))],
    "relu6": lambda x: [np.clip(x, np.float32(0), np.float32(6))],
    "sigmoid": lambda x: [kernels.sigmoid(x)],
    "tanh": lambda x: [np.tanh(x).astype(np.float32)],
    "exp": lambda x: [np.exp(x).astype(np.float32)],
    "exp2": lambda x: [np.exp2(x).astype(np.float32)],
    "log": lambda x, epsilon=1e-45: [np.log(x + np.float32(epsilon)).astype(np.float32)],
    "sqrt": lambda x: [np.sqrt(x).astype(np.float32)],
    "rsqrt": lambda x, epsilon=1e-12: [(1 / np.sqrt(x + np.float32(epsilon))).astype(np.float32)],
    "inverse": lambda x, epsilon=1e-4: [(1 / (x + np.float32(epsilon))).astype(np.float32)],
    "abs": lambda x: [np.abs(x)],
    "square": lambda x: [(x * x).astype(np.float32)],
    "pow": _elementwise(np.power),
    "leaky_relu": lambda x, alpha=0.01: [np.where(x >= 0, x, x * np.float32(alpha)).astype(np.float32)],
    "clip": lambda x, alpha, beta: [np.clip(x, alpha, beta).astype(np.float32)],
    "max_pool": _pool("max"),
    "avg_pool": _pool("avg"),
    "add": _elementwise(np.add),
    "sub": _elementwise(np.subtract),
    "mul": _elementwise(np.multiply),
    "real_div": _elementwise(np.divide),
    "maximum": _elementwise(np.maximum),
    "minimum": _elementwise(np.minimum),
    "transpose": lambda x, perm: [np.ascontiguousarray(np.transpose(x, tuple(int(p) for p in perm)))],
    "reshape": lambda x, shape: [np.reshape(x, tuple(int(s) for s in shape))],
    "squeeze": _squeeze,
    "expand_dims": lambda x, axes: [np.expand_dims(x, tuple(int(a) for a in np.atleast_1d(axes)))],
    "concat": _concat,
    "tile": lambda x, reps: [np.tile(x, tuple(int(r) for r in np.atleast_1d(reps)))],
    "reduce_mean": _reduce(np.mean),
    "reduce_max": _reduce(np.max),
    "reduce_sum": _reduce(np.sum),
    "reduce_log_sum_exp": _reduce(lambda x, axis, keepdims: kernels.log_sum_exp(x, axis, keepdims)),
    "softmax": lambda x, axis=-1: [kernels.softmax(x, axis=int(axis))],
    "cast": _cast,
    "identity": lambda x: [x],
    "linear": _linear,
    "matmul": _matmul,
    "batch_norm": _batch_norm,
    "classify": _classify,
    "constexpr_affine_dequantize": _affine_dequantize,
    "constexpr_blockwise_shift_scale": _blockwise_shift_scale,
    "constexpr_cast": lambda source_val, output_dtype: _cast(source_val, output_dtype),
}
