"""Where and why a Core ML model's outputs leave its Keras model's.

:func:`locate_divergence` walks the Keras layers in order and finds, for each, the reference
runtime value it became (same shape, channels-first or -last, the closest one after the last
match, or a matching one before it: a side branch such as the multilevel head's pooled taps may
run earlier in Core ML than in Keras' layer order); the first layer with no close counterpart is
where the export diverges. A layer the converter folds into the one before it (a
``BatchNormalization`` into its convolution: Core ML then has no value for the convolution alone)
is judged together with that layer: the pair matches when the folded layer's output does.
:func:`suspect_preprocessing` tries the usual export mistakes on the Keras side (colour order
swapped, bias missing or applied twice, labels reversed) and names the one that reproduces the
Core ML outputs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from datasets.preprocessing import Preprocessing
from verify.runtime_result import Intermediate

__all__ = ["INPUT_NAME", "keras_layer_outputs", "locate_divergence", "suspect_preprocessing"]

log = logging.getLogger(__name__)

INPUT_NAME = "input (image preprocessing)"


# Differences are relative to a layer's largest magnitude, but never to less than this: a layer of
# small values computed from O(1) intermediates (log-sum-exp pooling of small class maps) carries
# the absolute rounding error of those intermediates, not one relative to its own size.
SCALE_FLOOR = 1.0

# Keras layers that coremltools folds into the layer before them (batch normalisation into the
# preceding convolution's weights and bias): the earlier layer's own output has no Core ML value.
FOLDED_INTO_PREVIOUS = frozenset({"BatchNormalization"})


def _relative_diff(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    diff = float(np.max(np.abs(reference - candidate))) if reference.size else 0.0
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    return diff / max(scale, SCALE_FLOOR), diff


def _views(value: np.ndarray) -> list[np.ndarray]:
    views = [value]
    if value.ndim == 4:
        views.append(value.transpose(0, 2, 3, 1))
    return views


def _mentions(op_name: str, layer_name: str) -> bool:
    """True when a converted op's name contains the Keras layer name as a whole path part."""
    parts = op_name.replace("/", "_").split("_")
    words = layer_name.split("_")
    return any(parts[i:i + len(words)] == words for i in range(len(parts) - len(words) + 1))


def keras_layer_outputs(model: Any, x: np.ndarray) -> list[tuple[str, str, np.ndarray]]:
    """Outputs of every top-level Keras layer for input ``x``: ``(name, class name, value)`` in order.

    The model input itself comes first, named ``INPUT_NAME``. Layers with several outputs, or
    used more than once, are left out.
    """
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    usable = []
    for layer in layers:
        try:
            output = layer.output
        except (AttributeError, ValueError):
            continue
        if isinstance(output, list | tuple | dict):
            continue
        usable.append((layer, output))
    probe = keras.Model(model.inputs, [output for _, output in usable])
    values = probe([np.asarray(x, np.float32)], training=False)
    if not isinstance(values, list | tuple):
        values = [values]
    found = [(INPUT_NAME, "Input", np.asarray(x, np.float32))]
    found += [(layer.name, type(layer).__name__, np.asarray(v)) for (layer, _), v in zip(usable, values, strict=True)]
    return found


def _closest(value: np.ndarray, name: str, intermediates: Sequence[Intermediate], indices: range):
    """(closest same-shape runtime value, last of the first run of ops named after the layer),
    each ``(relative, absolute, index, item)`` or None, among ``intermediates[indices]``."""
    best = None
    named = None
    named_done = False
    for index in indices:
        item = intermediates[index]
        for view in _views(np.asarray(item.value)):
            if view.shape != value.shape:
                continue
            relative, absolute = _relative_diff(value, view)
            if best is None or relative < best[0]:
                best = (relative, absolute, index, item)
            if _mentions(item.name, name) and not named_done:
                named = (relative, absolute, index, item)
            elif named is not None:
                named_done = True  # keep the first run of ops named after the layer
    return best, named


def locate_divergence(
    keras_outputs: Sequence[tuple[str, str, np.ndarray]],
    intermediates: Sequence[Intermediate],
    *,
    rtol: float,
) -> dict[str, Any] | None:
    """Find the first Keras layer whose output the Core ML model does not reproduce.

    Parameters
    ----------
    keras_outputs : sequence of (name, type, (1, ...) ndarray)
        From :func:`keras_layer_outputs`, in layer order.
    intermediates : sequence of Intermediate
        The reference runtime's values for the same image, in execution order.
    rtol : float
        A layer matches a runtime value when their largest absolute difference is at most
        ``rtol`` times the Keras value's largest magnitude (or ``rtol`` itself for values below
        ``SCALE_FLOOR`` = 1: an absolute tolerance for small-valued layers).

    Returns
    -------
    dict or None
        None when every layer has a match; else the diverging Keras layer, the closest runtime
        op (same shape), their differences, and the last layer that still matched. A layer
        without a counterpart that is followed by a same-shape layer of ``FOLDED_INTO_PREVIOUS``
        (a convolution and its batch normalisation) is judged by that next layer's output, as
        one: a divergence there names the first layer of the pair, with ``folded_with`` the
        second (``None`` otherwise), and ``relative_diff`` the pair's output's.
    """
    position = 0
    last_match: dict[str, Any] | None = None
    pending: tuple[str, str] | None = None  # (name, type) of a layer judged with the next one
    for index_in_keras, (name, kind, value) in enumerate(keras_outputs):
        best, named = _closest(value, name, intermediates, range(position, len(intermediates)))
        if (best is None or best[0] > rtol) and position:
            # A side branch (a pooled tap of an earlier block) may run before the last match.
            earlier, earlier_named = _closest(value, name, intermediates, range(position))
            if earlier is not None and earlier[0] <= rtol:
                last_match = {"keras_layer": name, "coreml_op": earlier[3].name, "relative_diff": earlier[0]}
                continue
            if best is None and earlier is not None:
                best, named = earlier, earlier_named
        if best is None:
            log.debug("no runtime value with the shape of Keras layer %s %s", name, value.shape)
            continue
        relative, absolute, index, item = best
        if relative > rtol:
            following = keras_outputs[index_in_keras + 1] if index_in_keras + 1 < len(keras_outputs) else None
            if (pending is None and following is not None and following[1] in FOLDED_INTO_PREVIOUS
                    and np.shape(following[2]) == value.shape):
                pending = (name, kind)
                continue
            # Name the op that computes this layer when the names say which; else the closest value.
            relative, absolute, index, item = named if named is not None else best
            first_name, first_kind = pending if pending is not None else (name, kind)
            return {
                "keras_layer": first_name,
                "keras_layer_type": first_kind,
                "folded_with": name if pending is not None else None,
                "coreml_op": item.name,
                "coreml_op_type": item.op_type,
                "shape": list(value.shape),
                "relative_diff": relative,
                "max_abs_diff": absolute,
                "rtol": rtol,
                "last_matching_layer": last_match,
            }
        last_match = {"keras_layer": name, "coreml_op": item.name, "relative_diff": relative}
        if pending is not None:
            last_match["folded"] = pending[0]
            pending = None
        position = index
    return None


def suspect_preprocessing(
    predict: Callable[[np.ndarray], np.ndarray],
    pixels: np.ndarray,
    preprocessing: Preprocessing,
    keras_probabilities: np.ndarray,
    coreml_probabilities: np.ndarray,
    *,
    atol: float,
) -> dict[str, Any] | None:
    """Name the usual export mistake that reproduces the Core ML outputs, if one does.

    Parameters
    ----------
    predict : callable
        ``(N, H, W, 3) float32 network input -> (N, C) probabilities`` of the Keras model.
    pixels : (N, H, W, 3) uint8 ndarray
    preprocessing : Preprocessing
    keras_probabilities, coreml_probabilities : (N, C) ndarray
    atol : float
        A mistake is named when its Keras outputs are within ``atol`` of Core ML's.

    Returns
    -------
    dict or None
        ``{"cause", "max_abs_diff"}`` of the best-fitting mistake, or None.
    """
    bias = np.asarray(preprocessing.bias, np.float32)
    x = preprocessing.apply(pixels)
    candidates: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("class labels reversed", lambda: np.asarray(keras_probabilities)[:, ::-1]),
        ("colour order swapped (RGB and BGR)", lambda: predict(preprocessing.apply(pixels[..., ::-1]))),
        ("bias missing (not applied)", lambda: predict(x - bias)),
        ("bias applied twice", lambda: predict(x + bias)),
    ]
    best = None
    for cause, make in candidates:
        if cause == "class labels reversed" and keras_probabilities.shape[1] < 2:
            continue
        if cause != "class labels reversed" and not np.any(bias) and "bias" in cause:
            continue
        diff = float(np.max(np.abs(make() - coreml_probabilities)))
        if diff <= atol and (best is None or diff < best["max_abs_diff"]):
            best = {"cause": cause, "max_abs_diff": diff}
    return best
