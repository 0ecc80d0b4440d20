"""What the box head trains on: normalised box targets and augmented views of cached features.

The box head trains on backbone features computed once (the descriptors of
:func:`classifier.multi_view_maps.forward`, saved beside the pseudo boxes); its augmentation works
on those features: horizontal flips and crops of the feature grid, with the boxes moved to match,
so the views cost no further forward passes. Boxes are normalised ``(cx, cy, w, h)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detector.box_losses import cell_targets_of
from detector.box_train_config import BoxTrainConfig
from groundwork.box_geometry import cxcywh_to_xyxy, xyxy_to_cxcywh

__all__ = ["check_box_targets", "feature_views", "normalise_boxes", "views_dataset"]


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
    boxes = check_box_targets(boxes, len(features))
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


def views_dataset(features: np.ndarray, boxes: np.ndarray, config: BoxTrainConfig,
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


def normalise_boxes(boxes_xyxy: np.ndarray, sizes: Sequence[tuple[int, int]]) -> np.ndarray:
    """Pixel boxes (continuous ``x0, y0, x1, y1``) of images of ``(width, height)`` -> normalised cxcywh."""
    b = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    wh = np.asarray(sizes, np.float32).reshape(-1, 2)
    if len(wh) != len(b):
        raise ValueError(f"one image size per box is needed. Received: {len(b)} boxes, {len(wh)} sizes")
    scale = np.concatenate([wh, wh], axis=1)
    return xyxy_to_cxcywh(np.clip(b / scale, 0.0, 1.0))


def check_box_targets(boxes: np.ndarray, n: int) -> np.ndarray:
    boxes = np.asarray(boxes, np.float32)
    if boxes.shape != (n, 4):
        raise ValueError(f"boxes must be (N, 4) normalised (cx, cy, w, h) with N = {n}. Received shape: {boxes.shape}")
    if not np.all(np.isfinite(boxes)) or boxes.min(initial=0) < 0 or boxes.max(initial=0) > 1:
        raise ValueError("boxes must be finite fractions of the image in [0, 1] (cx, cy, w, h).")
    return boxes
