"""Fit the box head on cached features and boxes (:func:`train_box_head`), or several
``"centres"`` heads at once on the same views (:func:`train_box_heads`)."""

from __future__ import annotations

import logging

import numpy as np

from classifier.build_for_fit import build_for_fit
from classifier.epoch_log import epoch_log, keras_verbose
from detector.box_losses import (
    box_iou_metric,
    box_loss,
    cell_box_loss,
    cell_targets_of,
    centre_loss,
    centre_targets_of,
    focal_centre_loss,
    reach_loss,
)
from detector.box_model import cell_parts
from detector.box_train_config import BoxTrainConfig
from detector.box_views import check_box_targets, views_dataset

__all__ = ["centres_epochs", "train_box_head", "train_box_heads"]

log = logging.getLogger(__name__)


def train_box_head(head, features: np.ndarray, boxes: np.ndarray, config: BoxTrainConfig, *,
                   valid: tuple[np.ndarray, np.ndarray] | None = None, verbose: int = 1) -> dict[str, list]:
    """Fit the box head on cached features and pseudo boxes; return the loss history.

    Parameters
    ----------
    head : keras.Model
        From :func:`build_box_model`.
    features : (N, h, w, c) ndarray
        The feature layer's descriptors (:func:`classifier.multi_view_maps.forward`).
    boxes : (N, 4) ndarray
        Pseudo boxes, normalised ``(cx, cy, w, h)``; ``(N, M, 4)`` for the ``"centres"`` head
        (several per photo, zero rows are padding: :func:`detector.box_views.pad_boxes`).
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

    if config.head == "centres":
        return _train_centres(head, features, boxes, config, valid=valid, verbose=verbose)
    boxes = check_box_targets(boxes, len(features))
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
        validation = (np.asarray(valid[0], np.float32), check_box_targets(valid[1], len(valid[0])))
        if cells is not None:
            validation = (validation[0], cell_targets_of(validation[1], grid))
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.epochs,
                                                       restore_best_weights=True))
    views = views_dataset(features, boxes, config, grid if cells is not None else None)
    build_for_fit(net, views[0])
    fit = net.fit(views, epochs=config.epochs,
                  validation_data=validation, callbacks=callbacks + [epoch_log("box head")],
                  verbose=keras_verbose(verbose))
    history = {k.replace("box_box_iou", "box_iou"): v for k, v in fit.history.items()}
    return {
        "loss": [float(v) for v in history["loss"]],
        "val_loss": [float(v) for v in history.get("val_loss", [])],
        "val_iou": [float(v) for v in history.get("val_box_iou_metric", [])],
    }


def _train_centres(head, features: np.ndarray, boxes: np.ndarray, config: BoxTrainConfig, *,
                   valid: tuple[np.ndarray, np.ndarray] | None, verbose: int) -> dict[str, list]:
    """The ``"centres"`` head: its centre logits (focal loss) and cell boxes (weighted smooth-L1 and GIoU)."""
    import keras

    boxes = check_box_targets(boxes, len(features), several=True)
    if not np.any(boxes[..., 2] > 0):
        raise ValueError("No pseudo boxes to train the box model on: every image was left without a box.")
    keras.utils.set_random_seed(config.seed)
    net = cell_parts(head)
    grid = tuple(features.shape[1:3])
    net.compile(optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=1.0),
                loss=[focal_centre_loss, cell_box_loss(config.iou_weight)])
    callbacks = []
    validation = None
    if valid is not None:
        validation = (np.asarray(valid[0], np.float32),
                      centre_targets_of(check_box_targets(valid[1], len(valid[0]), several=True), grid))
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.epochs,
                                                       restore_best_weights=True))
    views = views_dataset(features, boxes, config)
    build_for_fit(net, views[0])
    epochs = centres_epochs(config, len(views))
    log.info("box head: %d epochs of %d batches (at most %d epochs, %s batches)", epochs, len(views), config.epochs,
             config.max_steps or "any number of")
    fit = net.fit(views, epochs=epochs, validation_data=validation,
                  callbacks=callbacks + [epoch_log("box head")], verbose=keras_verbose(verbose))
    return {"loss": [float(v) for v in fit.history["loss"]],
            "val_loss": [float(v) for v in fit.history.get("val_loss", [])], "val_iou": []}


def train_box_heads(heads: list, features: np.ndarray, boxes: np.ndarray, weights: np.ndarray,
                    config: BoxTrainConfig, *, verbose: int = 1) -> list[dict[str, list]]:
    """Fit several ``"centres"`` heads at once, on one set of views, each on its own photos.

    The box model is scored out of fold: one head per fold, trained without that fold's hand
    boxes, on the same cached features as the shipped one. Trained together, those heads take
    each batch in one step (one view set, one optimizer; each head's weights still see only its
    own loss's gradients, and Adam and the per-weight gradient clipping are per weight), which
    costs about two thirds of training them one after another (benchmarks/NOTES.md, "The fold
    models trained together").

    Parameters
    ----------
    heads : list of keras.Model
        ``"centres"`` heads from :func:`build_box_model` (each may have its own feature scale).
    features : (N, h, w, c) ndarray
    boxes : (N, M, 4) ndarray
        Each photo's boxes (zero rows are padding): the same targets for every head that learns
        from the photo.
    weights : (N, K) ndarray
        Photo ``i`` counts ``weights[i, k]`` in head ``k``'s loss: 1 for a photo head ``k`` learns
        from, 0 for one it must not see (a repeated photo is a repeated row). Every head's
        epochs and batches are those of the whole view set (:func:`centres_epochs`).
    config : BoxTrainConfig
        ``head="centres"`` and ``paste=0``.

    Returns
    -------
    list of dict
        Per head, its loss per epoch (``"loss"``: its centre and box losses, each a mean over the
        views of its own photos) and empty ``"val_loss"`` and ``"val_iou"``.

    Raises
    ------
    ValueError
        If the config is not a ``"centres"`` head without pasted views, the shapes do not match, or
        a head has no box to learn from.
    """
    import keras

    if config.head != "centres" or config.paste:
        raise ValueError(f"train_box_heads needs head='centres' and paste=0. Received: head={config.head!r}, "
                         f"paste={config.paste}")
    boxes = check_box_targets(boxes, len(features), several=True)
    weights = np.asarray(weights, np.float32)
    if weights.shape != (len(features), len(heads)):
        raise ValueError(f"weights must be (N, K) = ({len(features)}, {len(heads)}). Received: {weights.shape}")
    boxed = np.any(boxes[..., 2] > 0, axis=1)
    for k in range(len(heads)):
        if not np.any(boxed & (weights[:, k] > 0)):
            raise ValueError(f"No pseudo boxes to train box head {k} on: none of its photos has a box.")
    keras.utils.set_random_seed(config.seed)
    net = _Together([cell_parts(head) for head in heads])
    # Each head's two losses again as weighted means (over the photos it learns from): its history.
    own = [[[keras.metrics.MeanMetricWrapper(focal_centre_loss, name=f"head_{k}_centres")],
            [keras.metrics.MeanMetricWrapper(cell_box_loss(config.iou_weight), name=f"head_{k}_boxes")]]
           for k in range(len(heads))]
    net.compile(optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=1.0),
                loss=[focal_centre_loss, cell_box_loss(config.iou_weight)] * len(heads),
                weighted_metrics=[pair for pairs in own for pair in pairs])
    views = views_dataset(features, boxes, config, weights=weights)
    build_for_fit(net, views[0])
    epochs = centres_epochs(config, len(views))
    log.info("%d box heads together: %d epochs of %d batches (at most %d epochs, %s batches)", len(heads), epochs,
             len(views), config.epochs, config.max_steps or "any number of")
    shown = ("loss",) + tuple(f"head_{k}_{part}" for k in range(len(heads)) for part in ("centres", "boxes"))
    fit = net.fit(views, epochs=epochs, callbacks=[epoch_log("box heads", keys=shown)], verbose=keras_verbose(verbose))
    return [{"loss": [float(a + b) for a, b in zip(fit.history[f"head_{k}_centres"], fit.history[f"head_{k}_boxes"],
                                                  strict=True)],
             "val_loss": [], "val_iou": []} for k in range(len(heads))]


def _Together(parts: list):
    """One Keras model running several heads on the same features: ``[logits_0, boxes_0, logits_1, ...]``."""
    import keras

    class Together(keras.Model):
        def __init__(self, heads):
            super().__init__(name="box_heads")
            self.heads = heads

        def call(self, features):
            return [out for head in self.heads for out in head(features)]

    return Together(parts)


def centres_epochs(config: BoxTrainConfig, batches: int) -> int:
    """Epochs the ``"centres"`` head trains for with ``batches`` batches per epoch: ``config.epochs``,
    fewer when ``config.max_steps`` (> 0) batches are reached sooner (whole epochs, at least one).

    Examples
    --------
    >>> centres_epochs(BoxTrainConfig(epochs=20, max_steps=1200), 25), centres_epochs(BoxTrainConfig(), 113)
    (20, 4)
    """
    if config.max_steps <= 0 or batches <= 0:
        return config.epochs
    return max(1, min(config.epochs, -(-config.max_steps // batches)))
