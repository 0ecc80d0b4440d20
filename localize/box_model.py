"""The box model: the trained classifier plus a head that regresses one class-agnostic box.

The PSOL idea (Zhang et al., CVPR 2020): a regressor trained on noisy pseudo boxes generalises
past them. The network reuses the classifier whole (its backbone and its class head, frozen)
and adds a small box head on the backbone's feature layer (the spec's ``feature_layer``).

The default head (``head="cells"``) is fully convolutional, like the class-map head: every cell
of the feature grid says how likely it is the object's centre and how far the object reaches from
it; the box is the average of the cells' boxes weighted by those likelihoods (a soft arg-max)::

    image -> backbone ... feature layer -> (classifier head) -> probabilities (N, C)
                                        -> box_scale -> box_reduce (3x3 conv)
                                             -> box_logit (1x1 conv) -> box_logits -> box_weights (softmax over cells)
                                             -> box_reach (1x1 conv, sigmoid: left, top, right, bottom)
                                                -> box_reaches
                                        box_weights -> box_centre (frozen: the cells' centres)
                                        box_weights, box_reaches -> box_ltrb (weighted reach)
                                        box_centre, box_ltrb -> box_edges -> box_corners (frozen)
                                            -> box (clipped to [0, 1])

Its weights are the same for every cell, so what it learns from an object in one place holds
in any other, and it needs far fewer photos than the ``"dense"`` head (``box_scale -> box_pool
-> box_reduce (1x1) -> box_flatten -> box_hidden -> box_dropout -> box``, a weight per cell),
which scored below the pseudo boxes it learned from (benchmarks/NOTES.md). Only built-in Keras
layers are used (the two constant maps are frozen ``Dense`` layers), so the model loads in safe
mode and converts to Core ML without custom layers.

``box`` is ``(centre x, centre y, width, height)`` as fractions of the image, the layout Apple's
Vision framework reads from an object detector's ``coordinates`` output.

Only the box head trains, on backbone features computed once (the descriptors of
:func:`localize.multi_view_maps.forward`, saved beside the pseudo boxes); its
augmentation works on those features: horizontal flips and crops of the feature grid, with the
boxes moved to match, so the views cost no further forward passes.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from classifier.epoch_log import epoch_log, keras_verbose
from groundwork.box_geometry import cxcywh_to_xyxy, xyxy_to_cxcywh

log = logging.getLogger(__name__)

OUTPUT_NAMES = ("probabilities", "box")
HEADS = ("cells", "dense")
# head -> the same head with its cells' logits and reaches as outputs (build_box_model).
_CELL_PARTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class BoxTrainConfig:
    """How the box head is trained; saved as ``box_train_config.json`` beside the box model.

    Parameters
    ----------
    head : {"cells", "dense"}
        The box head (module docstring). Default ``"cells"``: on every row of the block photos'
        learning curve it found more objects (CorLoc) than the pseudo boxes it learned from, where
        ``"dense"`` found fewer in three of four rows (benchmarks/NOTES.md).
    reduce_filters : int
        Width of the reduction convolution. 32: with ``kernel=3`` it scored as 64 did on the
        learning curve (mean over its rows: CorLoc 0.878 against 0.866, mean IoU 0.739 against 0.742)
        at half the cost.
    kernel : int >= 1
        ``"cells"``: size of the reduction convolution (3: each cell also sees its neighbours;
        on the learning curve it beat 1 on mean IoU in every row, at 64 filters).
    hidden : int
        ``"dense"``: width of the hidden dense layer.
    pool : int >= 1
        Max-pooling of the descriptor grid before the reduction (1: none). ``"dense"`` only: the
        cells head reads the full grid.
    dropout : float
        ``"dense"``: before the box output, in [0, 1). Default 0 and 20 epochs: on the block photos' pseudo
        boxes (benchmarks/NOTES.md) dropout 0.3 scored mean IoU 0.737 on the hand boxes against
        0.763 without, and the validation IoU was flat after epoch 20 (0.760 at 20, 0.762 at 40).
    epochs, batch_size : int
    learning_rate : float
        Adam.
    iou_weight : float
        Weight of the (1 - GIoU) term beside the smooth-L1 term of the loss.
    cell_weight : float >= 0
        ``"cells"``: weight of two terms that teach every cell, not only their average: the cells'
        likelihoods against a Gaussian around the target box's centre (cross-entropy), and the
        reaches of the cells near it against the box's edges (L1, weighted by that Gaussian).
        0 trains on the averaged box alone.
    crops : int
        Random feature-grid crops per image and epoch view set (0 turns crops off).
    flip : bool
        Add horizontally flipped views.
    seed : int
    hand_weight : int >= 1
        How many times a hand-checked box counts against one pseudo box (its image is repeated).
    rounds : int >= 1
        Self-training rounds at most: after each, the box model's own boxes become the next
        round's targets (hand boxes stay); it stops at the first round that does not improve the
        mean IoU on the held-out hand boxes (scored k-fold over capture groups), keeping the best.
        Without hand boxes there is nothing to judge a round by: one round. Default 1: a second
        round scored lower on every set measured (benchmarks/NOTES.md, "Self-training rounds") and
        costs as much again.
    """

    head: str = "cells"
    reduce_filters: int = 32
    kernel: int = 3
    hidden: int = 256
    pool: int = 2
    dropout: float = 0.0
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    iou_weight: float = 1.0
    cell_weight: float = 0.0
    crops: int = 2
    flip: bool = True
    seed: int = 0
    hand_weight: int = 3
    rounds: int = 1

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}. Received: {self.head!r}")
        for name in ("reduce_filters", "kernel", "hidden", "pool", "epochs", "batch_size", "hand_weight", "rounds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1. Received: {value!r}")
        if not isinstance(self.crops, int) or self.crops < 0:
            raise ValueError(f"crops must be an int >= 0. Received: {self.crops!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1). Received: {self.dropout!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0. Received: {self.learning_rate!r}")
        if self.iou_weight < 0:
            raise ValueError(f"iou_weight must be >= 0. Received: {self.iou_weight!r}")
        if not self.cell_weight >= 0:
            raise ValueError(f"cell_weight must be >= 0. Received: {self.cell_weight!r}")


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
    make_head = _cells_head if config.head == "cells" else _dense_head
    apply = make_head(config, float(feature_scale), tuple(features.shape[1:3]))
    box = apply(features)
    probabilities = classifier.get_layer("probabilities").output
    box_model = keras.Model(classifier.input, [probabilities, box], name="boxstrap_box_model")
    head_input = keras.Input(tuple(features.shape[1:]), name="features")
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


def feature_views(features: np.ndarray, boxes: np.ndarray, config: BoxTrainConfig, *, epoch: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Augmented views of cached features with their boxes moved to match.

    Parameters
    ----------
    features : (N, h, w, c) ndarray
    boxes : (N, 4) ndarray
        Normalised ``(cx, cy, w, h)``.
    config : BoxTrainConfig
        ``flip`` and ``crops`` choose the views.
    epoch : int
        Seeds the crops together with ``config.seed``.

    Returns
    -------
    features : (M, h, w, c) ndarray
    boxes : (M, 4) ndarray
        The originals first, then flips, then crops (resampled back to (h, w) by nearest grid
        cell so the shape stays fixed).
    """
    features = np.asarray(features)
    boxes = _check_boxes(boxes, len(features))
    out_f, out_b = [features], [boxes]
    if config.flip:
        out_f.append(features[:, :, ::-1])
        flipped = boxes.copy()
        flipped[:, 0] = 1.0 - flipped[:, 0]
        out_b.append(flipped)
    rng = np.random.default_rng([config.seed, epoch])
    for _ in range(config.crops):
        f, b = _crop_views(features, boxes, rng)
        out_f.append(f)
        out_b.append(b)
    return np.concatenate(out_f), np.concatenate(out_b)


def _crop_views(features: np.ndarray, boxes: np.ndarray, rng: np.random.Generator):
    """One random crop per feature grid that keeps its whole box, stretched back to full size by
    nearest grid cell; all grids at once (one gather, no loop over photos)."""
    n, h, w = features.shape[:3]
    x0, y0, x1, y1 = cxcywh_to_xyxy(boxes).T
    # Grid cells the crop may remove on each side without cutting the box.
    room = np.stack([np.floor(x0 * w), np.floor(y0 * h), np.floor((1 - x1) * w), np.floor((1 - y1) * h)], axis=1)
    cut = rng.integers(0, np.maximum(1, room.astype(np.int64) + 1))
    left, top = cut[:, 0], cut[:, 1]
    crop_w, crop_h = w - cut[:, 2] - left, h - cut[:, 3] - top
    rows = top[:, None] + (np.arange(h)[None] * crop_h[:, None]) // h
    cols = left[:, None] + (np.arange(w)[None] * crop_w[:, None]) // w
    views = features[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    new = np.stack([(x0 * w - left) / crop_w, (y0 * h - top) / crop_h,
                    (x1 * w - left) / crop_w, (y1 * h - top) / crop_h], axis=1)
    return views, xyxy_to_cxcywh(np.clip(new, 0, 1)).astype(np.float32)


def train_box_head(head, features: np.ndarray, boxes: np.ndarray, config: BoxTrainConfig, *,
                   valid: tuple[np.ndarray, np.ndarray] | None = None, verbose: int = 1) -> dict[str, list]:
    """Fit the box head on cached features and pseudo boxes; return the loss history.

    Parameters
    ----------
    head : keras.Model
        From :func:`build_box_model`.
    features : (N, h, w, c) ndarray
        The feature layer's descriptors (:func:`localize.multi_view_maps.forward`).
    boxes : (N, 4) ndarray
        Pseudo boxes, normalised ``(cx, cy, w, h)``.
    config : BoxTrainConfig
    valid : (features, boxes) or None
        Scored after each epoch (``val_loss``, ``val_iou``); the best epoch's weights are kept.
    verbose : int
        Each epoch is logged (INFO); at 2 Keras prints its own line per epoch too.

    Raises
    ------
    ValueError
        If there are no boxes or the arrays do not match.
    """
    import keras

    boxes = _check_boxes(boxes, len(features))
    if len(boxes) == 0:
        raise ValueError("No pseudo boxes to train the box model on: every image was left without a box.")
    keras.utils.set_random_seed(config.seed)
    cells = cell_parts(head) if config.cell_weight > 0 else None
    net = head if cells is None else cells
    grid = tuple(features.shape[1:3])
    # Clipped: without it an unlucky first step can saturate the sigmoid outputs for good.
    optimizer = keras.optimizers.Adam(config.learning_rate, clipnorm=1.0)
    if cells is None:
        net.compile(optimizer=optimizer, loss=box_loss(config.iou_weight), metrics=[box_iou_metric])
    else:
        net.compile(optimizer=optimizer, loss=[box_loss(config.iou_weight), centre_loss, reach_loss],
                    loss_weights=[1.0, config.cell_weight, config.cell_weight], metrics=[[box_iou_metric], [], []])
    callbacks = []
    validation = None
    if valid is not None:
        validation = (np.asarray(valid[0], np.float32), _check_boxes(valid[1], len(valid[0])))
        if cells is not None:
            validation = (validation[0], cell_targets_of(validation[1], grid))
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.epochs,
                                                       restore_best_weights=True))
    fit = net.fit(_views_dataset(features, boxes, config, grid if cells is not None else None), epochs=config.epochs,
                  validation_data=validation, callbacks=callbacks + [epoch_log("box head")],
                  verbose=keras_verbose(verbose))
    history = {k.replace("box_box_iou", "box_iou"): v for k, v in fit.history.items()}
    return {
        "loss": [float(v) for v in history["loss"]],
        "val_loss": [float(v) for v in history.get("val_loss", [])],
        "val_iou": [float(v) for v in history.get("val_box_iou_metric", [])],
    }


def cell_targets_of(boxes: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets of the ``"cells"`` head's three outputs for normalised ``(cx, cy, w, h)`` boxes.

    Returns
    -------
    boxes : (N, 4) float32
    centre : (N, h * w) float32
        A Gaussian around each box's centre over the cells (standard deviation a sixth of the box,
        at least half a cell), summing to 1.
    reaches : (N, h * w, 5) float32
        Per cell, how far the box reaches from the cell's centre (left, top, right, bottom, clipped
        to [0, 1]) and, last, the cell's weight (its ``centre`` value).

    Examples
    --------
    >>> _, centre, reaches = cell_targets_of(np.array([[0.25, 0.5, 0.5, 1.0]]), (1, 2))
    >>> [round(float(v), 3) for v in centre[0]], reaches[0, 0, :4].tolist()
    ([0.881, 0.119], [0.25, 0.5, 0.25, 0.5])
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    h, w = grid
    centres = cell_centres(h, w)  # (cells, 2)
    cx, cy, bw, bh = (boxes[:, k:k + 1] for k in range(4))
    sx, sy = np.maximum(bw / 6, 0.5 / w), np.maximum(bh / 6, 0.5 / h)
    d = ((centres[None, :, 0] - cx) / sx) ** 2 + ((centres[None, :, 1] - cy) / sy) ** 2
    centre = np.exp(-0.5 * (d - d.min(axis=1, keepdims=True)))
    centre = (centre / centre.sum(axis=1, keepdims=True)).astype(np.float32)
    reach = np.stack([centres[None, :, 0] - (cx - bw / 2), centres[None, :, 1] - (cy - bh / 2),
                      (cx + bw / 2) - centres[None, :, 0], (cy + bh / 2) - centres[None, :, 1]], axis=-1)
    reaches = np.concatenate([np.clip(reach, 0, 1), centre[..., None]], axis=-1).astype(np.float32)
    return boxes, centre, reaches


def centre_loss(y_true, y_pred):
    """Cross-entropy of the cells' likelihood logits against the target distribution."""
    from keras import ops

    return -ops.sum(y_true * ops.log_softmax(y_pred, axis=-1), axis=-1)


def reach_loss(y_true, y_pred):
    """L1 of the cells' reaches against the box's, weighted by the cells' target likelihood."""
    from keras import ops

    weight = y_true[..., 4]
    return ops.sum(weight * ops.mean(ops.abs(y_true[..., :4] - y_pred), axis=-1), axis=-1)


def _views_dataset(features: np.ndarray, boxes: np.ndarray, config: BoxTrainConfig,
                   grid: tuple[int, int] | None = None):
    """A Keras ``PyDataset`` giving new feature views (flips, crops) every epoch, shuffled; with
    ``grid``, each batch's targets are :func:`cell_targets_of` its boxes."""
    import keras

    class Views(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0
            self._make()

        def _make(self):
            self.x = self.y = None  # free the last epoch's views before making the next
            x, y = feature_views(features, boxes, config, epoch=self.epoch)
            order = np.random.default_rng([config.seed, self.epoch, 1]).permutation(len(x))
            # Kept in the cached features' dtype (float16): four views of 700 photos' VGG16
            # descriptors are 1.3 GB in float32; each batch is cast on its own.
            self.x, self.y = x[order], y[order]

        def __len__(self):
            return int(np.ceil(len(self.x) / config.batch_size))

        def __getitem__(self, index):
            part = slice(index * config.batch_size, (index + 1) * config.batch_size)
            y = self.y[part] if grid is None else cell_targets_of(self.y[part], grid)
            return self.x[part].astype(np.float32), y

        def on_epoch_end(self):
            self.epoch += 1
            self._make()

    return Views()


def box_iou_metric(y_true, y_pred):
    """Mean IoU of normalised ``(cx, cy, w, h)`` boxes, as a Keras metric."""
    from keras import ops

    return ops.mean(_giou(y_true, y_pred, plain_iou=True))


def box_loss(iou_weight: float = 1.0):
    """Smooth-L1 on ``(cx, cy, w, h)`` plus ``iou_weight * (1 - GIoU)``, per sample."""
    from keras import ops

    def loss(y_true, y_pred):
        diff = ops.abs(y_true - y_pred)
        smooth_l1 = ops.mean(ops.where(diff < 0.1, 0.5 * diff**2 / 0.1, diff - 0.05), axis=-1)
        return smooth_l1 + iou_weight * (1.0 - _giou(y_true, y_pred))

    return loss


def _giou(a, b, *, plain_iou: bool = False):
    from keras import ops

    def corners(box):
        return (box[..., 0] - box[..., 2] / 2, box[..., 1] - box[..., 3] / 2,
                box[..., 0] + box[..., 2] / 2, box[..., 1] + box[..., 3] / 2)

    ax0, ay0, ax1, ay1 = corners(a)
    bx0, by0, bx1, by1 = corners(b)
    inter = (ops.maximum(0.0, ops.minimum(ax1, bx1) - ops.maximum(ax0, bx0))
             * ops.maximum(0.0, ops.minimum(ay1, by1) - ops.maximum(ay0, by0)))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    hull = (ops.maximum(ax1, bx1) - ops.minimum(ax0, bx0)) * (ops.maximum(ay1, by1) - ops.minimum(ay0, by0))
    iou = inter / (union + 1e-7)
    if plain_iou:
        return iou
    return iou - (hull - union) / (hull + 1e-7)


def normalise_boxes(boxes_xyxy: np.ndarray, sizes: Sequence[tuple[int, int]]) -> np.ndarray:
    """Pixel boxes (continuous ``x0, y0, x1, y1``) of images of ``(width, height)`` -> normalised cxcywh."""
    b = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    wh = np.asarray(sizes, np.float32).reshape(-1, 2)
    if len(wh) != len(b):
        raise ValueError(f"one image size per box is needed. Received: {len(b)} boxes, {len(wh)} sizes")
    scale = np.concatenate([wh, wh], axis=1)
    return xyxy_to_cxcywh(np.clip(b / scale, 0.0, 1.0))


def _check_boxes(boxes: np.ndarray, n: int) -> np.ndarray:
    boxes = np.asarray(boxes, np.float32)
    if boxes.shape != (n, 4):
        raise ValueError(f"boxes must be (N, 4) normalised (cx, cy, w, h) with N = {n}. Received shape: {boxes.shape}")
    if not np.all(np.isfinite(boxes)) or boxes.min(initial=0) < 0 or boxes.max(initial=0) > 1:
        raise ValueError("boxes must be finite fractions of the image in [0, 1] (cx, cy, w, h).")
    return boxes
