"""Reading photos as the network sees them, and random training views of them.

:func:`read_rgb` decodes an image file upright and resizes it with :meth:`Preprocessing.resize`
(the same pixels ``predict``, the Core ML export and ``verify`` see); :func:`load_split` reads a
whole split of a prepared dataset into memory that way. :func:`augment_rgb` makes a random view
of an image with stateless TensorFlow ops (so a seed gives the same view every run); training
runs it through :mod:`classifier.features`. No Keras Lambda layer is involved.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from datasets.manifest import Manifest, Record
from datasets.preprocessing import Preprocessing

__all__ = ["Augmentation", "augment_rgb", "load_split", "read_rgb"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Augmentation:
    """Random views for training. Every field at its neutral value turns that part off.

    Parameters
    ----------
    flip_horizontal, flip_vertical : bool
        Mirror with probability 0.5.
    max_rotation : float
        Largest in-plane rotation, degrees (either way).
    max_shift : float
        Largest translation, as a fraction of width/height.
    brightness, contrast, saturation, hue : float
        Colour jitter strengths (``tf.image.stateless_random_*``); contrast and saturation
        are the largest relative change, brightness in 0-255 units / 255, hue in turns.
    crop_area : (float, float)
        Random resized crop: share of the image area kept; ``(1.0, 1.0)`` turns it off.
    """

    flip_horizontal: bool = True
    flip_vertical: bool = False
    max_rotation: float = 10.0
    max_shift: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 0.02
    crop_area: tuple[float, float] = (0.6, 1.0)

    def __post_init__(self) -> None:
        low, high = self.crop_area
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_area must satisfy 0 < low <= high <= 1. Received: {self.crop_area}")
        for name in ("max_rotation", "max_shift", "brightness", "contrast", "saturation", "hue"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0. Received: {getattr(self, name)}")


def read_rgb(path: str | os.PathLike, preprocessing: Preprocessing | None = None) -> np.ndarray:
    """Read an image file as the network sees it (:func:`datasets.images.upright_srgb`: upright,
    sRGB, alpha over white), optionally resized to the network input.

    The one decode path for image files outside ``prepare``: training, ``localize``, ``verify``
    and the box model all read pixels through it. List a folder's images with
    :func:`datasets.image_files.image_files`.

    Parameters
    ----------
    path : str or PathLike
        An image file (:data:`datasets.images.IMAGE_KINDS`).
    preprocessing : Preprocessing or None
        Resize to ``preprocessing.input_size`` (:meth:`Preprocessing.resize`); ``None`` keeps
        the image's own size.

    Returns
    -------
    (H, W, 3) uint8 ndarray

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file cannot be decoded (not an image, truncated, over
        ``PIL.Image.MAX_IMAGE_PIXELS``, the limit ``prepare`` applies); the message names the file
        and the reason.
    """
    from datasets.images import DECODE_ERRORS, IMAGE_KINDS, upright_srgb  # also registers the HEIC opener

    try:
        with warnings.catch_warnings():
            # One size rule for every reader: prepare refuses what Pillow only warns about.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()  # decode now, so a truncated file fails here, named
                rgb = upright_srgb(image)
        if preprocessing is not None:
            return preprocessing.resize(rgb)
        return np.asarray(rgb, dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"Image not found: {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ValueError(f"Cannot read image {path}: too large to decode safely ({error}); resize it below "
                         f"{Image.MAX_IMAGE_PIXELS} pixels or remove it") from None
    except UnidentifiedImageError:
        raise ValueError(f"Cannot read image {path}: not a {IMAGE_KINDS} image Pillow can decode") from None
    except DECODE_ERRORS as error:
        raise ValueError(f"Cannot read image {path}: {error}") from None


def load_split(
    manifest: Manifest, split: str, preprocessing: Preprocessing
) -> tuple[np.ndarray, np.ndarray, list[Record]]:
    """Decode one split into memory.

    Returns
    -------
    images : (N, H, W, 3) uint8 ndarray
        RGB at ``preprocessing.input_size``.
    labels : (N,) int64 ndarray
        Index into ``manifest.labels``.
    records : list of Record
        The manifest records, in the same order.
    """
    records = manifest.split(split)
    height, width = preprocessing.input_size
    images = np.empty((len(records), height, width, 3), np.uint8)
    for i, record in enumerate(records):
        images[i] = read_rgb(manifest.image_path(record), preprocessing)
    labels = np.asarray([manifest.label_index(r) for r in records], np.int64)
    return images, labels, records


def augment_rgb(image, seed, augmentation: Augmentation):
    """One random view of an RGB image tensor (float32, 0-255, (H, W, 3)), same size.

    ``seed`` is a shape-(2,) int tensor; the same seed gives the same view (stateless ops).
    """
    import tensorflow as tf

    height, width = int(image.shape[0]), int(image.shape[1])
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=10)

    low, high = augmentation.crop_area
    if low < 1.0:
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            [height, width, 3],
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=seeds[0],
            min_object_covered=0.0,
            aspect_ratio_range=(0.75 * width / height, 1.33 * width / height),
            area_range=(low, high),
            use_image_if_no_bounding_boxes=True,
        )
        image = tf.slice(image, begin, size)
        image = tf.image.resize(image, (height, width), method="bilinear", antialias=True)
    if augmentation.flip_horizontal:
        image = tf.image.stateless_random_flip_left_right(image, seeds[1])
    if augmentation.flip_vertical:
        image = tf.image.stateless_random_flip_up_down(image, seeds[2])
    if augmentation.max_rotation > 0 or augmentation.max_shift > 0:
        angle = tf.random.stateless_uniform((), seeds[3], -1.0, 1.0) * (augmentation.max_rotation * math.pi / 180)
        shift = tf.random.stateless_uniform((2,), seeds[4], -1.0, 1.0) * augmentation.max_shift
        image = _rotate_shift(image, angle, shift[0] * width, shift[1] * height)
    image = image / 255.0
    if augmentation.brightness > 0:
        image = tf.image.stateless_random_brightness(image, augmentation.brightness, seeds[5])
    if augmentation.contrast > 0:
        c = augmentation.contrast
        image = tf.image.stateless_random_contrast(image, 1 - c, 1 + c, seeds[6])
    if augmentation.saturation > 0:
        s = augmentation.saturation
        image = tf.image.stateless_random_saturation(image, 1 - s, 1 + s, seeds[7])
    if augmentation.hue > 0:
        image = tf.image.stateless_random_hue(image, augmentation.hue, seeds[8])
    return tf.clip_by_value(image, 0.0, 1.0) * 255.0


def _rotate_shift(image, angle, dx, dy):
    """Rotate about the centre by ``angle`` radians and shift by (dx, dy) pixels; edges reflected."""
    import tensorflow as tf

    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    # Output pixel (x, y) samples input at A @ (x, y) + b: the inverse of rotate-then-shift.
    a0, a1 = cos, sin
    b0, b1 = -sin, cos
    x_off = cx - a0 * (cx + dx) - a1 * (cy + dy)
    y_off = cy - b0 * (cx + dx) - b1 * (cy + dy)
    transform = tf.stack([a0, a1, x_off, b0, b1, y_off, 0.0, 0.0])[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform,
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    return out[0]
