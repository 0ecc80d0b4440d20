"""The box model: the trained classifier plus a head that finds the objects' boxes.

The PSOL idea (Zhang et al., CVPR 2020): a regressor trained on noisy pseudo boxes generalises
past them. The network reuses the classifier whole (its backbone and its class head, frozen)
and adds a small box head on the backbone's feature layer (the spec's ``feature_layer``).

The default head (``head="centres"``) finds every object: each cell of the feature grid says how
likely an object's centre lies in it (its own sigmoid, so several objects give several peaks;
CenterNet, Zhou et al. 2019) and how far that object reaches from it::

    image -> backbone ... feature layer -> (classifier head) -> probabilities (N, C)
                                        -> box_scale -> box_reduce (3x3 conv)
                                             -> box_logit (1x1 conv) -> box_logits -> box_scores (sigmoid, N x K)
                                             -> box_reach (1x1 conv, sigmoid: left, top, right, bottom)
                                                -> box_reaches -> box_centres (frozen: the cells' centres)
                                                -> box_cell_edges -> box_cell_corners (frozen) -> boxes (N, K, 4)
                                        box_scores, probabilities -> box_confidence (N, K, C)

Every cell's box and its confidence per class (its centre score times the photo's class
probabilities) go to non-maximum suppression, in the exported detector and in
:mod:`detector.box_decode` alike.

The one-box head ``head="cells"`` regresses one box per photo: the average of the cells' boxes
weighted by how likely each cell is the centre (a softmax over the cells, a soft arg-max)::

    ... feature layer -> box_scale -> box_reduce (3x3 conv)
                             -> box_logit (1x1 conv) -> box_logits -> box_weights (softmax over cells)
                             -> box_reach (1x1 conv, sigmoid: left, top, right, bottom) -> box_reaches
                        box_weights -> box_centre (frozen: the cells' centres)
                        box_weights, box_reaches -> box_ltrb (weighted reach)
                        box_centre, box_ltrb -> box_edges -> box_corners (frozen) -> box (clipped to [0, 1])

Its weights are the same for every cell, so what it learns from an object in one place holds
in any other, and it needs far fewer photos than the ``"dense"`` head (``box_scale -> box_pool
-> box_reduce (1x1) -> box_flatten -> box_hidden -> box_dropout -> box``, a weight per cell),
which scored below the pseudo boxes it learned from (benchmarks/NOTES.md). Only built-in Keras
layers are used (the constant maps are frozen ``Dense`` layers), so the model loads in safe
mode and converts to Core ML without custom layers.

Boxes are ``(centre x, centre y, width, height)`` as fractions of the image, the layout Apple's
Vision framework reads from an object detector's ``coordinates`` output.

Only the box head trains (:mod:`detector.train_box_head`, on the views of :mod:`detector.box_views`,
with the losses of :mod:`detector.box_losses`); its settings are :class:`detector.box_train_config.BoxTrainConfig`.
"""

from __future__ import annotations

import weakref

import numpy as np

from detector.box_train_config import BoxTrainConfig

__all__ = ["CENTRES_OUTPUT_NAMES", "EDGES_TO_BOX", "OUTPUT_NAMES", "build_box_model", "cell_centres", "cell_parts",
           "feature_scale"]

OUTPUT_NAMES = ("probabilities", "box")
#: The ``"centres"`` head's box model outputs: the photo's class probabilities (N, C), each cell's
#: confidence per class (N, cells, C: its centre score times the class probabilities) and each cell's
#: box (N, cells, 4), read by Core ML's non-maximum suppression as they are.
CENTRES_OUTPUT_NAMES = ("probabilities", "box_confidence", "boxes")
# head -> the same head with its cells' logits and reaches as outputs (build_box_model).
_CELL_PARTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def build_box_model(classifier, config: BoxTrainConfig = BoxTrainConfig(), *, feature_layer: str,
                    feature_scale: float = 1.0):
    """Return ``(box_model, head)``: the full network and the trainable head alone.

    Parameters
    ----------
    classifier : keras.Model
        A trained classifier (input ``image``; outputs ``probabilities``, ``class_map``); its
        layers are shared, not copied, and frozen.
    config : BoxTrainConfig
    feature_layer : str
        The classifier's layer the head reads: the backbone spec's ``feature_layer``
        (:attr:`classifier.trained_model.TrainedModel.backbone`).
    feature_scale : float
        Multiplies the ``feature_layer`` descriptors first (``box_scale``): ``1 / std`` of the
        training descriptors (:func:`feature_scale`) brings them to unit scale. Raw VGG16
        descriptors reach several hundred and saturate the head's sigmoid outputs.

    Returns
    -------
    box_model : keras.Model
        ``image`` -> ``[probabilities (N, C), box (N, 4)]``.
    head : keras.Model
        ``feature_layer`` features -> ``box``, sharing the box model's head layers.

    Raises
    ------
    ValueError
        If the classifier has no ``feature_layer`` or ``probabilities`` layer.
    """
    import keras

    names = {layer.name for layer in classifier.layers}
    missing = sorted({feature_layer, "probabilities"} - names)
    if missing:
        raise ValueError(f"classifier must be a boxstrap classifier with layers {feature_layer!r} and "
                         f"'probabilities'. Missing: {missing}")
    if not np.isfinite(feature_scale) or feature_scale <= 0:
        raise ValueError(f"feature_scale must be a positive number. Received: {feature_scale!r}")
    classifier.trainable = False
    features = classifier.get_layer(feature_layer).output
    make_head = {"cells": _cells_head, "dense": _dense_head, "centres": _centres_head}[config.head]
    apply = make_head(config, float(feature_scale), tuple(features.shape[1:3]))
    probabilities = classifier.get_layer("probabilities").output
    head_input = keras.Input(tuple(features.shape[1:]), name="features")
    if config.head == "centres":
        scores, boxes = apply(features)
        cells = scores.shape[1]
        confidence = keras.layers.Dot(axes=(2, 1), name="box_confidence")(
            [keras.layers.Reshape((cells, 1), name="box_scores_column")(scores),
             keras.layers.Reshape((1, probabilities.shape[-1]), name="probabilities_row")(probabilities)])
        box_model = keras.Model(classifier.input, [probabilities, confidence, boxes], name="boxstrap_box_model")
        head = keras.Model(head_input, apply(head_input), name="box_head")
        _CELL_PARTS[head] = keras.Model(head_input, apply(head_input, parts=True), name="box_head_cells")
        return box_model, head
    box = apply(features)
    box_model = keras.Model(classifier.input, [probabilities, box], name="boxstrap_box_model")
    head = keras.Model(head_input, apply(head_input), name="box_head")
    if config.head == "cells":
        # The same layers with every cell's logit and reaches as outputs too: what the cell-level
        # terms of the loss (BoxTrainConfig.cell_weight) read. Kept aside, never saved.
        _CELL_PARTS[head] = keras.Model(head_input, apply(head_input, parts=True), name="box_head_cells")
    return box_model, head


def _dense_head(config: BoxTrainConfig, feature_scale: float, grid: tuple[int, int]):
    """The ``"dense"`` head: a weight per cell (flatten, dense)."""
    import keras

    init = keras.initializers.GlorotUniform
    layers = [
        keras.layers.Rescaling(feature_scale, name="box_scale"),
        keras.layers.MaxPooling2D(config.pool, strides=config.pool, name="box_pool"),
        keras.layers.Conv2D(config.reduce_filters, 1, activation="relu", name="box_reduce",
                            kernel_initializer=init(seed=config.seed)),
        keras.layers.Flatten(name="box_flatten"),
        keras.layers.Dense(config.hidden, activation="relu", name="box_hidden",
                           kernel_initializer=init(seed=config.seed + 1)),
        keras.layers.Dropout(config.dropout, seed=config.seed, name="box_dropout"),
        # Zero weights: every box starts as the centred half-size box, where the sigmoid has gradient; with
        # random weights the first outputs can start saturated (a box of zero size) and never move.
        keras.layers.Dense(4, activation="sigmoid", name="box", kernel_initializer="zeros"),
    ]

    def apply(x):
        for layer in layers:
            x = layer(x)
        return x

    return apply


def _cells_head(config: BoxTrainConfig, feature_scale: float, grid: tuple[int, int]):
    """The ``"cells"`` head (module docstring): a soft arg-max over the cells' own boxes."""
    import keras

    h, w = grid
    cells = h * w
    scale = keras.layers.Rescaling(feature_scale, name="box_scale")
    reduce = keras.layers.Conv2D(config.reduce_filters, config.kernel, padding="same", activation="relu",
                                 name="box_reduce", kernel_initializer=keras.initializers.GlorotUniform(seed=config.seed))
    # Zero weights: every cell starts equally likely, reaching a quarter of the photo each way (a
    # centred half-size box), where the sigmoid has gradient.
    logit = keras.layers.Conv2D(1, 1, name="box_logit", kernel_initializer="zeros")
    logits = keras.layers.Reshape((cells,), name="box_logits")
    weights = keras.layers.Softmax(name="box_weights")
    reach = keras.layers.Conv2D(4, 1, activation="sigmoid", name="box_reach", kernel_initializer="zeros",
                                bias_initializer=keras.initializers.Constant(float(np.log(1 / 3))))
    reaches = keras.layers.Reshape((cells, 4), name="box_reaches")
    centre = keras.layers.Dense(2, use_bias=False, trainable=False, name="box_centre")
    ltrb = keras.layers.Dot(axes=(1, 1), name="box_ltrb")
    edges = keras.layers.Concatenate(name="box_edges")
    corners = keras.layers.Dense(4, use_bias=False, trainable=False, name="box_corners")
    clip = keras.layers.ReLU(max_value=1.0, name="box")
    centre.build((None, cells))
    centre.set_weights([cell_centres(h, w)])
    corners.build((None, 6))
    corners.set_weights([EDGES_TO_BOX])

    def apply(x, parts: bool = False):
        x = reduce(scale(x))
        z = logits(logit(x))
        p = weights(z)
        r = reaches(reach(x))
        box = clip(corners(edges([centre(p), ltrb([p, r])])))
        return [box, z, r] if parts else box

    return apply


def _centres_head(config: BoxTrainConfig, feature_scale: float, grid: tuple[int, int]):
    """The ``"centres"`` head: every cell scores how likely an object's centre lies in it (its own
    sigmoid, so several objects give several peaks; CenterNet, Zhou et al. 2019) and gives the box of
    that object (how far it reaches each way from the cell's centre). Returns ``[scores (N, cells),
    boxes (N, cells, 4)]``; with ``parts``, the scores' logits instead of the scores."""
    import keras

    h, w = grid
    cells = h * w
    scale = keras.layers.Rescaling(feature_scale, name="box_scale")
    reduce = keras.layers.Conv2D(config.reduce_filters, config.kernel, padding="same", activation="relu",
                                 name="box_reduce", kernel_initializer=keras.initializers.GlorotUniform(seed=config.seed))
    # Bias -log(99): every cell starts at a centre score of 0.01, as CenterNet starts (few cells are centres).
    logit = keras.layers.Conv2D(1, 1, name="box_logit", kernel_initializer="zeros",
                                bias_initializer=keras.initializers.Constant(float(-np.log(99.0))))
    logits = keras.layers.Reshape((cells,), name="box_logits")
    score = keras.layers.Activation("sigmoid", name="box_scores")
    reach = keras.layers.Conv2D(4, 1, activation="sigmoid", name="box_reach", kernel_initializer="zeros",
                                bias_initializer=keras.initializers.Constant(float(np.log(1 / 3))))
    reaches = keras.layers.Reshape((cells, 4), name="box_reaches")
    # The cells' centres as a constant: ones (any tensor scaled by 0, plus 1) through a frozen Dense.
    pooled = keras.layers.GlobalAveragePooling1D(name="box_pooled")
    one = keras.layers.Rescaling(0.0, offset=1.0, name="box_one")
    centres = keras.layers.Dense(cells * 2, use_bias=False, trainable=False, name="box_cell_centres")
    centres_grid = keras.layers.Reshape((cells, 2), name="box_centres")
    edges = keras.layers.Concatenate(name="box_cell_edges")
    corners = keras.layers.Dense(4, use_bias=False, trainable=False, name="box_cell_corners")
    clip = keras.layers.ReLU(max_value=1.0, name="boxes")
    centres.build((None, 4))  # four ones in, each row a quarter of the centres
    centres.set_weights([np.repeat(cell_centres(h, w).reshape(1, cells * 2) / 4, 4, axis=0)])
    corners.build((None, cells, 6))
    corners.set_weights([EDGES_TO_BOX])

    def apply(x, parts: bool = False):
        x = reduce(scale(x))
        z = logits(logit(x))
        r = reaches(reach(x))
        c = centres_grid(centres(one(pooled(r))))
        boxes = clip(corners(edges([c, r])))
        return [z, boxes] if parts else [score(z), boxes]

    return apply


def cell_parts(head):
    """The ``"cells"`` head of :func:`build_box_model` with every cell's outputs too: features ->
    ``[box (N, 4), logits (N, h * w), reaches (N, h * w, 4)]`` (the same layers); None for another head."""
    return _CELL_PARTS.get(head)


def cell_centres(h: int, w: int) -> np.ndarray:
    """``(h * w, 2)`` float32: each cell's centre ``(x, y)`` as fractions of the grid, row by row
    (the order ``Reshape`` flattens a ``(h, w)`` grid in).

    >>> cell_centres(1, 2).tolist()
    [[0.25, 0.5], [0.75, 0.5]]
    """
    ys, xs = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


#: ``(cx, cy, left, top, right, bottom) @ EDGES_TO_BOX = (cx', cy', width, height)``: a centre and
#: how far the box reaches from it each way, as the box's own centre and size.
EDGES_TO_BOX = np.array([[1, 0, 0, 0],
                         [0, 1, 0, 0],
                         [-0.5, 0, 1, 0],
                         [0, -0.5, 0, 1],
                         [0.5, 0, 1, 0],
                         [0, 0.5, 0, 1]], np.float32)


def feature_scale(features: np.ndarray) -> float:
    """``1 / std`` of descriptors (for :func:`build_box_model`); 1.0 for constant ones."""
    std = float(np.std(np.asarray(features, np.float32)))
    return 1.0 / std if std > 0 and np.isfinite(std) else 1.0


