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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifier.photo_work import PhotoWork, Skipped
from groundwork.atomic import atomic_open
from groundwork.photo_map import RayOptions, photo_map

__all__ = ["CHUNK", "FeatureCache", "cache_key", "extract_features", "extract_features_on_ray"]

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
    parts = []
    for start in range(0, len(images), CHUNK):
        path = _chunk_path(chunk_dir, start)
        if path is not None and path.is_file():
            parts.append(np.load(path))
            if progress:
                progress(len(parts[-1]))
            continue
        features = _chunk_features(lower, images[start:start + CHUNK], preprocess, augmentation=augmentation,
                                   seed=seed, view=view, start=start, batch_size=batch_size, progress=progress)
        if path is not None:
            with atomic_open(path) as handle:
                np.save(handle, features)
        parts.append(features)
    return np.concatenate(parts)


def _chunk_path(chunk_dir: str | os.PathLike | None, start: int) -> Path | None:
    """Where the chunk of :data:`CHUNK` images from ``start`` is kept (None without a chunk folder)."""
    return None if chunk_dir is None else Path(chunk_dir) / f"{start // CHUNK:05d}.npy"


def _chunk_features(lower, chunk: np.ndarray, preprocess, *, augmentation, seed: int, view: int, start: int,
                    batch_size: int, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """One chunk's features (images ``start``, ``start + 1``, ... of the whole array, which seed their
    augmented views), in batches of ``batch_size``; here and on a Ray worker alike."""
    if augmentation is not None:
        chunk = np.stack(list(_views(chunk, augmentation, seed, view, start)))
    out = []
    for b in range(0, len(chunk), batch_size):
        x = preprocess(chunk[b:b + batch_size])
        # predict_on_batch runs a traced function: half the time of calling the model eagerly.
        out.append(np.asarray(lower.predict_on_batch(x)).astype(np.float16))
        if progress:
            progress(len(x))
    return np.concatenate(out)


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


@dataclass(frozen=True)
class _Photo:
    index: int  # in the whole split: seeds its augmented view
    path: Path


@dataclass(frozen=True)
class _Lower:
    model: Any
    model_sha256: str


class _FeatureWork(PhotoWork):
    """:func:`extract_features` on a chunk of prepared photos, on a Ray worker: the lower part is
    read from the ``.keras`` file the driver saved (safe mode), checked by its SHA-256."""

    def __init__(self, lower_path: Path, lower: _Lower, preprocessing, augmentation, seed: int, view: int,
                 batch_size: int) -> None:
        super().__init__(lower_path, lower.model_sha256, loaded=lower)
        self.preprocessing, self.augmentation = preprocessing, augmentation
        self.seed, self.view, self.batch_size = seed, view, batch_size

    def load(self, path: Path) -> _Lower:
        import keras

        from groundwork.files import file_sha256

        return _Lower(keras.models.load_model(path, safe_mode=True, compile=False), file_sha256(path))

    def run(self, lower: _Lower, images: list[np.ndarray], items: list[_Photo]) -> list[np.ndarray]:
        # A chunk's photos are consecutive in the split (extract_features_on_ray asks for whole chunks).
        pre = self.preprocessing
        return list(_chunk_features(lower.model, np.stack([pre.resize(image) for image in images]), pre.apply,
                                    augmentation=self.augmentation, seed=self.seed, view=self.view,
                                    start=items[0].index, batch_size=self.batch_size))


def extract_features_on_ray(lower, paths: Sequence[str | os.PathLike], preprocessing, *, ray: RayOptions,
                            lower_path: str | os.PathLike, augmentation=None, seed: int = 0, view: int = 0,
                            batch_size: int = 16, chunk_dir: str | os.PathLike | None = None,
                            progress: bool = True) -> np.ndarray:
    """:func:`extract_features` over the prepared photos at ``paths``, the chunks on Ray workers.

    The same chunks of :data:`CHUNK` photos, batches and augmentation seeds as
    :func:`extract_features` on the decoded split; ``lower`` is saved to ``lower_path`` (a path
    every worker sees) for the workers to load. Finished chunks are kept in ``chunk_dir`` as they
    come back and reused (resume).

    Raises
    ------
    ValueError
        If a photo cannot be read (a prepared dataset's photos all could be when it was made).
    """
    from groundwork.files import file_sha256

    lower_path = Path(lower_path)
    partial = lower_path.with_name(f".{lower_path.stem}.partial.keras")  # Keras wants the .keras ending
    lower.save(partial)
    os.replace(partial, lower_path)
    work = _FeatureWork(lower_path, _Lower(lower, file_sha256(lower_path)), preprocessing, augmentation, seed, view,
                        batch_size)
    starts = range(0, len(paths), CHUNK)
    kept = {start: _chunk_path(chunk_dir, start) for start in starts}
    done = {start: np.load(path) for start, path in kept.items() if path is not None and path.is_file()}
    todo = [_Photo(i, Path(paths[i])) for start in starts if start not in done
            for i in range(start, min(start + CHUNK, len(paths)))]
    rows: list[np.ndarray] = []
    for photo, result in zip(todo, photo_map(work, todo, chunk_size=CHUNK, ray=ray, progress=progress,
                                             desc="features"), strict=True):
        if isinstance(result, Skipped):
            raise ValueError(f"features: {result.reason}")
        rows.append(result)
        start = photo.index - photo.index % CHUNK
        if photo.index == min(start + CHUNK, len(paths)) - 1:
            done[start] = np.stack(rows)
            rows = []
            if kept[start] is not None:
                with atomic_open(kept[start]) as handle:
                    np.save(handle, done[start])
    return np.concatenate([done[start] for start in starts])


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
