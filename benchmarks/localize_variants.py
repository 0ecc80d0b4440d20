"""Which way of turning class maps into boxes localises best, and how fast is it?

Runs a trained classifier over hand-boxed photos (default: the block photos' ``valid/`` and
``valid_boxes.json``), makes one class activation map per photo (the ground-truth class's map,
Choe et al.'s "GT-known" protocol; ``--class-source predicted`` for the predicted class) and
scores boxes from these variants:

- ``thr=T``: largest component of the map thresholded at T (fraction of the normalised map),
- ``otsu``: the same at Otsu's threshold,
- ``calibrated-2fold``: threshold calibrated (MaxBoxAcc protocol, IoU 0.3/0.5/0.7) on one half
  of the photos and applied to the other, both ways round (an honest estimate of calibration),
- ``grabcut``: the map as GrabCut seeds (levels from the default threshold 0.2), box of the
  refined region (GrabCut at 320 px, 5 iterations); ``grabcut-cal-2fold``: seeds from the
  2-fold calibrated threshold; ``...-240px-3it``: the cheaper GrabCut setting,
- ``flip-avg,thr=0.2``: the map averaged with the map of the mirrored photo (a second forward pass),
- ``multi-view,...``: the maps ``boxstrap localize`` uses by default (``LocalizeConfig.scales`` and
  ``flip``: the network rebuilt at 1.5x its input size, map averaged with the mirrored photo's;
  :func:`classifier.multi_view_maps.multi_view_maps`), thresholded at 0.2 and at the 2-fold calibrated
  threshold, and as GrabCut seeds (``grabcut-multi-view-cal-2fold``),
- ``ddt``: DDT co-localisation (first principal component of the class convolution's input
  descriptors over all photos of a class, sign oriented by the CAMs), box of the positive region.

Metrics: CorLoc (top box IoU >= 0.5), mean IoU of the top box, and per map kind MaxBoxAcc
(IoU 0.5, largest box) and MaxBoxAccV2 (mean over IoU 0.3/0.5/0.7, all boxes, best threshold
per IoU). Throughput: photos/s including reading, preprocessing and the forward pass (batch 1),
and the share of that time spent outside the network.

Usage::

    python benchmarks/localize_variants.py MODEL_DIR [--data DIR] [--boxes JSON]
        [--limit N] [--review-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _common import PHOTOS as DATA

from classifier.multi_view_maps import multi_view_maps
from groundwork.box_scores import top_box_iou
from localize.boxes import heatmap_to_boxes
from localize.calibration import calibrate_threshold, save_calibration
from localize.cam import class_activation_map
from localize.ddt import ddt_maps
from localize.pseudo_boxes import LocalizeConfig
from localize.refine import grabcut_refine
from localize.scoring import box_accuracy

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
MULTI_VIEW = LocalizeConfig()  # its scales and flip: what `boxstrap localize` uses by default

log = logging.getLogger("localize_variants")


@dataclass
class Timing:
    """Seconds spent per stage, summed over photos."""

    read: float = 0.0
    preprocess: float = 0.0
    network: float = 0.0
    cam: float = 0.0
    variant: dict[str, float] = field(default_factory=dict)
    extra_network: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float, network: bool = False) -> None:
        table = self.extra_network if network else self.variant
        table[name] = table.get(name, 0.0) + seconds


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    variant: str
    corloc: float
    mean_iou: float
    max_box_acc: float | None
    max_box_acc_v2: float | None
    images_per_s: float
    outside_network: float


def score_boxes(pred: Sequence[np.ndarray], gt: Sequence[np.ndarray]) -> tuple[float, float]:
    """(CorLoc, mean IoU) of each photo's first box against its ground truth."""
    ious = top_box_iou(pred, gt)
    return float(np.mean(ious >= 0.5)), float(np.mean(ious))


def throughput(n: int, timing: Timing, variant: str, network_kinds: Sequence[str] = ()) -> tuple[float, float]:
    """(photos per second, share of time outside the network) for one variant.

    The shared stages (read, preprocess, forward pass, CAM) count for every variant, plus the
    variant's own post-processing and any extra forward passes it needs (``network_kinds``).
    """
    network = timing.network + sum(timing.extra_network.get(k, 0.0) for k in network_kinds)
    total = timing.read + timing.preprocess + timing.cam + network + timing.variant.get(variant, 0.0)
    return (n / total if total > 0 else float("nan")), (1.0 - network / total if total > 0 else float("nan"))


def two_fold_thresholds(heatmaps: Sequence[np.ndarray], gt: Sequence[np.ndarray],
                        sizes: Sequence[tuple[int, int]]) -> tuple[list[float], list[float]]:
    """Per photo, a threshold calibrated on the *other* half (even/odd indices).

    Returns the threshold per photo and the two calibrated thresholds (fit on evens, on odds).
    """
    n = len(heatmaps)
    if n < 2:
        raise ValueError(f"two-fold calibration needs at least 2 photos. Received: {n}")
    halves = [list(range(0, n, 2)), list(range(1, n, 2))]
    per_photo = [0.0] * n
    fitted = []
    for fit, apply in (halves, halves[::-1]):
        cal = calibrate_threshold([heatmaps[i] for i in fit], [gt[i] for i in fit],
                                  image_sizes=[sizes[i] for i in fit])
        fitted.append(cal.threshold)
        for i in apply:
            per_photo[i] = cal.threshold
    return per_photo, fitted


def format_table(rows: Sequence[Row]) -> str:
    """The results as a fixed-width text table."""
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    header = ("variant", "CorLoc", "mean IoU", "MaxBoxAcc", "MaxBoxAccV2", "img/s", "outside net")
    lines = [tuple(header)] + [
        (r.variant, fmt(r.corloc), fmt(r.mean_iou), fmt(r.max_box_acc), fmt(r.max_box_acc_v2),
         f"{r.images_per_s:.2f}", f"{100 * r.outside_network:.0f}%")
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for k, line in enumerate(lines):
        out.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def timed(timing: Timing, name: str, fn: Callable, *args, network: bool = False, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    timing.add(name, time.perf_counter() - start, network=network)
    return result


def with_features(model):
    """The model with a third output ``features``: the input of its ``class_map`` layer
    (the descriptors DDT uses); ``None`` if the model has no such layer."""
    import keras

    try:
        features = model.get_layer("class_map").input
    except (ValueError, AttributeError) as error:
        log.warning("no DDT: cannot reach the class_map layer's input (%s)", error)
        return None
    names = list(getattr(model, "output_names", None) or [t.name for t in model.outputs])
    return keras.Model(model.inputs, {"features": features, **dict(zip(names, model.outputs, strict=True))})


def run_model(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Forward pass; outputs by name (``probabilities``, ``class_map``, maybe ``features``)."""
    outputs = model.predict_on_batch(x)
    if isinstance(outputs, dict):
        return {k: np.asarray(v) for k, v in outputs.items()}
    names = list(getattr(model, "output_names", None) or [t.name for t in model.outputs])
    return {k: np.asarray(v) for k, v in zip(names, outputs, strict=True)}


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def benchmark(model_dir: Path, data: Path, boxes_json: Path, *, limit: int | None = None,
              class_source: str = "gt", review_dir: Path | None = None,
              save_calibration_to_model: bool = False,
              review_variant: str = "grabcut-cal-2fold") -> tuple[list[Row], dict]:
    """Run every variant; return the table rows and a dict of extra facts (accuracy, thresholds)."""
    from classifier.trained_model import load_trained_model
    from datasets.annotations import read_annotations

    trained = load_trained_model(model_dir)
    pre = trained.preprocessing
    anns = read_annotations(boxes_json)
    anns = [a for a in anns if a.boxes][: limit or None]
    if not anns:
        raise ValueError(f"{boxes_json} has no image with boxes")
    net = with_features(trained.model) or trained.model
    features: list[np.ndarray] = []
    classes: list[int] = []
    timing = Timing()
    heat: dict[str, list[np.ndarray]] = {"cam": [], "flip-avg": [], "multi-view": [], "ddt": []}
    boxes: dict[str, list[np.ndarray]] = {}
    gts, sizes, correct, forward = [], [], 0, []
    photos, inputs = [], []  # for the multi-view maps, one call over all photos (the rebuilt nets are reused)
    root = boxes_json.parent if data is None else data

    for k, ann in enumerate(anns):
        start = time.perf_counter()
        rgb = read_rgb(root / ann.image)
        timing.read += time.perf_counter() - start
        size = rgb.shape[:2]
        gt = ann.xyxy()
        if size != (ann.height, ann.width):
            sy, sx = size[0] / ann.height, size[1] / ann.width
            gt = gt * np.array([sx, sy, sx, sy])
        gts.append(gt)
        sizes.append(size)

        start = time.perf_counter()
        x = pre.apply(pre.resize(rgb))[None]
        timing.preprocess += time.perf_counter() - start
        start = time.perf_counter()
        out = run_model(net, x)
        forward.append(time.perf_counter() - start)
        timing.network += forward[-1]
        predicted = int(np.argmax(out["probabilities"][0]))
        correct += trained.labels[predicted] == ann.label
        c = trained.labels.index(ann.label) if class_source == "gt" and ann.label in trained.labels else predicted

        start = time.perf_counter()
        cam, _ = class_activation_map(out["class_map"][0], image_size=pre.input_size, class_index=c)
        timing.cam += time.perf_counter() - start
        heat["cam"].append(cam)
        classes.append(c)
        if "features" in out:
            features.append(out["features"][0])

        for t in THRESHOLDS:
            name = f"thr={t:g}"
            b, _ = timed(timing, name, heatmap_to_boxes, cam, threshold=t, image_size=size)
            boxes.setdefault(name, []).append(b)
        b, _ = timed(timing, "otsu", heatmap_to_boxes, cam, threshold="otsu", image_size=size)
        boxes.setdefault("otsu", []).append(b)
        b, s = timed(timing, "grabcut", grabcut_refine, rgb, cam)
        boxes.setdefault("grabcut", []).append(b)

        # flip-averaged map: a second forward pass on the mirrored photo
        start = time.perf_counter()
        out_flip = run_model(trained.model, x[:, :, ::-1].copy())
        timing.add("flip-avg", time.perf_counter() - start, network=True)
        start = time.perf_counter()
        flip_map = (out["class_map"][0] + out_flip["class_map"][0][:, ::-1]) / 2
        cam_flip, _ = class_activation_map(flip_map, image_size=pre.input_size, class_index=c)
        b, _ = heatmap_to_boxes(cam_flip, threshold=0.2, image_size=size)
        timing.add("flip-avg,thr=0.2", time.perf_counter() - start)
        heat["flip-avg"].append(cam_flip)
        boxes.setdefault("flip-avg,thr=0.2", []).append(b)

        photos.append(rgb)
        inputs.append(x[0])
        log.debug("photo %d/%d done", k + 1, len(anns))

    n = len(anns)
    start = time.perf_counter()
    mv_maps = multi_view_maps(trained.model, np.stack(inputs), scales=MULTI_VIEW.scales, flip=MULTI_VIEW.flip,
                              images=photos, preprocessing=pre, batch_size=4)
    timing.add("multi-view", time.perf_counter() - start, network=True)
    for maps, c, size in zip(mv_maps, classes, sizes, strict=True):
        start = time.perf_counter()
        cam_mv, _ = class_activation_map(maps, image_size=pre.input_size, class_index=c)
        b, _ = heatmap_to_boxes(cam_mv, threshold=0.2, image_size=size)
        timing.add("multi-view,thr=0.2", time.perf_counter() - start)
        heat["multi-view"].append(cam_mv)
        boxes.setdefault("multi-view,thr=0.2", []).append(b)
    del photos, inputs
    if len(features) == n:
        start = time.perf_counter()
        ddt = [np.zeros((1, 1))] * n
        for c in sorted(set(classes)):
            members = [i for i in range(n) if classes[i] == c]
            for i, p in zip(members, ddt_maps([features[i] for i in members],
                                              reference=[heat["cam"][i] for i in members]), strict=True):
                ddt[i] = np.maximum(p, 0)
        boxes["ddt"] = [heatmap_to_boxes(p, threshold=1e-6, image_size=size)[0] for p, size in zip(ddt, sizes, strict=True)]
        timing.add("ddt", time.perf_counter() - start)
        heat["ddt"] = ddt
    # Calibration itself is a one-off cost per model; per photo only the thresholding counts.
    start = time.perf_counter()
    per_photo, cal_thresholds = two_fold_thresholds(heat["cam"], gts, sizes)
    calibration_s = time.perf_counter() - start
    boxes["calibrated-2fold"] = [
        timed(timing, "calibrated-2fold", heatmap_to_boxes, m, threshold=t, image_size=size)[0]
        for m, t, size in zip(heat["cam"], per_photo, sizes, strict=True)]
    # GrabCut seeded from the calibrated threshold (photos read again; reading is counted above)
    for name, kwargs in (("grabcut-cal-2fold", {}), ("grabcut-cal-2fold-240px-3it", {"max_side": 240, "iterations": 3})):
        boxes[name] = [
            timed(timing, name, grabcut_refine, read_rgb(root / ann.image), m, threshold=t, **kwargs)[0]
            for ann, m, t in zip(anns, heat["cam"], per_photo, strict=True)]

    mv_per_photo, mv_thresholds = two_fold_thresholds(heat["multi-view"], gts, sizes)
    boxes["multi-view-cal-2fold"] = [
        timed(timing, "multi-view-cal-2fold", heatmap_to_boxes, m, threshold=t, image_size=size)[0]
        for m, t, size in zip(heat["multi-view"], mv_per_photo, sizes, strict=True)]
    boxes["grabcut-multi-view-cal-2fold"] = [
        timed(timing, "grabcut-multi-view-cal-2fold", grabcut_refine, read_rgb(root / ann.image), m, threshold=t)[0]
        for ann, m, t in zip(anns, heat["multi-view"], mv_per_photo, strict=True)]
    if save_calibration_to_model:
        # the maps `boxstrap localize` thresholds by default (LocalizeConfig.scales / flip)
        calibration = calibrate_threshold(heat["multi-view"], gts, image_sizes=sizes)
        path = save_calibration(calibration, trained.directory)
        cal_note = f"threshold {calibration.threshold:g} (all {n} photos) saved to {path}"
    acc = {}
    for kind, maps in heat.items():
        if maps:
            v1 = box_accuracy(maps, gts, iou_thresholds=(0.5,), multi_contour=False, image_sizes=sizes)
            v2 = box_accuracy(maps, gts, multi_contour=True, image_sizes=sizes)
            acc[kind] = (v1.max_accuracy[0], v2.mean_max_accuracy, v1.best_thresholds[0], v2.best_thresholds)

    rows = []
    for name, per_image in boxes.items():
        kind = next((k for k in ("flip-avg", "multi-view", "ddt") if name.startswith(k)), "cam")
        kind = "multi-view" if name.startswith("grabcut-multi-view") else kind
        corloc, miou = score_boxes(per_image, gts)
        extra = {"flip-avg": ["flip-avg"], "multi-view": ["multi-view"]}.get(kind, [])
        ips, outside = throughput(n, timing, name, extra)
        has_acc = not name.startswith("grabcut") and kind in acc
        rows.append(Row(name, corloc, miou, acc[kind][0] if has_acc else None,
                        acc[kind][1] if has_acc else None, ips, outside))
    if review_dir is not None:
        write_review(review_dir, review_variant, [root / a.image for a in anns], boxes[review_variant], gts)
    facts = {
        "photos": n,
        "classification accuracy": correct / n,
        "class maps of": "ground-truth class" if class_source == "gt" else "predicted class",
        "calibrated thresholds (fit on evens, on odds)": cal_thresholds,
        "best thresholds MaxBoxAcc / V2 (per IoU 0.3,0.5,0.7)": {k: (v[2], v[3]) for k, v in acc.items()},
        "median forward pass ms (batch 1)": round(1000 * float(np.median(forward)), 1),
        "calibration time s (both folds, one-off)": round(calibration_s, 2),
        "multi-view": f"scales {MULTI_VIEW.scales}, flip {MULTI_VIEW.flip}",
        "calibrated thresholds multi-view (fit on evens, on odds)": mv_thresholds,
        "input size": pre.input_size,
    }
    if save_calibration_to_model:
        facts["calibration"] = cal_note
    return rows, facts


def variant_names(ddt: bool = True) -> list[str]:
    """Names of the variants a run produces (table order may differ)."""
    names = [f"thr={t:g}" for t in THRESHOLDS] + ["otsu", "grabcut", "flip-avg,thr=0.2", "multi-view,thr=0.2"]
    names += ["ddt"] if ddt else []
    return names + ["calibrated-2fold", "grabcut-cal-2fold", "grabcut-cal-2fold-240px-3it",
                    "multi-view-cal-2fold", "grabcut-multi-view-cal-2fold"]


def write_review(review_dir: Path, variant: str, paths: Sequence[Path], boxes: Sequence[np.ndarray],
                 gts: Sequence[np.ndarray]) -> list[Path]:
    """Contact sheets of one variant's boxes, worst IoU with the ground truth first (the number
    on each box and under each thumbnail is that IoU)."""
    from datasets.review import ReviewItem, render_contact_sheets, write_png

    ious = top_box_iou(boxes, gts)
    items = [ReviewItem(read_rgb(path), b[:1], np.full(min(1, len(b)), iou), path.name, confidence=float(iou)).shrunk(200)
             for path, b, iou in zip(paths, boxes, ious, strict=True)]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in variant)
    return [write_png(Path(review_dir) / f"{safe}_sheet_{i:02d}.png", sheet)
            for i, sheet in enumerate(render_contact_sheets(items, columns=8, rows=6, thumb_size=200))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="trained model directory (boxstrap train)")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder the boxes JSON's file paths are relative to (default: the JSON's folder)")
    parser.add_argument("--boxes", type=Path, default=DATA / "valid_boxes.json", help="hand-checked boxes JSON")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos")
    parser.add_argument("--class-source", choices=("gt", "predicted"), default="gt")
    parser.add_argument("--review-dir", type=Path, default=None,
                        help="write contact sheets of one variant's boxes here (worst IoU first)")
    parser.add_argument("--review-variant", default="grabcut-cal-2fold", help="the variant to review")
    parser.add_argument("--save-calibration", action="store_true",
                        help="calibrate the CAM threshold on all photos and save it into MODEL_DIR "
                             "(localize_calibration.json, read by `boxstrap localize`)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.review_variant not in variant_names():
        parser.error(f"--review-variant must be one of {variant_names()}. Received: {args.review_variant!r}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    start = time.perf_counter()
    rows, facts = benchmark(args.model_dir, args.data, args.boxes, limit=args.limit,
                            class_source=args.class_source, review_dir=args.review_dir,
                            save_calibration_to_model=args.save_calibration,
                            review_variant=args.review_variant)
    print(format_table(rows))
    print()
    for key, value in facts.items():
        print(f"{key}: {value}")
    print(f"wall time: {time.perf_counter() - start:.1f} s")
    if args.review_dir is not None:
        print(f"wrote contact sheets to {args.review_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
