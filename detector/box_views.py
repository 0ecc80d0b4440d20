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

__all__ = ["check_box_targets", "feature_views", "normalise_boxes", "pad_boxes", "paste_views", "several_box_views",
           "views_dataset"]


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
    for _ in range(config.crops or 0):  # None: not chosen for a training (BoxTrainConfig.for_training), none
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


def pad_boxes(boxes: Sequence[np.ndarray], size: int | None = None) -> np.ndarray:
    """Per photo ``(k_i, 4)`` boxes -> ``(N, M, 4)`` float32, rows of zeros after each photo's own."""
    size = max([len(b) for b in boxes] + [1]) if size is None else size
    out = np.zeros((len(boxes), size, 4), np.float32)
    for i, b in enumerate(boxes):
        b = np.asarray(b, np.float32).reshape(-1, 4)[:size]
        out[i, :len(b)] = b
    return out


def several_box_views(features: np.ndarray, boxes: np.ndarray, config: BoxTrainConfig, *, epoch: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`feature_views` for photos with several boxes (``(N, M, 4)``, zero rows are padding):
    the originals, flips, crops that keep every box, then ``config.paste`` sets of
    :func:`paste_views`. Returns ``(features (V, h, w, c), boxes (V, M', 4))``."""
    features = np.asarray(features)
    boxes = np.asarray(boxes, np.float32)
    valid = boxes[..., 2] > 0
    out_f, out_b = [features], [boxes]
    if config.flip:
        out_f.append(features[:, :, ::-1])
        flipped = boxes.copy()
        flipped[..., 0] = np.where(valid, 1.0 - flipped[..., 0], 0.0)
        out_b.append(flipped)
    rng = np.random.default_rng([config.seed, epoch])
    if config.crops:
        xyxy = cxcywh_to_xyxy(boxes.reshape(-1, 4)).reshape(boxes.shape)
        union = np.stack([np.where(valid, xyxy[..., 0], 1).min(1), np.where(valid, xyxy[..., 1], 1).min(1),
                          np.where(valid, xyxy[..., 2], 0).max(1), np.where(valid, xyxy[..., 3], 0).max(1)], 1)
        union = np.where(valid.any(1)[:, None], union, [0, 0, 1, 1])
        for _ in range(config.crops):
            f, u = _crop_views(features, xyxy_to_cxcywh(union).astype(np.float32), rng)
            # Move every box as the union moved: the crop is an affine map of each axis.
            old, new = union, cxcywh_to_xyxy(u)
            sx = (new[:, 2] - new[:, 0]) / np.maximum(old[:, 2] - old[:, 0], 1e-6)
            sy = (new[:, 3] - new[:, 1]) / np.maximum(old[:, 3] - old[:, 1], 1e-6)
            moved = np.stack([new[:, None, 0] + (xyxy[..., 0] - old[:, None, 0]) * sx[:, None],
                              new[:, None, 1] + (xyxy[..., 1] - old[:, None, 1]) * sy[:, None],
                              new[:, None, 0] + (xyxy[..., 2] - old[:, None, 0]) * sx[:, None],
                              new[:, None, 1] + (xyxy[..., 3] - old[:, None, 1]) * sy[:, None]], -1)
            b = xyxy_to_cxcywh(np.clip(moved, 0, 1).reshape(-1, 4)).reshape(boxes.shape).astype(np.float32)
            out_f.append(f)
            out_b.append(np.where(valid[..., None], b, 0.0).astype(np.float32))
    for _ in range(config.paste):
        f, b = paste_views(features, boxes, rng)
        out_f.append(f)
        out_b.append(b)
    size = max(b.shape[1] for b in out_b)
    out_b = [np.pad(b, ((0, 0), (0, size - b.shape[1]), (0, 0))) for b in out_b]
    return np.concatenate(out_f), np.concatenate(out_b)


def paste_views(features: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, *, tries: int = 8
                ) -> tuple[np.ndarray, np.ndarray]:
    """Copy-paste on the feature grid (Dwibedi et al. 2017, Ghiasi et al. 2021, on cached features
    instead of pixels): each photo gets another photo's first object (the grid cells under its box,
    scaled by 0.5-1 by nearest cell) pasted where it covers none of its own boxes, and that box.

    Photos where no place is found in ``tries`` draws keep their own boxes only. Returns
    ``(features (N, h, w, c), boxes (N, M + 1, 4))``.
    """
    features = np.asarray(features)
    boxes = np.asarray(boxes, np.float32)
    n, h, w = features.shape[:3]
    out_f = features.copy()
    out_b = np.concatenate([boxes, np.zeros((n, 1, 4), np.float32)], axis=1)
    if n < 2:
        return out_f, out_b
    xyxy = cxcywh_to_xyxy(boxes.reshape(-1, 4)).reshape(boxes.shape)
    sources = (np.arange(n) + rng.integers(1, n, size=n)) % n
    for j, i in enumerate(sources):
        if boxes[i, 0, 2] <= 0:
            continue
        x0, y0, x1, y1 = xyxy[i, 0]
        c0, r0 = int(np.floor(x0 * w)), int(np.floor(y0 * h))
        c1, r1 = max(int(np.ceil(x1 * w)), c0 + 1), max(int(np.ceil(y1 * h)), r0 + 1)
        scale = rng.uniform(0.5, 1.0)
        pw, ph = max(1, int(round((c1 - c0) * scale))), max(1, int(round((r1 - r0) * scale)))
        if pw > w // 2 + 1 or ph > h // 2 + 1:
            continue
        own = xyxy[j][boxes[j, :, 2] > 0]
        for _ in range(tries):
            left, top = int(rng.integers(0, w - pw + 1)), int(rng.integers(0, h - ph + 1))
            place = np.array([left / w, top / h, (left + pw) / w, (top + ph) / h])
            if len(own) and np.any((np.minimum(own[:, 2], place[2]) > np.maximum(own[:, 0], place[0]))
                                   & (np.minimum(own[:, 3], place[3]) > np.maximum(own[:, 1], place[1]))):
                continue
            rows = r0 + (np.arange(ph) * (r1 - r0)) // ph
            cols = c0 + (np.arange(pw) * (c1 - c0)) // pw
            out_f[j, top:top + ph, left:left + pw] = features[i][rows[:, None], cols[None, :]]
            # The object's box inside its cells, moved and scaled with them.
            bx = [(x0 * w - c0) * pw / (c1 - c0) + left, (y0 * h - r0) * ph / (r1 - r0) + top,
                  (x1 * w - c0) * pw / (c1 - c0) + left, (y1 * h - r0) * ph / (r1 - r0) + top]
            pasted = np.clip(np.array(bx) / [w, h, w, h], 0, 1)[None]
            out_b[j, -1] = xyxy_to_cxcywh(pasted)[0]
            break
    return out_f, out_b


def views_dataset(features: np.ndarray, boxes: np.ndarray, config: BoxTrainConfig,
                   grid: tuple[int, int] | None = None, *, weights: np.ndarray | None = None):
    """A Keras ``PyDataset`` giving new feature views (flips, crops) every epoch, shuffled; with
    ``grid``, each batch's targets are :func:`cell_targets_of` its boxes. For the ``"centres"``
    head, ``boxes`` is ``(N, M, 4)`` (:func:`pad_boxes`), the views are :func:`several_box_views`
    and the targets :func:`centre_targets_of`.

    ``weights`` ``(N, K)`` (``"centres"`` head, no pasted views) trains K heads at once on the same
    views: each batch's targets are given K times (``[centres, boxes] * K``) with the sample weights
    of its photos' column ``k`` for head ``k``'s pair (every view of photo ``i`` weighs ``weights[i, k]``).
    """
    import keras

    from detector.box_losses import centre_targets_of

    several = config.head == "centres"
    if weights is not None:
        weights = np.asarray(weights, np.float32)
        if not several or config.paste:
            raise ValueError("weights need the 'centres' head without pasted views (a pasted object's weight "
                             f"is its source photo's). Received head={config.head!r}, paste={config.paste}")
        if weights.ndim != 2 or len(weights) != len(features) or not np.all(weights >= 0):
            raise ValueError(f"weights must be (N, K) >= 0 with N = {len(features)}. Received shape: {weights.shape}")

    class Views(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0
            self._make()

        def _make(self):
            self.x = self.y = None  # free the last epoch's views before making the next
            views = several_box_views if several else feature_views
            x, y = views(features, boxes, config, epoch=self.epoch)
            order = np.random.default_rng([config.seed, self.epoch, 1]).permutation(len(x))
            # Kept in the cached features' dtype (float16): four views of 700 photos' VGG16
            # descriptors are 1.3 GB in float32; each batch is cast on its own.
            self.x, self.y = x[order], y[order]
            if weights is not None:  # the views are whole copies of the photos, in their order
                self.w = np.tile(weights, (len(x) // len(features), 1))[order]

        def __len__(self):
            return int(np.ceil(len(self.x) / config.batch_size))

        def __getitem__(self, index):
            part = slice(index * config.batch_size, (index + 1) * config.batch_size)
            x = self.x[part].astype(np.float32)
            if several:
                targets = centre_targets_of(self.y[part], x.shape[1:3])
                if weights is None:
                    return x, targets
                w = self.w[part]
                return (x, tuple(targets) * w.shape[1],
                        tuple(np.ascontiguousarray(w[:, k]) for k in range(w.shape[1]) for _ in targets))
            y = self.y[part] if grid is None else cell_targets_of(self.y[part], grid)
            return x, y

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


def check_box_targets(boxes: np.ndarray, n: int, *, several: bool = False) -> np.ndarray:
    """``boxes`` as float32 after checking them: ``(n, 4)``, or with ``several`` ``(n, M, 4)`` (zero
    rows are padding), normalised ``(cx, cy, w, h)`` fractions of the image."""
    boxes = np.asarray(boxes, np.float32)
    if several and (boxes.ndim != 3 or boxes.shape[0] != n or boxes.shape[2] != 4):
        raise ValueError(f"boxes must be (N, M, 4) normalised (cx, cy, w, h) with N = {n}. Received shape: "
                         f"{boxes.shape}")
    if not several and boxes.shape != (n, 4):
        raise ValueError(f"boxes must be (N, 4) normalised (cx, cy, w, h) with N = {n}. Received shape: {boxes.shape}")
    if not np.all(np.isfinite(boxes)) or boxes.min(initial=0) < 0 or boxes.max(initial=0) > 1:
        raise ValueError("boxes must be finite fractions of the image in [0, 1] (cx, cy, w, h).")
    return boxes
