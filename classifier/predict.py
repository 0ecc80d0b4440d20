"""Run a trained model on RGB images: class probabilities, labels and upsampled class maps.

:func:`predict` takes images as numpy arrays (any size; each is resized with
``Preprocessing.resize`` and mapped with ``Preprocessing.apply``, the same two steps training
and Core ML use), runs the Keras model in batches and returns a :class:`Predictions`. Reading
files (EXIF orientation, HEIC) is :class:`PredictWork`'s, which ``boxstrap predict`` runs over
photos here or on Ray (:mod:`groundwork.photo_map`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from classifier.photo_work import PhotoWork
from classifier.trained_model import TrainedModel

__all__ = ["PredictWork", "Predictions", "predict", "upsample_class_maps"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Predictions:
    """What the model says about N images.

    Attributes
    ----------
    probabilities : (N, C) float32 ndarray
        Softmax output per image, columns in ``class_labels`` order.
    labels : tuple of N str
        The most probable class per image.
    class_labels : tuple of C str
        The model's labels in output order.
    class_maps : (N, H, W, C) float32 ndarray or None
        The class convolution's output (one map per class, before pooling), upsampled
        bilinearly to the network input size (H, W); None if not requested.
    """

    probabilities: np.ndarray = field(repr=False)
    labels: tuple[str, ...]
    class_labels: tuple[str, ...]
    class_maps: np.ndarray | None = field(default=None, repr=False)

    @property
    def indices(self) -> np.ndarray:
        """(N,) int ndarray: index of the most probable class per image."""
        return np.argmax(self.probabilities, axis=1)


def predict(
    trained: TrainedModel,
    images: Sequence[np.ndarray] | np.ndarray,
    *,
    batch_size: int = 8,
    class_maps: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Predictions:
    """Classify RGB images with a trained model.

    Parameters
    ----------
    trained : TrainedModel
        From :func:`classifier.trained_model.load_trained_model`.
    images : sequence of (H, W, 3) uint8 ndarrays, or (N, H, W, 3) uint8 ndarray
        RGB images, upright, any size (each is resized to the model's input size).
    batch_size : int
        Images per forward pass, >= 1.
    class_maps : bool
        Also return the class maps upsampled to the input size.
    progress : callable, optional
        Called with the number of images done after each batch (e.g. ``tqdm.update``).

    Returns
    -------
    Predictions

    Raises
    ------
    TypeError
        If ``trained`` is not a TrainedModel or an image is not a uint8 array.
    ValueError
        If ``images`` is empty, an image is not (H, W, 3), or ``batch_size`` < 1.

    Examples
    --------
    >>> result = predict(trained, [photo])          # doctest: +SKIP
    >>> result.labels[0], result.probabilities[0]   # doctest: +SKIP
    ('ten', array([0.03, 0.97], dtype=float32))
    """
    if not isinstance(trained, TrainedModel):
        raise TypeError(f"trained must be a TrainedModel (see load_trained_model). Received: "
                        f"{type(trained).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1. Received: {batch_size!r}")
    images = list(images)
    if not images:
        raise ValueError("images must hold at least one image. Received: an empty sequence")
    for index, image in enumerate(images):
        _check_image(image, index)
    pre = trained.preprocessing
    start = time.perf_counter()
    probabilities, maps = [], []
    for first in range(0, len(images), batch_size):
        batch = images[first:first + batch_size]
        x = np.stack([pre.apply(pre.resize(image)) for image in batch])
        outputs = _run(trained.model, x)
        probabilities.append(np.asarray(outputs["probabilities"], np.float32))
        if class_maps:
            maps.append(upsample_class_maps(np.asarray(outputs["class_map"], np.float32), pre.input_size))
        if progress is not None:
            progress(len(batch))
    probs = np.concatenate(probabilities)
    log.debug("predicted %d images in %.2f s", len(images), time.perf_counter() - start)
    labels = tuple(trained.labels[i] for i in np.argmax(probs, axis=1))
    return Predictions(probabilities=probs, labels=labels, class_labels=trained.labels,
                       class_maps=np.concatenate(maps) if class_maps else None)


class PredictWork(PhotoWork):
    """:func:`predict` as a :class:`classifier.photo_work.PhotoWork`: per photo ``(probabilities,
    heatmap)``, the heatmap (the predicted class's map at the input size) only with ``heatmaps``;
    the photo itself too with ``images``."""

    def __init__(self, trained: TrainedModel, *, heatmaps: bool = False, images: bool = False) -> None:
        super().__init__(trained.directory, trained.model_sha256, loaded=trained)
        self.heatmaps, self.images = heatmaps, images

    def load(self, directory):
        from classifier.trained_model import load_trained_model

        return load_trained_model(directory)

    def run(self, model: TrainedModel, images: list[np.ndarray], items) -> list[tuple]:
        result = predict(model, images, batch_size=len(images), class_maps=self.heatmaps)
        out = []
        for i, index in enumerate(result.indices):
            heatmap = result.class_maps[i, :, :, int(index)] if self.heatmaps else None
            out.append((result.probabilities[i], heatmap, images[i] if self.images else None))
        return out


def upsample_class_maps(class_maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize class maps bilinearly to ``size``.

    Parameters
    ----------
    class_maps : (N, h, w, C) ndarray
    size : (height, width)

    Returns
    -------
    (N, height, width, C) float32 ndarray
        Pixel centres aligned (OpenCV's ``INTER_LINEAR``), so each map cell covers its patch.
    """
    class_maps = np.asarray(class_maps, np.float32)
    if class_maps.ndim != 4:
        raise ValueError(f"class_maps must be (N, h, w, C). Received shape: {class_maps.shape}")
    height, width = size
    out = np.empty((class_maps.shape[0], height, width, class_maps.shape[-1]), np.float32)
    for n, maps in enumerate(class_maps):
        for c in range(maps.shape[-1]):
            out[n, :, :, c] = cv2.resize(maps[:, :, c], (width, height), interpolation=cv2.INTER_LINEAR)
    return out


def _run(model, x: np.ndarray) -> dict[str, np.ndarray]:
    outputs = model.predict_on_batch(x)
    if isinstance(outputs, dict):
        return outputs
    names = list(getattr(model, "output_names", None) or [t.name for t in model.outputs])
    return dict(zip(names, outputs, strict=True))


def _check_image(image: np.ndarray, index: int) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise TypeError(f"images[{index}] must be a uint8 RGB ndarray. Received: {kind}")
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"images[{index}] must be (H, W, 3) RGB. Received shape: {image.shape}")
