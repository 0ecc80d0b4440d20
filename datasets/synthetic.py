"""Synthetic photo-like scenes of the two Math-U-See blocks, with exact ground-truth boxes.

``"one"`` is a small green cube, ``"ten"`` a blue rod of ten joined cubes. Each scene draws the
block as a shaded 3-D box (orthographic view from a random elevation and azimuth; the visible
faces lit by one light with ambient fill; grooves between the cubes and a recessed square on top
of each) with a soft cast shadow, on a textured background (wood, carpet, fabric, granite, paper,
tiles, gradient) with optional distractor shapes, then global lighting (brightness, colour cast,
vignette) and phone-camera effects (defocus blur, sensor noise, JPEG).

The box is the tight box around the pixels the block covers by at least half (computed at 4x
supersampling), shadow excluded, in the continuous pixel-edge convention of
:mod:`datasets.annotations` (``xmax`` is one past the last covered column). Everything is drawn
from the ``rng`` given, so a seed fixes the scene.

``write_demo_data`` writes ``OUT/<label>/<label>_NNNN.jpg`` (a folder per class, like a phone's
albums), ``OUT/boxes.json`` (boxes JSON) and ``OUT/demo_data_config.json``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from datasets.annotations.annotation import ImageAnnotation
from datasets.annotations.boxes_json import write_boxes_json
from datasets.textures import KINDS, texture
from groundwork.atomic import write_bytes
from groundwork.config import save_config
from groundwork.progress import progress_bar

__all__ = ["DemoDataConfig", "LABELS", "render_scene", "render_scene_objects", "write_demo_data"]

log = logging.getLogger(__name__)

LABELS = ("one", "ten")
BACKGROUNDS = KINDS  # the textured backgrounds a scene is drawn on (datasets.textures)
_BLOCK_RGB = {"one": (0.13, 0.55, 0.25), "ten": (0.12, 0.38, 0.80)}
_LENGTH = {"one": 1, "ten": 10}
_SS = 4  # supersampling factor of the block layer


@dataclass(frozen=True)
class DemoDataConfig:
    """How ``boxstrap demo-data`` renders its scenes (saved as ``demo_data_config.json``).

    Parameters
    ----------
    per_class : int
        Scenes per class label.
    size : (height, width)
        Image size in pixels.
    seed : int
        Scene ``i`` of class ``c`` is drawn from ``numpy.random.default_rng([seed, c, i])``.
    distractors : bool
        Draw a few random shapes of other colours on some backgrounds.
    jpeg_quality : int
        Quality of the written JPEG files (each scene is also JPEG-degraded at a random quality).
    objects : int
        Most blocks in a scene: scene ``i`` holds ``1 + i % objects`` blocks of its class (fewer when
        they do not fit apart), every one boxed in ``boxes.json``; 1 (the default) gives the
        one-block scenes of :func:`render_scene`.
    """

    per_class: int = 60
    size: tuple[int, int] = (480, 640)
    seed: int = 0
    distractors: bool = True
    jpeg_quality: int = 92
    objects: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.per_class, bool) or not isinstance(self.per_class, int) or self.per_class < 1:
            raise ValueError(f"per_class must be a positive int. Received: {self.per_class!r}")
        _check_size(self.size)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int. Received: {self.seed!r}")
        if not isinstance(self.jpeg_quality, int) or not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be an int in 1..100. Received: {self.jpeg_quality!r}")
        if isinstance(self.objects, bool) or not isinstance(self.objects, int) or not 1 <= self.objects <= 8:
            raise ValueError(f"objects must be an int in 1..8. Received: {self.objects!r}")
        object.__setattr__(self, "size", tuple(self.size))


def render_scene(label: str, *, size: tuple[int, int] = (480, 640), rng: np.random.Generator,
                 distractors: bool = True, with_mask: bool = False):
    """Render one scene of block ``label`` and return the image and its exact box.

    Parameters
    ----------
    label : {"one", "ten"}
    size : (height, width)
        At least 64 x 64.
    rng : numpy.random.Generator
        Source of every random choice; the same generator state gives the same scene.
    distractors : bool
        Allow random shapes of other colours on the background.
    with_mask : bool
        Also return the block's coverage (the fraction of each pixel the block covers).

    Returns
    -------
    rgb : (H, W, 3) uint8 ndarray
    box : (4,) float64 ndarray
        ``[xmin, ymin, xmax, ymax]`` around the pixels covered at least half, continuous edges.
    mask : (H, W) float32 ndarray in [0, 1]
        Only when ``with_mask``.

    Raises
    ------
    ValueError
        If ``label`` is not one of :data:`LABELS` or ``size`` is invalid.
    TypeError
        If ``rng`` is not a ``numpy.random.Generator``.

    Examples
    --------
    >>> rgb, box = render_scene("one", size=(96, 128), rng=np.random.default_rng(0))
    >>> rgb.shape, rgb.dtype, box.shape
    ((96, 128, 3), dtype('uint8'), (4,))
    """
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}. Received: {label!r}")
    height, width = _check_size(size)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator. Received: {type(rng).__name__}")
    rgb, (coverage,) = _render(label, height, width, rng, distractors)
    box = _box_of(coverage)
    return (rgb, box, coverage) if with_mask else (rgb, box)


def render_scene_objects(label: str, count: int, *, size: tuple[int, int] = (480, 640),
                         rng: np.random.Generator, distractors: bool = True):
    """Render a scene of up to ``count`` blocks of ``label`` and return the image and every box.

    The first block and the scene are the ones :func:`render_scene` draws from the same ``rng``
    state; the other blocks come from a generator spawned from it and are placed where their
    boxes overlap no other block's (fewer when the image has no room left).

    Returns
    -------
    rgb : (H, W, 3) uint8 ndarray
    boxes : (k, 4) float64 ndarray
        One box per block drawn, ``1 <= k <= count``, the first :func:`render_scene`'s.

    Examples
    --------
    >>> rgb, boxes = render_scene_objects("one", 3, size=(240, 320), rng=np.random.default_rng(1))
    >>> rgb.shape, boxes.shape
    ((240, 320, 3), (3, 4))
    """
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}. Received: {label!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an int >= 1. Received: {count!r}")
    height, width = _check_size(size)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator. Received: {type(rng).__name__}")
    more_rng = rng.spawn(1)[0]
    rgb, coverages = _render(label, height, width, rng, distractors, more=count - 1, more_rng=more_rng)
    return rgb, np.stack([_box_of(c) for c in coverages])


def _box_of(coverage: np.ndarray) -> np.ndarray:
    """The box around the pixels a block covers at least half, continuous edges."""
    ys, xs = np.nonzero(coverage >= 0.5)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def write_demo_data(out: str | os.PathLike, config: DemoDataConfig | None = None, *,
                    progress: bool = True, overwrite: bool = False) -> Path:
    """Render ``config.per_class`` scenes per label into ``out`` and return ``out/boxes.json``.

    Writes ``out/<label>/<label>_NNNN.jpg``, ``out/boxes.json`` (``file`` relative to ``out``,
    inclusive pixel boxes) and ``out/demo_data_config.json``, each atomically. Files of the same
    names are replaced only when an earlier run wrote them (``demo_data_config.json`` is there) or
    ``overwrite`` is true; nothing else in ``out`` is touched (other ``.jpg`` files in the class
    folders, left by an earlier run, are logged as a warning since ``boxes.json`` omits them).

    Raises
    ------
    NotADirectoryError
        If ``out`` exists and is not a folder.
    FileExistsError
        If ``out`` holds files of the names it writes that no earlier run of it wrote (someone's
        photos or boxes), and ``overwrite`` is false.
    TypeError
        If ``config`` is not a :class:`DemoDataConfig`.
    """
    config = DemoDataConfig() if config is None else config
    if not isinstance(config, DemoDataConfig):
        raise TypeError(f"config must be a DemoDataConfig. Received: {type(config).__name__}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out must be a folder. Received: {out} (a file)")
    height, width = config.size
    jobs = [(c, label, i) for c, label in enumerate(LABELS) for i in range(config.per_class)]
    if not overwrite and not (out / "demo_data_config.json").is_file():
        names = ["boxes.json", *(f"{label}/{label}_{i:04d}.jpg" for _, label, i in jobs)]
        clashing = [name for name in names if (out / name).exists()]
        if clashing:
            raise FileExistsError(f"{out} already holds {len(clashing)} file(s) demo-data would replace (e.g. "
                                  f"{clashing[0]}) that no earlier demo-data run wrote (no demo_data_config.json). "
                                  "Choose an empty folder, or pass --overwrite to replace them.")
    start = time.perf_counter()
    annotations = []
    for c, label, i in progress_bar(jobs, desc="demo scenes", unit="img", enabled=progress):
        rng = np.random.default_rng([config.seed, c, i])
        if config.objects == 1:
            rgb, box = render_scene(label, size=config.size, rng=rng, distractors=config.distractors)
            boxes = box[None]
        else:
            rgb, boxes = render_scene_objects(label, 1 + i % config.objects, size=config.size, rng=rng,
                                              distractors=config.distractors)
        name = f"{label}/{label}_{i:04d}.jpg"
        ok, jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
        if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
            raise RuntimeError(f"OpenCV could not encode {name} as JPEG")
        write_bytes(out / name, jpeg.tobytes())
        annotations.append(ImageAnnotation.from_arrays(name, width, height, boxes, [label] * len(boxes), label=label))
    elapsed = time.perf_counter() - start
    written = {a.image for a in annotations}
    stale = sorted(p.relative_to(out).as_posix() for label in LABELS for p in (out / label).glob("*.jpg")
                   if p.relative_to(out).as_posix() not in written)
    if stale:
        log.warning("%s holds %d images boxes.json does not list (from an earlier run?), e.g. %s; "
                    "remove them or use a fresh folder", out, len(stale), stale[0])
    boxes_path = write_boxes_json(annotations, out / "boxes.json", labels=LABELS)
    save_config(config, out / "demo_data_config.json")
    log.info("rendered %d scenes (%dx%d) in %.1f s (%.1f scenes/s); wrote %s", len(jobs), width, height,
             elapsed, len(jobs) / max(elapsed, 1e-9), boxes_path)
    return boxes_path


# --- scene ------------------------------------------------------------------------------------

@dataclass
class _Block:
    """One block placed in a scene: its geometry in pixels and how it is lit and shadowed."""

    n: int
    unit: float
    corners: np.ndarray
    offset: np.ndarray
    colour: np.ndarray
    shadow_strength: float
    shadow_blur: float
    sheen: np.ndarray | None = None


@dataclass(frozen=True)
class _Camera:
    forward: np.ndarray
    up: np.ndarray

    def project(self, p: np.ndarray) -> np.ndarray:
        return np.stack([p @ np.array([1.0, 0, 0]), -(p @ self.up)], axis=-1)


def _place_block(label: str, height: int, width: int, rng: np.random.Generator, camera: _Camera | None = None,
                 light: np.ndarray | None = None, avoid: list | None = None, tries: int = 30):
    """A block of ``label`` placed in the image, drawn from ``rng``; with ``camera`` and ``light``
    given (a further block of the scene) placed where its box overlaps none of ``avoid``'s (None
    when no place is found). Returns ``(block, camera, light)``."""
    short = min(height, width)
    n = _LENGTH[label]
    for _ in range(tries if avoid else 1):
        # Geometry: block of n unit cubes along x, lying on the table (z up), seen from elevation e.
        unit = short * (rng.uniform(0.07, 0.26) if n == 1 else rng.uniform(0.05, 0.11))
        if camera is None:
            elev = np.radians(rng.uniform(80, 90) if rng.random() < 0.25 else rng.uniform(35, 78))
            camera = _Camera(np.array([0.0, np.cos(elev), -np.sin(elev)]), np.array([0.0, np.sin(elev), np.cos(elev)]))
        azim = rng.uniform(0, 2 * np.pi)
        rot = np.array([[np.cos(azim), -np.sin(azim), 0], [np.sin(azim), np.cos(azim), 0], [0, 0, 1]])
        corners = np.array([[x, y, z] for x in (0, n) for y in (0, 1) for z in (0, 1)], float)
        corners = (corners - [n / 2, 0.5, 0.5]) @ rot.T * unit  # centred, rotated, in pixels
        if light is None:
            light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.8, 2.0)])
            light /= np.linalg.norm(light)
        pts = camera.project(corners)
        lo, hi = pts.min(0), pts.max(0)
        margin = 4.0
        span = np.array([width, height]) - 2 * margin - (hi - lo)
        if np.any(span < 0):  # too big for this viewpoint: shrink to fit
            k = float(np.min((np.array([width, height]) - 2 * margin) / (hi - lo)))
            corners, pts, lo, hi = corners * k, pts * k, lo * k, hi * k
            span = np.maximum(np.array([width, height]) - 2 * margin - (hi - lo), 0)
        offset = margin - lo + rng.uniform(0, 1, 2) * span
        box = np.concatenate([lo + offset, hi + offset])
        if avoid and any(box[0] < b[2] + margin and b[0] < box[2] + margin and box[1] < b[3] + margin
                         and b[1] < box[3] + margin for b in avoid):
            continue
        colour = np.array(_BLOCK_RGB[label]) * rng.uniform(0.85, 1.15, 3)
        shadow_strength = rng.uniform(0.25, 0.6)
        shadow_blur = unit * rng.uniform(0.15, 0.5)
        return _Block(n, unit, corners, offset, colour, shadow_strength, shadow_blur), camera, light
    return None, camera, light


def _render(label: str, height: int, width: int, rng: np.random.Generator, distractors: bool,
            draw_block: bool = True, more: int = 0, more_rng: np.random.Generator | None = None
            ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Image and each block's coverage. ``draw_block=False`` gives the same scene without the
    blocks (same random draws), which the tests use to check the box is tight. ``more`` further
    blocks of the class are placed (from ``more_rng``, so the first block's scene stays the same
    scene) where they overlap no other block's box; fewer when the image has no room left."""
    bg = texture(str(rng.choice(BACKGROUNDS)), height, width, rng)
    if distractors and rng.random() < 0.6:
        _draw_distractors(bg, int(rng.integers(1, 5)), rng)
    first, camera, light = _place_block(label, height, width, rng)
    cast = rng.normal(1.0, 0.05, 3)
    brightness = rng.uniform(0.65, 1.25)
    vignette = rng.uniform(0.0, 0.35)
    blur = rng.uniform(0.0, 1.3)
    noise = rng.uniform(0.004, 0.025)
    quality = int(rng.integers(55, 93))
    first.sheen = rng.standard_normal((7, 7), dtype=np.float32)  # plastic's uneven sheen, over the block
    blocks = [first]
    for _ in range(more):
        avoid = [np.concatenate([camera.project(b.corners).min(0), camera.project(b.corners).max(0)])
                 + np.tile(b.offset, 2) for b in blocks]
        block, _, _ = _place_block(label, height, width, more_rng, camera, light, avoid)
        if block is not None:
            block.sheen = more_rng.standard_normal((7, 7), dtype=np.float32)
            blocks.append(block)

    coverages = []
    img = bg
    for block in blocks:
        if draw_block:
            # Soft shadow on the table: hull of the base and the top corners projected along the light.
            corners = block.corners
            table = corners[:, 2].min()
            ground = corners - np.outer((corners[:, 2] - table) / light[2], light)
            sigma = max(block.shadow_blur, 0.5)
            flat = camera.project(np.vstack([corners, ground])) + block.offset
            sx0, sy0 = np.maximum(np.floor(flat.min(0) - 3 * sigma).astype(int), 0)
            sx1, sy1 = np.minimum(np.ceil(flat.max(0) + 3 * sigma).astype(int), [width, height])
            if sx1 > sx0 and sy1 > sy0:  # the shadow may fall outside the image
                hull = cv2.convexHull(((flat - [sx0, sy0]) * 8).astype(np.int32))
                shadow = np.zeros((sy1 - sy0, sx1 - sx0), np.float32)
                cv2.fillConvexPoly(shadow, hull, 1.0, lineType=cv2.LINE_AA, shift=3)
                shadow = cv2.GaussianBlur(shadow, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
                img[sy0:sy1, sx0:sx1] *= (1.0 - block.shadow_strength * shadow)[:, :, None]
        layer, cover, (x0, y0, x1, y1) = _draw_block(block.corners, block.n, block.unit, camera.project,
                                                     camera.forward, light, block.colour, block.offset, height, width)
        coverage = np.zeros((height, width), np.float32)
        coverage[y0:y1, x0:x1] = cover
        coverages.append(coverage)
        if draw_block:
            layer *= (1.0 + 0.06 * cv2.resize(block.sheen, (x1 - x0, y1 - y0),
                                              interpolation=cv2.INTER_CUBIC))[:, :, None]
            sub = img[y0:y1, x0:x1]
            sub += (layer - sub) * cover[:, :, None]
    # Global lighting (vignette, brightness, colour cast), then the camera.
    dx = (np.arange(width, dtype=np.float32) - width / 2) ** 2
    dy = (np.arange(height, dtype=np.float32) - height / 2) ** 2
    r2 = (dy[:, None] + dx[None, :]) / np.float32((width / 2) ** 2 + (height / 2) ** 2)
    img *= (1 - np.float32(vignette) * r2)[:, :, None] * (brightness * cast).astype(np.float32)
    if blur > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    img += rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(noise)  # luminance noise
    np.clip(img, 0, 1, out=img)
    img *= 255
    img += 0.5
    rgb = img.astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])
    rgb = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)  # channel order is irrelevant to the codec round trip
    return rgb, coverages


def _draw_block(corners, n, unit, project, forward, light, colour, offset, height, width):
    """Block colour and coverage in a crop ``(x0, y0, x1, y1)`` of the image, drawn at _SS x supersampling."""
    pts = project(corners) + offset
    x0, y0 = np.floor(pts.min(0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    ch, cw = (y1 - y0) * _SS, (x1 - x0) * _SS
    canvas = np.zeros((ch, cw, 3), np.float32)
    mask = np.zeros((ch, cw), np.float32)

    def to_px(p3):
        return np.round((project(p3) + offset - [x0, y0]) * _SS).astype(np.int32)

    mask_poly = cv2.convexHull(to_px(corners))
    cv2.fillConvexPoly(mask, mask_poly, 1.0)
    # Faces as (origin, edge along s, edge along t, outward normal) in block coordinates.
    c = {(x, y, z): corners[i] for i, (x, y, z) in enumerate((x, y, z) for x in (0, 1) for y in (0, 1)
                                                              for z in (0, 1))}
    faces = [
        (c[0, 0, 1], c[1, 0, 1] - c[0, 0, 1], c[0, 1, 1] - c[0, 0, 1], True),    # top
        (c[0, 0, 0], c[1, 0, 0] - c[0, 0, 0], c[0, 0, 1] - c[0, 0, 0], False),   # side y=0
        (c[0, 1, 0], c[1, 1, 0] - c[0, 1, 0], c[0, 1, 1] - c[0, 1, 0], False),   # side y=1
        (c[0, 0, 0], c[0, 1, 0] - c[0, 0, 0], c[0, 0, 1] - c[0, 0, 0], None),    # end x=0
        (c[1, 0, 0], c[1, 1, 0] - c[1, 0, 0], c[1, 0, 1] - c[1, 0, 0], None),    # end x=1
    ]
    centre = corners.mean(0)
    edge_w = max(1, int(round(unit * 0.05 * _SS)))
    for origin, es, et, kind in faces:
        normal = np.cross(es, et)
        normal /= np.linalg.norm(normal)
        if np.dot(normal, origin + (es + et) / 2 - centre) < 0:
            normal = -normal
        if np.dot(normal, forward) >= -1e-6:
            continue  # faces away from the camera
        shade = 0.5 + 0.6 * max(0.0, float(normal @ light))
        base = np.clip(colour * shade, 0, 1)

        def quad(s0, s1, t0, t1, origin=origin, es=es, et=et):
            return to_px(np.array([origin + s0 * es + t0 * et, origin + s1 * es + t0 * et,
                                   origin + s1 * es + t1 * et, origin + s0 * es + t1 * et]))

        cv2.fillConvexPoly(canvas, quad(0, 1, 0, 1), base.tolist())
        dark = (base * 0.7).tolist()
        cells = n if kind is not None else 1
        for k in range(cells):
            if kind is True:  # recessed square on top of each cube
                s0, s1 = k / cells + 0.16 / cells, (k + 1) / cells - 0.16 / cells
                cv2.polylines(canvas, [quad(s0, s1, 0.16, 0.84)], True, dark, max(1, edge_w // 2),
                              cv2.LINE_AA)
                cv2.fillConvexPoly(canvas, quad(s0, s1, 0.16, 0.84), (base * 0.9).tolist())
            if k and kind is not None:  # groove between two cubes
                cv2.polylines(canvas, [quad(k / cells, k / cells, 0, 1)], False, dark, edge_w, cv2.LINE_AA)
        cv2.polylines(canvas, [quad(0, 1, 0, 1)], True, (base * 0.8).tolist(), edge_w, cv2.LINE_AA)
    canvas *= mask[:, :, None]  # keep outline strokes inside the silhouette
    cover = cv2.resize(mask, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    layer = cv2.resize(canvas, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA) / np.maximum(cover, 1e-6)[:, :, None]
    return layer, cover, (x0, y0, x1, y1)


def _draw_distractors(img: np.ndarray, count: int, rng: np.random.Generator) -> None:
    """Random flat-shaded shapes (ellipses, rectangles, polygons) of any colour, in place."""
    height, width = img.shape[:2]
    short = min(height, width)
    for _ in range(count):
        hsv = np.uint8([[[rng.integers(0, 180), rng.integers(40, 255), rng.integers(60, 255)]]])
        col = (cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0).tolist()
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = short * rng.uniform(0.03, 0.12)
        shape = rng.integers(0, 3)
        if shape == 0:
            cv2.ellipse(img, (int(cx), int(cy)), (int(r), int(r * rng.uniform(0.3, 1))),
                        rng.uniform(0, 180), 0, 360, col, -1, cv2.LINE_AA)
        else:
            k = 4 if shape == 1 else int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k)) if shape == 2 else np.arange(4) * np.pi / 2 + rng.uniform(0, 2)
            poly = np.stack([cx + r * np.cos(ang), cy + r * rng.uniform(0.4, 1) * np.sin(ang)], 1)
            cv2.fillPoly(img, [poly.astype(np.int32)], col, cv2.LINE_AA)


def _check_size(size) -> tuple[int, int]:
    if (not isinstance(size, tuple | list) or len(size) != 2
            or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in size)
            or min(size) < 64):
        raise ValueError(f"size must be (height, width), two ints of at least 64. Received: {size!r}")
    return int(size[0]), int(size[1])
