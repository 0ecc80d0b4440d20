"""What a run of a Core ML model returns, and how an RGB image becomes its image input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verify.model_info import ImageInput

__all__ = ["Intermediate", "RuntimeResult", "UnsupportedOperationError", "image_tensor"]


class UnsupportedOperationError(ValueError):
    """The reference runtime met a layer or op it does not implement (named in the message)."""


@dataclass(frozen=True)
class Intermediate:
    """One value computed inside a model: the layer/op that made it, its type and the array."""

    name: str
    op_type: str
    value: np.ndarray


@dataclass
class RuntimeResult:
    """The outputs of one prediction.

    ``outputs`` maps each model output name to its value: an ndarray, a string (class label) or
    a ``{label: probability}`` dict. ``intermediates`` holds every layer/op output in execution
    order when they were asked for (the first one is the preprocessed image input).
    """

    outputs: dict[str, Any]
    intermediates: list[Intermediate] = field(default_factory=list)


def image_tensor(rgb: np.ndarray, image_input: ImageInput) -> np.ndarray:
    """Arrange RGB pixels as the Core ML image input: ``(1, 3, H, W)`` float32 in the input's colour order.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 ndarray
        Already at the input's size.

    Raises
    ------
    TypeError
        If ``rgb`` is not uint8.
    ValueError
        If its shape is not the input's ``(height, width, 3)`` or the input is not RGB/BGR.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise TypeError(f"rgb must be uint8 0-255 pixels. Received dtype: {rgb.dtype}")
    expected = (image_input.height, image_input.width, 3)
    if rgb.shape != expected:
        raise ValueError(
            f"rgb must have the shape of image input {image_input.name!r}, {expected}. Received: {rgb.shape}"
        )
    if image_input.color_layout == "BGR":
        rgb = rgb[..., ::-1]
    elif image_input.color_layout != "RGB":
        raise ValueError(f"image input {image_input.name!r} has colour layout {image_input.color_layout}; "
                         "the reference runtime runs RGB and BGR inputs only.")
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None].astype(np.float32))
