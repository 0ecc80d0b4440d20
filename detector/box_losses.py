"""The box head's losses and metric (Keras ops): the box's smooth-L1 and GIoU, and the cells' targets.

Boxes are normalised ``(cx, cy, w, h)``. With ``BoxTrainConfig.cell_weight`` the cells head is
also taught where the centre is (:func:`centre_loss`) and how far the object reaches from each
cell (:func:`reach_loss`), against the targets :func:`cell_targets_of` makes from the boxes.
"""

from __future__ import annotations

import numpy as np

from detector.box_model import cell_centres

__all__ = ["box_iou_metric", "box_loss", "cell_box_loss", "cell_targets_of", "centre_loss", "centre_targets_of",
           "focal_centre_loss", "reach_loss"]


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


def centre_targets_of(boxes: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Targets of the ``"centres"`` head for photos with several boxes.

    Parameters
    ----------
    boxes : (N, M, 4) array
        Normalised ``(cx, cy, w, h)``, up to M per photo; rows of zero width are padding.
    grid : (h, w)

    Returns
    -------
    heat : (N, h * w) float32
        Per cell, the largest of the boxes' Gaussians (standard deviation a sixth of the box, at
        least half a cell) around the cell holding each box's centre, where it is exactly 1.
    assigned : (N, h * w, 5) float32
        Per cell, the box whose Gaussian is largest there and, last, that Gaussian (the weight of
        the cell's box in :func:`cell_box_loss`).

    Examples
    --------
    >>> heat, assigned = centre_targets_of(np.array([[[0.25, 0.5, 0.5, 1.0], [0.75, 0.5, 0.5, 1.0]]]), (1, 2))
    >>> heat.tolist(), assigned[0, :, 0].tolist()
    ([[1.0, 1.0]], [0.25, 0.75])
    """
    boxes = np.asarray(boxes, np.float32)
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be (N, M, 4) normalised (cx, cy, w, h). Received shape: {boxes.shape}")
    h, w = grid
    centres = cell_centres(h, w)  # (cells, 2)
    cx, cy, bw, bh = (boxes[..., k:k + 1] for k in range(4))  # (N, M, 1)
    valid = bw > 0
    # The centre cell's own centre: its Gaussian is 1 there.
    px = (np.minimum(np.floor(cx * w), w - 1) + 0.5) / w
    py = (np.minimum(np.floor(cy * h), h - 1) + 0.5) / h
    sx, sy = np.maximum(bw / 6, 0.5 / w), np.maximum(bh / 6, 0.5 / h)
    d = ((centres[None, None, :, 0] - px) / sx) ** 2 + ((centres[None, None, :, 1] - py) / sy) ** 2
    gauss = np.where(valid, np.exp(-0.5 * d), 0.0)  # (N, M, cells)
    owner = np.argmax(gauss, axis=1)  # (N, cells)
    heat = np.take_along_axis(gauss, owner[:, None], axis=1)[:, 0]
    chosen = np.take_along_axis(boxes, owner[..., None], axis=1)  # (N, cells, 4)
    assigned = np.concatenate([chosen, heat[..., None]], axis=-1)
    return heat.astype(np.float32), assigned.astype(np.float32)


def focal_centre_loss(y_true, y_pred):
    """CenterNet's focal loss of the cells' centre logits against their Gaussian targets, per photo,
    divided by its number of centres (cells whose target is 1)."""
    from keras import ops

    log_p, log_not_p = ops.log_sigmoid(y_pred), ops.log_sigmoid(-y_pred)
    p = ops.sigmoid(y_pred)
    positive = ops.cast(y_true >= 1.0 - 1e-6, y_pred.dtype)
    pos = -positive * (1 - p) ** 2 * log_p
    neg = -(1 - positive) * (1 - y_true) ** 4 * p ** 2 * log_not_p
    return ops.sum(pos + neg, axis=-1) / ops.maximum(ops.sum(positive, axis=-1), 1.0)


def cell_box_loss(iou_weight: float = 1.0):
    """Each cell's box against its assigned box (:func:`centre_targets_of`): smooth-L1 plus
    ``iou_weight * (1 - GIoU)``, weighted by the cell's Gaussian, per photo."""
    from keras import ops

    def loss(y_true, y_pred):
        target, weight = y_true[..., :4], y_true[..., 4]
        diff = ops.abs(target - y_pred)
        smooth_l1 = ops.mean(ops.where(diff < 0.1, 0.5 * diff**2 / 0.1, diff - 0.05), axis=-1)
        per_cell = smooth_l1 + iou_weight * (1.0 - _giou(target, y_pred))
        return ops.sum(weight * per_cell, axis=-1) / ops.maximum(ops.sum(weight, axis=-1), 1e-6)

    return loss
