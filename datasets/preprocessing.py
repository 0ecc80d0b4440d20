"""The one definition of how an image becomes network input.

Training, prediction, the Core ML export (its image input's colour order, bias and
scale) and verification all read the same :class:`Preprocessing`, saved as
``preprocessing.json`` beside a trained model. Nothing else restates these numbers.

The transform, per pixel, is Core ML's own image preprocessing::

    x[c] = scale * pixel[color_order[c]] + bias[c]

where ``pixel`` is the 0-255 RGB value after the image is resized to ``input_size``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from groundwork.atomic import write_json

__all__ = ["Preprocessing"]

FILENAME = "preprocessing.json"


@dataclass(frozen=True)
class Preprocessing:
    """Input size, colour order, per-channel bias and scale of a model's image input.

    Parameters
    ----------
    input_size : (height, width)
        Size the image is resized to (bilinear, antialiased, aspect ratio not kept), in pixels.
    color_order : {"BGR", "RGB"}
        Channel order the network expects.
    bias : (3,) floats
        Added per channel *in ``color_order`` order* after scaling.
    scale : float
        Multiplies the 0-255 pixel values before the bias.

    A backbone's own preprocessing comes from its spec
    (``classifier.backbones``: ``get_backbone(name).preprocessing(input_size)``); this class
    knows no backbone and has no default for the colour order or the bias.

    Examples
    --------
    >>> p = Preprocessing((32, 64), color_order="BGR", bias=(-1.0, -2.0, -3.0), scale=0.5)
    >>> p.apply(np.full((32, 64, 3), (10, 20, 30), np.uint8))[0, 0]
    array([14.,  8.,  2.], dtype=float32)
    """

    input_size: tuple[int, int]
    color_order: Literal["BGR", "RGB"]
    bias: tuple[float, float, float]
    scale: float = 1.0

    def __post_init__(self) -> None:
        size = tuple(int(v) for v in self.input_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"input_size must be (height, width) of positive ints. Received: {self.input_size}")
        object.__setattr__(self, "input_size", size)
        if self.color_order not in ("BGR", "RGB"):
            raise ValueError(f"color_order must be 'BGR' or 'RGB'. Received: {self.color_order!r}")
        bias = tuple(float(b) for b in self.bias)
        if len(bias) != 3:
            raise ValueError(f"bias must have 3 values, one per channel. Received: {self.bias}")
        object.__setattr__(self, "bias", bias)
        if not np.isfinite(self.scale) or self.scale == 0:
            raise ValueError(f"scale must be a finite non-zero number. Received: {self.scale}")
        object.__setattr__(self, "scale", float(self.scale))

    # --- the transform -------------------------------------------------------------------
    @property
    def channel_index(self) -> tuple[int, int, int]:
        """Index into RGB of each network channel: (2, 1, 0) for BGR."""
        return (2, 1, 0) if self.color_order == "BGR" else (0, 1, 2)

    def resize(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """Return ``image`` as a ``(height, width, 3)`` uint8 RGB array at ``input_size``.

        The resampling is PIL's antialiased bilinear filter, so Keras and Core ML see the same
        pixels.
        """
        if isinstance(image, np.ndarray):
            image = Image.fromarray(_as_uint8_rgb(image))
        image = image.convert("RGB")
        height, width = self.input_size
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """Map RGB pixels (0-255, shape ``(..., H, W, 3)``) to network input, float32.

        The image must already be at ``input_size``; use :meth:`resize` first.
        """
        rgb = np.asarray(rgb)
        if rgb.shape[-1:] != (3,):
            raise ValueError(f"rgb must end in 3 channels (..., H, W, 3). Received shape: {rgb.shape}")
        x = rgb[..., list(self.channel_index)].astype(np.float32)
        return x * np.float32(self.scale) + np.asarray(self.bias, np.float32)

    # --- saving --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown preprocessing fields {unknown}. Known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``preprocessing.json`` into ``directory`` (atomically) and return its path."""
        return write_json(Path(directory) / FILENAME, self.to_dict())

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Preprocessing:
        """Read ``preprocessing.json`` from a model directory.

        Raises
        ------
        FileNotFoundError
            If the directory has no ``preprocessing.json`` (the message says what it is for).
        """
        path = Path(directory) / FILENAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: a boxstrap model directory keeps its input preprocessing there. "
                "Was this directory written by `boxstrap train`?"
            )
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: not a valid preprocessing file: {error}") from None


def _as_uint8_rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise TypeError(f"image arrays must be uint8 RGB. Received dtype: {array.dtype}")
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"image arrays must be (H, W, 3). Received shape: {array.shape}")
    return array[..., :3]
