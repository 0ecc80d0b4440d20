"""Training scenes with several objects, composed from the user's photos of one (pixel copy-paste).

A user's photos mostly hold one object each, so a box head trained on them sees few photos with
several. Copy-paste (Dwibedi et al. 2017; Ghiasi et al. 2021) composes more: an object cut out of
one photo (GrabCut inside its box, a soft edge) is pasted, scaled and maybe mirrored, onto another
photo of its class where it covers none of that photo's boxes; the composed photo's boxes are the
photo's own and the pasted ones. Unlike ``BoxTrainConfig.paste`` (objects pasted on the feature
grid, carrying their own photo's context), the composed photo goes through the backbone, so its
descriptors see the object in its new scene.

Measured and not the default (``BoxTrainConfig.paste_photos``; benchmarks/NOTES.md, "Copy-paste of
pixels"): on the animal photos the box model boxed single animals a little better (inside the
seed spread) and found one more of the 68 animals that stand with others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from groundwork.box_geometry import box_ioa, cxcywh_to_xyxy, xyxy_to_cxcywh
from groundwork.thread_map import thread_map

__all__ = ["paste_photos"]

#: A pasted object may lie at most this share inside another box of the scene, and a box at most
#: this share inside it: the scene's objects stay visible, and so do their boxes' targets.
MAX_OVERLAP = 0.15
#: A cut whose foreground covers less of its box than this lost the object: an ellipse instead.
MIN_FOREGROUND = 0.2
_MIN_SIDE = 12  # pixels: a smaller pasted object is not pasted
_TRIES = 20


def paste_photos(read: Callable[[int], np.ndarray], boxes: Sequence[np.ndarray], labels: Sequence[str], *,
                 sources: Sequence[int], backgrounds: Sequence[int], sets: int = 1, seed: int = 0,
                 scale: tuple[float, float] = (0.4, 1.0), max_objects: int = 2,
                 max_side: int = 256) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Compose photos with more objects from ``backgrounds`` and the objects of ``sources``.

    Parameters
    ----------
    read : callable
        ``read(row)`` -> that photo, ``(H, W, 3)`` uint8 RGB (read once per cut, on any thread, and
        once per scene).
    boxes : sequence of (k, 4) ndarrays
        Per row, its boxes, normalised ``(cx, cy, w, h)``.
    labels : sequence of str
        Per row, its class: an object is pasted only onto photos of its class.
    sources : sequence of int
        Rows whose one box is cut out (rows with another number of boxes are skipped).
    backgrounds : sequence of int
        Rows that get objects pasted, keeping their own boxes.
    sets : int >= 1
        Scenes per background (each drawn anew).
    seed : int
        Seeds every draw (which objects, where, how large) and GrabCut's k-means.
    scale : (low, high)
        A pasted object's size against its own photo's, drawn uniformly; shrunk further when it
        does not fit.
    max_objects : int >= 1
        Objects pasted onto a scene: 1 to ``max_objects``, each where it covers no box of the
        scene (:data:`MAX_OVERLAP`); a scene where none fits is not yielded.
    max_side : int
        GrabCut runs on the photo shrunk to this longer side (as ``localize``'s does).

    Yields
    ------
    row : int
        The background's row.
    image : (H, W, 3) uint8 ndarray
        The composed photo, the background's size.
    boxes : (k, 4) float32 ndarray
        Its boxes, normalised ``(cx, cy, w, h)``: the background's, then the pasted objects'.
    """
    if sets < 1 or max_objects < 1:
        raise ValueError(f"sets and max_objects must be >= 1. Received: {sets}, {max_objects}")
    if not 0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high. Received: {scale}")
    # GrabCut on every core (it releases the GIL and seeds its k-means per call: the same cuts on any thread).
    one_box = [row for row in sources if len(boxes[row]) == 1]
    pieces = thread_map(lambda row: _cutout(read(row), boxes[row][0], seed=seed + row, max_side=max_side), one_box)
    cut = {row: piece for row, piece in zip(one_box, pieces, strict=True) if piece is not None}
    rng = np.random.default_rng(seed)
    for _ in range(sets):
        for row in backgrounds:
            same = [r for r in cut if labels[r] == labels[row] and r != row]
            if not same:
                continue
            image = read(row)
            height, width = image.shape[:2]
            size = np.array([width, height, width, height], np.float64)
            scene = [b for b in cxcywh_to_xyxy(np.asarray(boxes[row], np.float64).reshape(-1, 4)) * size]
            composed = image.astype(np.float32)
            pasted = 0
            for _ in range(int(rng.integers(1, max_objects + 1))):
                crop, alpha = cut[same[int(rng.integers(len(same)))]]
                placed = _place(rng, crop.shape[:2], (height, width), scene, scale)
                if placed is None:
                    continue
                x0, y0, w, h = placed
                piece = _resize(crop.astype(np.float32), (w, h))
                mask = _resize(alpha, (w, h))[..., None]
                if rng.random() < 0.5:
                    piece, mask = piece[:, ::-1], mask[:, ::-1]
                window = composed[y0:y0 + h, x0:x0 + w]
                window[:] = mask * piece + (1 - mask) * window
                scene.append(np.array([x0, y0, x0 + w, y0 + h], np.float64))
                pasted += 1
            if pasted:
                out = np.clip(np.rint(composed), 0, 255).astype(np.uint8)
                yield row, out, xyxy_to_cxcywh(np.stack(scene) / size, dtype=np.float32)


def _place(rng: np.random.Generator, crop_hw: tuple[int, int], image_hw: tuple[int, int], scene: list,
           scale: tuple[float, float]) -> tuple[int, int, int, int] | None:
    """``(x0, y0, w, h)`` of a pasted object covering none of ``scene``'s boxes, or None."""
    height, width = image_hw
    for _ in range(_TRIES):
        s = rng.uniform(*scale)
        s = min(s, (height - 1) / crop_hw[0], (width - 1) / crop_hw[1])
        h, w = int(crop_hw[0] * s), int(crop_hw[1] * s)
        if h < _MIN_SIDE or w < _MIN_SIDE:
            return None
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        box = np.array([[x0, y0, x0 + w, y0 + h]], np.float64)
        if scene:
            others = np.stack(scene)
            if box_ioa(box, others).max() >= MAX_OVERLAP or box_ioa(others, box).max() >= MAX_OVERLAP:
                continue
        return x0, y0, w, h
    return None


def _cutout(image: np.ndarray, box: np.ndarray, *, seed: int, max_side: int):
    """The object in ``box`` (normalised ``(cx, cy, w, h)``): its crop and a soft GrabCut mask."""
    import cv2

    height, width = image.shape[:2]
    x0, y0, x1, y1 = np.rint(cxcywh_to_xyxy(np.asarray(box, np.float64)[None])[0]
                             * [width, height, width, height]).astype(int)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 - x0 < _MIN_SIDE or y1 - y0 < _MIN_SIDE:
        return None
    shrink = min(1.0, max_side / max(height, width))
    small = cv2.resize(image, (max(1, round(width * shrink)), max(1, round(height * shrink))),
                       interpolation=cv2.INTER_AREA)
    sx0, sy0 = int(x0 * shrink), int(y0 * shrink)
    sx1, sy1 = max(sx0 + 2, round(x1 * shrink)), max(sy0 + 2, round(y1 * shrink))
    mask = np.zeros(small.shape[:2], np.uint8)
    cv2.setRNGSeed(seed)
    try:
        cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), mask, (sx0, sy0, sx1 - sx0, sy1 - sy0),
                    np.zeros((1, 65)), np.zeros((1, 65)), 3, cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # a box as large as the photo leaves GrabCut no background to model
        mask[:] = cv2.GC_PR_FGD
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)[y0:y1, x0:x1]
    alpha = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.float32)
    if alpha.mean() < MIN_FOREGROUND:
        alpha = np.zeros_like(alpha)
        cv2.ellipse(alpha, ((x1 - x0) // 2, (y1 - y0) // 2), (int((x1 - x0) * 0.45), int((y1 - y0) * 0.45)),
                    0, 0, 360, 1.0, -1)
    return image[y0:y1, x0:x1].copy(), cv2.GaussianBlur(alpha, (0, 0), 1.5)


def _resize(array: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(array, size_wh, interpolation=cv2.INTER_AREA if size_wh[0] < array.shape[1]
                      else cv2.INTER_LINEAR)
