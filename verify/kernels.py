"""Numpy kernels shared by the reference runtimes: convolution, pooling, reductions, softmax.

Tensors are channels-first, ``(N, C, H, W)``, as in Core ML. Every function is pure: arrays in,
a new float32 array out. The convolution is im2col + one (batched, for grouped and depthwise
convolutions) matrix product, so numpy's BLAS does the work.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

__all__ = ["conv2d", "log_sum_exp", "pool2d", "resolve_padding", "round_fp16", "same_padding", "sigmoid", "softmax"]


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Padding ``(before, after)`` of TensorFlow's and Core ML's ``same`` mode (extra at the end).

    >>> same_padding(32, 3, 1)
    (1, 1)
    >>> same_padding(32, 2, 2)
    (0, 0)
    """
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    pad_type: str,
    spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pad: Sequence[int] = (0, 0, 0, 0),
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Return ``((top, bottom), (left, right))`` for ``pad_type`` in {"valid", "same", "custom"}."""
    if pad_type == "valid":
        return (0, 0), (0, 0)
    if pad_type == "same":
        return tuple(same_padding(spatial[i], kernel[i], strides[i], dilations[i]) for i in range(2))
    if pad_type == "same_lower":
        pads = [same_padding(spatial[i], kernel[i], strides[i], dilations[i]) for i in range(2)]
        return tuple((after, before) for before, after in pads)
    if pad_type == "custom":
        pad = [int(p) for p in pad]
        return (pad[0], pad[1]), (pad[2], pad[3])
    raise ValueError(f"pad_type must be 'valid', 'same', 'same_lower' or 'custom'. Received: {pad_type!r}")


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    strides: Sequence[int] = (1, 1),
    dilations: Sequence[int] = (1, 1),
    padding: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0)),
    groups: int = 1,
) -> np.ndarray:
    """2-D convolution (cross-correlation, as in Core ML and Keras) by im2col + matmul.

    Grouped convolutions (``groups > 1``; depthwise: ``groups == C_in``, ``C_out`` a multiple of
    it) run as one batched product over the groups. ``padding`` may be asymmetric (TensorFlow's
    ``same`` puts the odd pixel at the bottom/right, :func:`same_padding`).

    Parameters
    ----------
    x : (N, C_in, H, W) ndarray
    weight : (C_out, C_in / groups, kH, kW) ndarray
    bias : (C_out,) ndarray or None
    strides, dilations : (2,) ints
    padding : ((top, bottom), (left, right))
    groups : int

    Returns
    -------
    (N, C_out, H_out, W_out) float32 ndarray
    """
    x = np.asarray(x, np.float32)
    weight = np.asarray(weight, np.float32)
    n, c_in, _, _ = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    if c_per_group * groups != c_in:
        raise ValueError(
            f"conv2d: weight expects {c_per_group * groups} input channels ({groups} groups), input has {c_in}."
        )
    if c_out % groups:
        raise ValueError(f"conv2d: {c_out} output channels do not split into {groups} groups.")
    (pt, pb), (pl, pr) = padding
    sh, sw = (int(s) for s in strides)
    dh, dw = (int(d) for d in dilations)
    if kh == kw == 1 and (pt or pb or pl or pr):
        x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
        pt = pb = pl = pr = 0
    height, width = x.shape[2:]
    h_out = (height + pt + pb - (kh - 1) * dh - 1) // sh + 1
    w_out = (width + pl + pr - (kw - 1) * dw - 1) // sw + 1
    out_per_group = c_out // groups
    # Every group at once: one im2col over all input channels (channel-major, so each group's rows
    # are contiguous), then one batched product (groups, out/group, in/group*kh*kw) x (groups,
    # in/group*kh*kw, pixels). A depthwise convolution is groups == channels; no loop over groups.
    wg = weight.reshape(groups, out_per_group, c_per_group * kh * kw)
    out = np.empty((n, c_out, h_out, w_out), np.float32)
    for b in range(n):
        if kh == kw == 1 and sh == sw == 1:
            cols = x[b].reshape(groups, c_per_group, h_out * w_out)
        else:
            cols = _scratch(c_in * kh * kw * h_out * w_out).reshape(c_in, kh, kw, h_out, w_out)
            for i in range(kh):
                rows = _valid_range(i * dh - pt, sh, height, h_out)
                for j in range(kw):
                    columns = _valid_range(j * dw - pl, sw, width, w_out)
                    _fill(cols[:, i, j], x[b], rows, columns, sh, sw)
            cols = cols.reshape(groups, c_per_group * kh * kw, h_out * w_out)
        target = out[b].reshape(groups, out_per_group, h_out * w_out)
        np.matmul(wg, cols, out=target)  # straight into the output, no temporary
    if bias is not None:
        out += np.asarray(bias, np.float32).reshape(1, -1, 1, 1)
    return out


def _valid_range(offset: int, stride: int, size: int, out: int) -> tuple[int, int, int]:
    """Output positions ``[lo, hi)`` whose input ``k * stride + offset`` lies inside ``[0, size)``, and
    the input position of ``lo``. Positions outside read the zero padding."""
    lo = min(out, 0 if offset >= 0 else (-offset + stride - 1) // stride)
    hi = min(out, (size - 1 - offset) // stride + 1) if size - 1 - offset >= 0 else 0
    return lo, max(lo, hi), lo * stride + offset


def _fill(target: np.ndarray, x: np.ndarray, rows, columns, sh: int, sw: int) -> None:
    """Copy the input window seen by one kernel tap into its im2col slice; zeros where it is padding."""
    (r_lo, r_hi, r_in), (c_lo, c_hi, c_in) = rows, columns
    if r_lo or r_hi < target.shape[1] or c_lo or c_hi < target.shape[2]:
        target[:, :r_lo] = 0
        target[:, r_hi:] = 0
        target[:, r_lo:r_hi, :c_lo] = 0
        target[:, r_lo:r_hi, c_hi:] = 0
    if r_hi > r_lo and c_hi > c_lo:
        target[:, r_lo:r_hi, c_lo:c_hi] = x[:, r_in:r_in + (r_hi - r_lo - 1) * sh + 1:sh,
                                            c_in:c_in + (c_hi - c_lo - 1) * sw + 1:sw]


_WORKSPACE = threading.local()


def _scratch(size: int) -> np.ndarray:
    """A reusable float32 buffer of ``size`` elements, one per thread.

    im2col matrices are large (115 MB for VGG16's first block at 224x224); allocating a fresh
    one per convolution costs page faults every time, reusing one does not.
    """
    buffer = getattr(_WORKSPACE, "buffer", None)
    if buffer is None or buffer.size < size:
        buffer = np.empty(size, np.float32)
        _WORKSPACE.buffer = buffer
    return buffer[:size]


def pool2d(
    x: np.ndarray,
    *,
    kind: str,
    kernel: Sequence[int],
    strides: Sequence[int],
    padding: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0)),
    exclude_padding: bool = True,
    ceil_mode: bool = False,
) -> np.ndarray:
    """Max or average pooling over the last two axes of ``(N, C, H, W)``.

    ``exclude_padding`` makes an average count only real pixels (Core ML's default for
    ``same`` padding, like TensorFlow). ``ceil_mode`` keeps a last partial window.
    """
    if kind not in ("max", "avg"):
        raise ValueError(f"kind must be 'max' or 'avg'. Received: {kind!r}")
    x = np.asarray(x, np.float32)
    kh, kw = (int(k) for k in kernel)
    sh, sw = (int(s) for s in strides)
    (pt, pb), (pl, pr) = padding
    h, w = x.shape[-2:]
    if ceil_mode:
        pb += (-(h + pt + pb - kh)) % sh
        pr += (-(w + pl + pr - kw)) % sw
    if (kh, kw) == (sh, sw) and not (pt or pb or pl or pr) and h % kh == 0 and w % kw == 0:
        # Non-overlapping windows that tile the image (VGG's 2x2/2 pooling): one strided view per
        # window position, combined element-wise (much faster than a reduction over window axes).
        views = [x[..., i::kh, j::kw] for i in range(kh) for j in range(kw)]
        result = views[0].copy()
        for view in views[1:]:
            if kind == "max":
                np.maximum(result, view, out=result)
            else:
                result += view
        return result if kind == "max" else result / np.float32(kh * kw)
    fill = -np.inf if kind == "max" else 0.0
    pads = ((0, 0),) * (x.ndim - 2) + ((pt, pb), (pl, pr))
    padded = np.pad(x, pads, constant_values=fill) if (pt or pb or pl or pr) else x
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(-2, -1))[..., ::sh, ::sw, :, :]
    if kind == "max":
        return windows.max(axis=(-2, -1)).astype(np.float32)
    total = windows.sum(axis=(-2, -1), dtype=np.float32)
    if exclude_padding and (pt or pb or pl or pr):
        ones = np.pad(np.ones((h, w), np.float32), ((pt, pb), (pl, pr)))
        counts = np.lib.stride_tricks.sliding_window_view(ones, (kh, kw))[::sh, ::sw].sum(axis=(-2, -1))
        return (total / counts).astype(np.float32)
    return (total / np.float32(kh * kw)).astype(np.float32)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``, float32."""
    x = np.asarray(x, np.float32)
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return (shifted / shifted.sum(axis=axis, keepdims=True)).astype(np.float32)


def log_sum_exp(x: np.ndarray, axis: Sequence[int] | int | None, keepdims: bool) -> np.ndarray:
    """``log(sum(exp(x)))`` over ``axis``, stable, float32."""
    x = np.asarray(x, np.float32)
    peak = x.max(axis=axis, keepdims=True)
    out = np.log(np.exp(x - peak).sum(axis=axis, keepdims=True)) + peak
    if not keepdims:
        out = np.squeeze(out, axis=axis)
    return out.astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, float32, without overflow warnings."""
    x = np.asarray(x, np.float32)
    return (0.5 * (np.tanh(0.5 * x) + 1.0)).astype(np.float32)


def round_fp16(x: np.ndarray) -> np.ndarray:
    """Round float values to the nearest float16 and return them as float32 (FP16 emulation).

    Same numbers as ``x.astype(np.float16).astype(np.float32)`` (round half to even, float16
    subnormals, overflow to inf), about three times faster: values in float16's normal range
    are rounded by clearing the 13 low mantissa bits of their float32 representation; only the
    rare others go through numpy's float16 conversion.

    >>> round_fp16(np.array([1.0001, 65519.0, 1e-6], np.float32)).tolist()
    [1.0, 65504.0, 1.0132789611816406e-06]
    """
    x = np.ascontiguousarray(x, np.float32)
    bits = x.view(np.uint32)
    magnitude = bits & np.uint32(0x7FFFFFFF)
    rounded = (bits + (np.uint32(0xFFF) + ((bits >> np.uint32(13)) & np.uint32(1)))) & np.uint32(0xFFFFE000)
    # Outside [2**-14, 65504 + half an ulp): zero is exact already; subnormals, overflow, inf, nan are not.
    special = (magnitude - np.uint32(0x38800000)) > np.uint32(0x477FEFFF - 0x38800000)
    special &= magnitude != 0
    result = rounded.view(np.float32)
    if special.any():
        with np.errstate(over="ignore"):  # overflow to inf is what float16 does
            result[special] = x[special].astype(np.float16).astype(np.float32)
    return result
