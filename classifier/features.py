"""Backbone features computed once and cached on disk, so training the upper layers takes seconds.

The frozen lower part of the network (``image`` -> a boundary of the backbone spec) runs once over every
image, for a few views per training image (view 0 as is, the others augmented with
:func:`datasets.tf_input.augment_rgb`, seeded so the same seed gives the same views). The results
are stored as float16 ``.npy`` files under a folder named by a key of everything they depend on
(backbone, weights file, boundary layer, input size, preprocessing, images, views, augmentation, seed), so
a second run, or a resumed one, reads them back instead of recomputing. Extraction writes chunks
as it goes: an interrupted run resumes at the last finished chunk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.atomic import atomic_open

log = logging.getLogger(__name__)

CHUNK = 64


def cache_key(parts: dict[str, Any]) -> str:
    """A short stable hex key of a JSON-able dict (what a cached array depends on).

    Examples
    --------
    >>> cache_key({"a": 1}) == cache_key({"a": 1})
    True
    """
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def extract_features(
    lower,
    images: np.ndarray,
    preprocess: Callable[[np.ndarray], np.ndarray],
    *,
    augmentation=None,
    seed: int = 0,
    view: int = 0,
    batch_size: int = 16,
    chunk_dir: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Run ``lower`` over ``images`` (one view each) and return the features as float16.

    Parameters
    ----------
    lower : keras.Model
        The frozen lower part (:func:`classifier.model.split_model`).
    images : (N, H, W, 3) uint8 ndarray
        RGB at the model's input size.
    preprocess : callable
        uint8 RGB batch -> network input (``Preprocessing.apply``).
    augmentation : datasets.tf_input.Augmentation or None
        ``None`` for the images as they are.
    seed, view : int
        Choose the augmented view (ignored without augmentation).
    batch_size : int
    chunk_dir : path or None
        Keep finished chunks of :data:`CHUNK` images here and reuse them (resume).
    progress : callable or None
        Called with the number of images done after each batch.

    Returns
    -------
    (N, h, w, c) float16 ndarray

    Raises
    ------
    ValueError
        If ``images`` is not (N, H, W, 3) uint8 with N >= 1.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(f"images must be a non-empty (N, H, W, 3) uint8 array. "
                         f"Received: shape {images.shape}, dtype {images.dtype}")
    chunk_dir = Path(chunk_dir) if chunk_dir is not None else None
    parts = []
    for start in range(0, len(images), CHUNK):
        path = chunk_dir / f"{start // CHUNK:05d}.npy" if chunk_dir is not None else None
        if path is not None and path.is_file():
            parts.append(np.load(path))
            if progress:
                progress(len(parts[-1]))
            continue
        chunk = images[start:start + CHUNK]
        if augmentation is not None:
            chunk = np.stack(list(_views(chunk, augmentation, seed, view, start)))
        out = []
        for b in range(0, len(chunk), batch_size):
            x = preprocess(chunk[b:b + batch_size])
            out.append(np.asarray(lower(x, training=False)).astype(np.float16))
            if progress:
                progress(len(x))
        features = np.concatenate(out)
        if path is not None:
            with atomic_open(path) as handle:
                np.save(handle, features)
        parts.append(features)
    return np.concatenate(parts)


def _views(chunk, augmentation, seed, view, start):
    # The seed of image i of the whole array is the same whatever chunk it falls in.
    augment = _augmenter(augmentation)
    for i, image in enumerate(chunk):
        yield augment(image, np.array([seed, view * 1_000_003 + start + i], np.int64))


_AUGMENTERS: dict = {}


def _augmenter(augmentation):
    """A traced (fast) uint8 -> uint8 version of :func:`datasets.tf_input.augment_rgb`."""
    if augmentation not in _AUGMENTERS:
        import tensorflow as tf

        from datasets.tf_input import augment_rgb

        @tf.function(reduce_retracing=True)
        def augment(image, seed):
            out = augment_rgb(tf.cast(image, tf.float32), seed, augmentation)
            return tf.cast(tf.round(out), tf.uint8)

        _AUGMENTERS[augmentation] = lambda image, seed: augment(image, seed).numpy()
    return _AUGMENTERS[augmentation]


class FeatureCache:
    """Cached arrays under ``directory/key/``: ``get``/``put`` by name, chunk folders for resume."""

    def __init__(self, directory: str | os.PathLike, key: str, description: dict[str, Any]):
        self.path = Path(directory) / key
        self.path.mkdir(parents=True, exist_ok=True)
        info = self.path / "key.json"
        if not info.is_file():
            with atomic_open(info) as handle:
                handle.write(json.dumps(description, indent=2, sort_keys=True, default=str).encode())

    def get(self, name: str) -> np.ndarray | None:
        path = self.path / f"{name}.npy"
        return np.load(path) if path.is_file() else None

    def put(self, name: str, array: np.ndarray) -> None:
        with atomic_open(self.path / f"{name}.npy") as handle:
            np.save(handle, array)
        shutil.rmtree(self.chunk_dir(name), ignore_errors=True)

    def chunk_dir(self, name: str) -> Path:
        path = self.path / f"{name}.chunks"
        path.mkdir(exist_ok=True)
        return path
