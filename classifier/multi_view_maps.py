"""The classifier's forward pass for localizing, its class maps averaged over views of each photo.

:func:`forward` gives the probabilities, the class maps and the descriptors of the backbone's
feature layer; the class maps may be averaged over other input sizes and the mirror image.

The classifier is fully convolutional, so it also runs at input sizes other than the one it was
trained at (rebuilt with a new input, same weights); a larger input gives a finer class map.
:func:`multi_view_maps` runs it at each of ``scales`` (multiples of the input size, rounded to
the network's stride) and, with ``flip``, on the mirrored photos too, and :func:`average_maps`
(pure) resizes every view's maps to the finest grid, min-max normalises them per image and class,
and averages them; :func:`forward` uses the same machinery for the maps it returns beside the
probabilities and descriptors.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from classifier.trained_model import INPUT_NAME
from datasets.preprocessing import Preprocessing

__all__ = ["ForwardPass", "average_maps", "check_scales", "forward", "multi_view_maps"]

log = logging.getLogger(__name__)

CLASS_MAP_LAYER = "class_map"


def forward(classifier, x: np.ndarray, *, feature_layer: str, batch_size: int = 8,
            progress: Callable[[int], None] | None = None,
            scales: Sequence[float] = (1.0,), flip: bool = False,
            images: Sequence[np.ndarray] | None = None,
            preprocessing: Preprocessing | None = None, map_layer: str | None = None,
            size_multiple: int | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The classifier's probabilities, class maps and descriptors, its maps optionally multi-view.

    One pass at ``x``'s size gives the probabilities and the ``feature_layer`` descriptors. With the
    defaults (``scales=(1.0,)``, no flip) the class maps are that pass's raw maps. Otherwise the
    network (fully convolutional) is rebuilt at each scaled input size (``keras.models.clone_model``
    with a new input, same weights) and, with ``flip``, also run on the mirrored images; every
    view's maps are resized (bilinear) to the grid of the largest size, min-max normalised per
    image and class, and averaged.

    Parameters
    ----------
    classifier : keras.Model
        A boxstrap classifier (outputs ``probabilities``, ``class_map``).
    x : (N, H, W, 3) float32 ndarray
        Preprocessed images at the classifier's input size.
    feature_layer : str
        The layer whose output is returned as descriptors: the backbone spec's
        ``feature_layer`` (:attr:`classifier.trained_model.TrainedModel.backbone`).
    batch_size : int
        Images per pass.
    progress : callable, optional
        Called with the number of images finished (all views) after each batch.
    scales : sequence of float > 0
        Input sizes for the class maps, as multiples of ``(H, W)``, each rounded to a multiple of
        ``size_multiple``.
    flip : bool
        Also average the maps of the horizontally mirrored images.
    images : sequence of N (H_i, W_i, 3) uint8 ndarrays, optional
        The photos ``x`` was made from; required (with ``preprocessing``) when a scale is not 1,
        because the larger inputs are resized from the photos, not from ``x``.
    preprocessing : datasets.preprocessing.Preprocessing, optional
        The classifier's preprocessing (its ``input_size`` is replaced per scale).
    map_layer : str, optional
        The layer whose descriptors are returned as ``map_features`` (what the cell localizer
        reads): :attr:`classifier.trained_model.TrainedModel.map_layer`. Default ``feature_layer``.
    size_multiple : int, optional
        Scaled input sizes are rounded to multiples of it (the backbone spec's
        ``size_multiple``); default the network's stride (input size over class-map size).

    Returns
    -------
    probabilities : (N, C) float32
    class_maps : (N, h, w, C) float32
        Raw maps at ``x``'s size (defaults), else the averaged normalised maps in [0, 1] on the grid
        of the largest scale.
    features : (N, h, w, D) float16
        At ``x``'s size (what the box model reads).
    map_features : (N, h, w, D') float16
        The ``map_layer`` descriptors at ``x``'s size (what :mod:`localize.cell_localizer` reads):
        ``features`` themselves with the defaults, else averaged with those of the mirrored photo
        when ``flip``.

    Raises
    ------
    ValueError
        If ``scales`` is empty or holds a value <= 0, or a scale other than 1 is asked for without
        ``images`` and ``preprocessing``, or ``images`` has a different length than ``x``.
    TypeError
        If ``flip`` is not a bool.
    """
    scales, _ = _check_views(x, scales, flip, images, preprocessing)
    run = ForwardPass(classifier, feature_layer=feature_layer, input_size=tuple(int(v) for v in x.shape[1:3]),
                      scales=scales, flip=flip, preprocessing=preprocessing, map_layer=map_layer,
                      size_multiple=size_multiple)
    probabilities, class_maps, features, map_features = [], [], [], []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        p, m, f, mf = run(xb, None if images is None else images[start:start + len(xb)])
        probabilities.append(p)
        class_maps.append(m)
        features.append(f)
        map_features.append(mf)
        if progress is not None:
            progress(len(xb))
    return (np.concatenate(probabilities), _concatenate_maps(class_maps), np.concatenate(features),
            np.concatenate(map_features))


class ForwardPass:
    """:func:`forward` on one batch at a time, its networks built once (a worker keeps one).

    Parameters as :func:`forward`'s; ``input_size`` is ``x``'s (H, W). Calling it with a batch
    ``xb`` (and its photos, for scales other than 1) returns :func:`forward`'s four arrays for it.
    """

    def __init__(self, classifier, *, feature_layer: str, input_size: tuple[int, int],
                 scales: Sequence[float] = (1.0,), flip: bool = False,
                 preprocessing: Preprocessing | None = None, map_layer: str | None = None,
                 size_multiple: int | None = None) -> None:
        import keras

        self.scales = check_scales(scales)
        self.flip = flip
        self.plain = self.scales == (1.0,) and not flip
        map_layer = feature_layer if map_layer is None else map_layer
        self.separate = map_layer != feature_layer
        outputs = [*classifier.outputs, classifier.get_layer(feature_layer).output]
        if self.separate:
            outputs.append(classifier.get_layer(map_layer).output)
        self.model = keras.Model(classifier.input, outputs)
        self.mirror = keras.Model(classifier.input, [classifier.get_layer(CLASS_MAP_LAYER).output,
                                                     classifier.get_layer(map_layer).output])
        self.views = _Views(classifier, tuple(input_size), self.scales, flip, preprocessing,
                            size_multiple=size_multiple)

    def __call__(self, xb: np.ndarray, images: Sequence[np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        out = [np.asarray(v) for v in self.model.predict_on_batch(xb)]
        p, m, f = out[:3]
        descriptors = out[3] if self.separate else f
        features = f.astype(np.float16)
        if self.plain:
            return p.astype(np.float32), m.astype(np.float32), features, descriptors.astype(np.float16)
        mirrored = None
        if self.flip:
            mirror_maps, mirror_descriptors = (np.asarray(v) for v in
                                               self.mirror.predict_on_batch(np.ascontiguousarray(xb[:, :, ::-1])))
            descriptors = (descriptors.astype(np.float32) + mirror_descriptors[:, :, ::-1]) / 2
            mirrored = mirror_maps[:, :, ::-1]
        maps = self.views.average(xb, m, images, mirrored=mirrored)
        return p.astype(np.float32), maps, features, np.asarray(descriptors).astype(np.float16)


def multi_view_maps(classifier, x: np.ndarray, *, scales: Sequence[float] = (1.0,), flip: bool = False,
                    images: Sequence[np.ndarray] | None = None, preprocessing: Preprocessing | None = None,
                    batch_size: int = 8, size_multiple: int | None = None) -> np.ndarray:
    """Only the class maps of :func:`forward` (any classifier with a
    ``class_map`` layer; no descriptor layer needed). Parameters, result and errors as
    :func:`forward`'s."""
    import keras

    scales, plain = _check_views(x, scales, flip, images, preprocessing)
    base_net = keras.Model(classifier.input, classifier.get_layer(CLASS_MAP_LAYER).output)
    views = _Views(classifier, tuple(int(v) for v in x.shape[1:3]), scales, flip, preprocessing,
                   size_multiple=size_multiple)
    class_maps = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        m = np.asarray(base_net.predict_on_batch(xb), np.float32)
        class_maps.append(m if plain else views.average(xb, m, None if images is None else images[start:start + len(xb)]))
    return _concatenate_maps(class_maps)


def _check_views(x, scales, flip, images, preprocessing) -> tuple[tuple[float, ...], bool]:
    scales = check_scales(scales)
    if not isinstance(flip, bool):
        raise TypeError(f"flip must be a bool. Received: {flip!r}")
    if any(s != 1.0 for s in scales) and (images is None or preprocessing is None):
        raise ValueError(f"scales {scales} need the photos: pass images and preprocessing. "
                         f"Received: images={'None' if images is None else len(images)}, "
                         f"preprocessing={preprocessing!r}")
    if images is not None and len(images) != len(x):
        raise ValueError(f"images must have one photo per row of x ({len(x)}). Received: {len(images)}")
    return scales, scales == (1.0,) and not flip


class _Views:
    """The classifier's class maps of one batch over scales and flips, averaged (:func:`average_maps`)."""

    def __init__(self, classifier, base: tuple[int, int], scales: tuple[float, ...], flip: bool,
                 preprocessing: Preprocessing | None, *, size_multiple: int | None = None) -> None:
        import keras

        self.classifier, self.base, self.scales, self.flip, self.preprocessing = (
            classifier, base, scales, flip, preprocessing)
        self.size_multiple = size_multiple
        self.base_net = keras.Model(classifier.input, classifier.get_layer(CLASS_MAP_LAYER).output)
        self.nets: dict[tuple[int, int], object] = {}

    def average(self, xb: np.ndarray, base_maps: np.ndarray, images: Sequence[np.ndarray] | None, *,
                mirrored: np.ndarray | None = None) -> np.ndarray:
        """The averaged maps of a batch (``mirrored``: the base size's mirrored maps, when already run)."""
        stride = self.size_multiple or max(1, self.base[0] // base_maps.shape[1])
        views = []
        for scale in self.scales:
            size = _scaled_size(self.base, scale, stride)
            if size == self.base:
                xs, net, maps = xb, self.base_net, base_maps
            else:
                if size not in self.nets:
                    self.nets[size] = _class_map_model(self.classifier, size)
                net = self.nets[size]
                pre = dataclasses.replace(self.preprocessing, input_size=size)
                xs = np.stack([pre.apply(pre.resize(image)) for image in images]).astype(np.float32)
                maps = np.asarray(net.predict_on_batch(xs))
            views.append(maps)
            if self.flip:
                if size == self.base and mirrored is not None:
                    views.append(mirrored)
                else:
                    views.append(np.asarray(net.predict_on_batch(np.ascontiguousarray(xs[:, :, ::-1])))[:, :, ::-1])
        return average_maps(views)


def _concatenate_maps(class_maps: list[np.ndarray]) -> np.ndarray:
    grid = max((cm.shape[1:3] for cm in class_maps), key=lambda hw: hw[0] * hw[1])
    return np.concatenate([cm if cm.shape[1:3] == grid else _resize_maps(cm, grid) for cm in class_maps])


def average_maps(views: Sequence[np.ndarray]) -> np.ndarray:
    """Average class maps of several views of the same images (pure).

    Parameters
    ----------
    views : sequence of (N, h_k, w_k, C) real arrays
        One map stack per view (sizes may differ).

    Returns
    -------
    (N, h, w, C) float32 ndarray
        Each view resized (bilinear) to the largest view's grid, min-max normalised per image and
        class to [0, 1] (a flat map becomes 0), then averaged.

    Raises
    ------
    ValueError
        If ``views`` is empty or the views disagree in N or C or are not 4-D.

    Examples
    --------
    >>> a = np.zeros((1, 2, 2, 1)); a[0, 0, 0, 0] = 4.0
    >>> average_maps([a, 2 * a])[0, ..., 0]
    array([[1., 0.],
           [0., 0.]], dtype=float32)
    """
    if len(views) == 0:
        raise ValueError("views is empty: average_maps needs at least one map stack.")
    stacks = [np.asarray(v, np.float32) for v in views]
    if any(v.ndim != 4 or v.shape[0] != stacks[0].shape[0] or v.shape[3] != stacks[0].shape[3] for v in stacks):
        raise ValueError(f"views must be (N, h, w, C) stacks with the same N and C. "
                         f"Received shapes: {[v.shape for v in stacks]}")
    grid = max((v.shape[1:3] for v in stacks), key=lambda hw: hw[0] * hw[1])
    total = np.zeros((stacks[0].shape[0], *grid, stacks[0].shape[3]), np.float32)
    for v in stacks:
        v = v if v.shape[1:3] == grid else _resize_maps(v, grid)
        lo = v.min(axis=(1, 2), keepdims=True)
        span = v.max(axis=(1, 2), keepdims=True) - lo
        total += np.where(span > 0, (v - lo) / np.where(span > 0, span, 1.0), 0.0)
    return total / len(stacks)


def check_scales(scales: object) -> tuple[float, ...]:
    """Return ``scales`` as a non-empty tuple of floats > 0, or raise ValueError naming it."""
    try:
        values = tuple(float(s) for s in scales)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"scales must be a sequence of numbers > 0. Received: {scales!r}") from None
    if not values or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"scales must be a non-empty sequence of numbers > 0. Received: {scales!r}")
    return values


def _scaled_size(base: tuple[int, int], scale: float, stride: int) -> tuple[int, int]:
    return tuple(max(stride, int(round(v * scale / stride)) * stride) for v in base)  # type: ignore[return-value]


def _resize_maps(maps: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (N, h, w, C) maps to ``grid`` (height, width)."""
    out = np.empty((maps.shape[0], *grid, maps.shape[3]), np.float32)
    for i, m in enumerate(maps):
        r = cv2.resize(np.ascontiguousarray(m, np.float32), (grid[1], grid[0]), interpolation=cv2.INTER_LINEAR)
        out[i] = r.reshape(*grid, maps.shape[3])
    return out


def _class_map_model(classifier, size: tuple[int, int]):
    """The classifier rebuilt at input ``size`` (same weights), outputting its class maps."""
    import keras

    image = keras.Input((*size, 3), name=INPUT_NAME)
    try:
        clone = keras.models.clone_model(classifier, input_tensors=image)
    except (ValueError, TypeError) as error:
        raise ValueError(f"the classifier cannot be rebuilt at input size {size}: {error}") from None
    clone.set_weights(classifier.get_weights())
    log.info("class maps also at input size %s", size)
    return keras.Model(clone.input, clone.get_layer(CLASS_MAP_LAYER).output)
