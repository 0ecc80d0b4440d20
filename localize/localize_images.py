"""``boxstrap localize``: pseudo boxes for a folder of photos, written for review and correction.

:func:`localize_images` is the stage's I/O edge: it finds the images (a prepared dataset, a folder
per class, or plain files), runs :func:`localize.forward_photos.forward_photos` (here or on Ray) and
:func:`localize.pseudo_boxes.pseudo_boxes`, and writes into ``OUT``::

    OUT/localize_config.json       LocalizeConfig
    OUT/pseudo_boxes.json          boxes JSON (with scores): the boxes every later step reads
    OUT/annotations/voc/ ...       the same boxes for CVAT, Label Studio, Roboflow, Create ML
    OUT/annotations/coco.json, annotations/yolo/, annotations/createml.json
    OUT/review.json                per image: class, confidence, box, note; lowest confidence first
    OUT/skipped.json               images that could not be read (file and reason), and left out
    OUT/contact_sheets/sheet_NNN.png   many images per page, lowest confidence first
    OUT/overlays/<image>.png       heatmap plus box per image (with ``overlays``)
    OUT/scores.json                CorLoc, IoU, MaxBoxAcc, COCO mAP when ground truth is given
    OUT/features.npy, features.json  the feature layer's descriptors for the box model (a cache: which
                                   images, in which order, from which model)

Image paths inside the annotation files are relative to the source folder, so they open next to
the photos; a corrected file is read back by ``boxstrap train-boxes`` for the next round.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.trained_model import TrainedModel, load_trained_model
from datasets.annotations import Box, ImageAnnotation, read_annotations, write_annotations
from datasets.image_files import image_files
from datasets.images import IMAGE_SUFFIXES
from datasets.manifest import FILENAME as MANIFEST
from datasets.manifest import load_manifest
from groundwork.atomic import write_json
from groundwork.config import save_config
from groundwork.paths import check_out_folder, confined
from groundwork.photo_map import RayOptions
from localize.cell_localizer import CellLocalizer, load_cell_localizer, save_cell_localizer
from localize.forward_photos import PassBoxes, forward_photos
from localize.pseudo_boxes import (
    LocalizeConfig,
    PseudoBoxes,
    box_classes,
    boxing_rule,
    class_heatmaps,
    known_classes,
    pseudo_boxes,
)
from localize.review import ReviewItem, render_contact_sheets, render_overlay, write_png

log = logging.getLogger(__name__)

HELD_OUT_BOXES = "held_out_boxes.json"
FOLDS = "folds.json"
FORWARD_CACHE = "forward"
ANNOTATION_PATHS = {"voc": "annotations/voc", "coco": "annotations/coco.json", "yolo": "annotations/yolo",
                    "createml": "annotations/createml.json", "boxes-json": "pseudo_boxes.json"}


@dataclass(frozen=True)
class ImageItem:
    """One image to localise.

    ``path`` is the file read; ``name`` the image as annotation files name it (relative to the
    source folder); ``label`` its known class or None; ``size`` the ``(width, height)`` the
    annotations are in when it differs from the file read (a prepared image stands in for the
    user's original photo: boxes are scaled back to the original), else None; ``group`` its
    capture group when a prepared dataset's manifest gives one (burst shots share one), else None.
    """

    path: Path
    name: str
    label: str | None
    size: tuple[int, int] | None = None
    group: int | None = None


@dataclass(frozen=True)
class LocalizeResult:
    """What :func:`localize_images` wrote and found."""

    out_dir: Path
    annotations: list[ImageAnnotation]
    pseudo: PseudoBoxes
    items: list[ImageItem]
    scores: dict | None
    skipped: tuple[dict[str, str], ...] = ()


def find_images(source: str | os.PathLike, labels: Sequence[str]) -> tuple[Path, list[ImageItem]]:
    """The images under ``source`` and their known classes.

    ``source`` is a prepared dataset (its manifest gives classes; the images are named and sized
    as the user's original photos when those are under the manifest's source folder), a folder whose
    sub-folders are named after classes (``one/``, ``training/one/``...: the nearest folder named
    like a class gives the label), or a single image file. A folder's images are listed by
    :func:`datasets.image_files.image_files` (recursive, sorted, hidden files skipped).

    Returns
    -------
    root : Path
        The folder image names are relative to.
    items : list of ImageItem

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist or holds no image.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"images: {source} does not exist.")
    if source.is_file():
        return source.parent, [ImageItem(source, source.name, None)]
    if (source / MANIFEST).is_file():
        manifest = load_manifest(source)
        original = Path(manifest.settings.get("src", source))
        items = [_manifest_item(manifest, r, original) for r in manifest.records]
        if all(it.size is not None for it in items):
            source = original
    else:
        items = []
        for path in image_files(source):
            rel = path.relative_to(source)
            label = next((part for part in reversed(rel.parts[:-1]) if part in labels), None)
            items.append(ImageItem(path, rel.as_posix(), label))
    if not items:
        raise FileNotFoundError(f"images: no image ({', '.join(IMAGE_SUFFIXES)}) found under {source}.")
    return source, items


def _manifest_item(manifest, record, original: Path) -> ImageItem:
    source = Path(os.path.normpath(record.source))  # '<src>/../x.jpg' is not under <src>
    try:
        name = source.relative_to(os.path.normpath(original)).as_posix()
    except ValueError:
        return ImageItem(manifest.image_path(record), record.path, record.label, group=record.group)
    (sw, sh), (w, h) = record.source_size, record.size
    # source_size is as stored; the photo is seen upright (EXIF), like the prepared image.
    upright = (sw, sh) if (sw >= sh) == (w >= h) else (sh, sw)
    return ImageItem(manifest.image_path(record), name, record.label, upright, record.group)


def localize_images(
    model: TrainedModel | str | os.PathLike,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: LocalizeConfig = LocalizeConfig(),
    *,
    ground_truth: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    ray: RayOptions | None = None,
) -> LocalizeResult:
    """Make, write and (with ``ground_truth``) score pseudo boxes for the images under ``source``.

    Images that cannot be read (not an image, truncated...) are left out with a warning naming
    the file, like ``prepare``, ``predict`` and ``verify`` do, and listed in ``OUT/skipped.json``
    and ``LocalizeResult.skipped``; with ground truth they count as images without a box.

    With ``ray`` the classifier passes run on Ray workers (:mod:`groundwork.photo_map`; the photos
    must be at paths every worker sees); learning, boxing and every file written stay here, the
    same as without it.

    Raises
    ------
    FileExistsError
        If ``out_dir`` holds an earlier result and ``overwrite`` is false.
    FileNotFoundError, ValueError
        For a missing model or images, no readable image at all, or a broken ground truth.
    """
    from localize.calibration import load_calibration, save_calibration

    trained = model if isinstance(model, TrainedModel) else load_trained_model(model)
    out_dir = Path(out_dir)
    check_out_dir(out_dir, ANNOTATION_PATHS["boxes-json"], overwrite=overwrite, what="pseudo boxes")
    root, items = find_images(source, trained.labels)
    check_outside_photos(out_dir, source, root)
    pre = trained.preprocessing
    calibration = load_calibration(trained.directory)
    localizer = None
    if config.threshold is None:
        localizer = load_cell_localizer(trained.directory, model_sha256=trained.model_sha256)
    calibrated = None if calibration.method == "default" else calibration.threshold
    # Without hand boxes to learn from (and but for DDT's per-class projection) a photo's box needs
    # nothing of the others: each chunk is boxed in the pass that made its maps (on its Ray worker).
    per_class = boxing_rule(config, localizer=localizer, calibrated_threshold=calibrated).per_class
    boxes = (PassBoxes(config, trained.labels, pre.input_size, localizer, calibrated)
             if ground_truth is None and not per_class else None)
    start = time.perf_counter()
    passed = forward_photos(trained, items, scales=config.scales, flip=config.flip, batch_size=config.batch_size,
                            ray=ray, progress=progress, source=source, boxes=boxes, cache=out_dir / FORWARD_CACHE)
    items, images, skipped = passed.items, passed.images, passed.skipped
    probabilities, class_maps = passed.probabilities, passed.class_maps
    features, map_features = passed.features, passed.map_features
    pseudo = passed.pseudo
    del passed
    passed_at = time.perf_counter()
    log.info("classifier pass%s: %d photos in %.1f s%s", "" if pseudo is None else " and boxes",
             len(items) + len(skipped), passed_at - start, "" if ray is None else f" on Ray ({ray.address})")
    known = known_classes([it.label for it in items], trained.labels)
    gt, gt_path, held_out, learned = None, None, None, None
    if ground_truth is not None:
        gt_path = Path(ground_truth)
        gt = read_annotations(gt_path, labels=trained.labels)
        if config.learn and config.threshold is None:
            learned = _learn(gt, gt_path, root, items, images, known, probabilities, class_maps, map_features,
                             config, trained.model_sha256)
            if learned is not None:
                localizer = learned.localizer
        if (learned is None and config.calibrate and config.threshold is None and localizer is None
                and calibration.method == "default"):
            calibration, held_out = _calibrate(gt, gt_path, root, items, known, probabilities, class_maps,
                                               pre.input_size)
    if pseudo is None:
        pseudo = pseudo_boxes(images, probabilities, class_maps, features, known=known, input_size=pre.input_size,
                              config=config, localizer=localizer, map_features=map_features,
                              calibrated_threshold=None if calibration.method == "default" else calibration.threshold)
    flagged = sum(bool(note) for note in pseudo.notes)
    if flagged:
        log.info("%d of %d images flagged for review (no box or low confidence)", flagged, len(items))
    annotations = [_annotation(item, image, pseudo, i, trained.labels)
                   for i, (item, image) in enumerate(zip(items, images, strict=True))]
    out_dir.mkdir(parents=True, exist_ok=True)
    _forget_earlier_results(out_dir)
    save_config(config, out_dir / "localize_config.json")
    # What this run learned is written here only; keep_learned() puts it beside a model.
    if held_out is not None:
        save_calibration(calibration, out_dir)
    if learned is not None:
        save_cell_localizer(learned.localizer, out_dir)
    for fmt in config.formats:
        write_annotations(annotations, out_dir / ANNOTATION_PATHS[fmt], fmt, labels=trained.labels)
    _write_review(out_dir, items, images, pseudo, trained.labels, overlays=config.overlays, progress=progress)
    write_json(out_dir / "skipped.json", skipped)
    save_features(out_dir, features, [item.name for item in items], trained.model_sha256)
    scores = None
    if gt is not None:
        from localize.evaluate import evaluate_annotations

        scored = annotations
        if learned is not None:
            # Each hand-boxed image boxed by the localizer fitted without its capture group.
            scored = list(annotations)
            for k, fold_localizer in enumerate(learned.fold_localizers):
                subset = [i for i, f in zip(learned.indices, learned.fold, strict=True) if f == k]
                redo = pseudo_boxes([images[i] for i in subset], probabilities[subset], class_maps[subset],
                                    features[subset], known=[known[i] for i in subset],
                                    input_size=pre.input_size, config=config, localizer=fold_localizer,
                                    map_features=map_features[subset])
                for j, i in enumerate(subset):
                    scored[i] = _annotation(items[i], images[i], redo, j, trained.labels)
            write_annotations([scored[i] for i in learned.indices], out_dir / HELD_OUT_BOXES, "boxes-json",
                              labels=trained.labels)
            write_json(out_dir / FOLDS, {items[i].name: int(f) for i, f in zip(learned.indices, learned.fold,
                                                                               strict=True)})
        elif held_out is not None:
            # Boxes of the hand-boxed images made at thresholds calibrated without them.
            scored = list(annotations)
            for threshold in np.unique(held_out[~np.isnan(held_out)]):
                subset = np.flatnonzero(held_out == threshold)
                redo = pseudo_boxes([images[i] for i in subset], probabilities[subset], class_maps[subset],
                                    features[subset], known=[known[i] for i in subset],
                                    input_size=pre.input_size, config=config, calibrated_threshold=float(threshold))
                for j, i in enumerate(subset):
                    scored[i] = _annotation(items[i], images[i], redo, j, trained.labels)
        scores = evaluate_annotations(scored, gt, pred_root=root, gt_root=gt_path.parent,
                                      labels=trained.labels).to_dict()
        rule = boxing_rule(config, localizer=localizer,
                           calibrated_threshold=None if calibration.method == "default" else calibration.threshold)
        scores["threshold"] = rule.to_dict() | {
            "n_images": localizer.n_boxes if rule.origin == "cell_localizer" else
            calibration.n_images if rule.origin == "calibrated" else 0}
        if learned is not None:
            scores["localizer"] = {
                "method": "cell localizer (descriptors + class map, logistic regression)",
                "hand_boxes": learned.localizer.n_boxes, "threshold": learned.localizer.threshold,
                "folds": len(learned.fold_localizers), "groups": learned.n_groups,
                "scored": f"{len(learned.fold_localizers)}-fold over capture groups: each hand-boxed photo boxed "
                          "by a localizer fitted without its group's boxes"}
        if held_out is not None:
            scores["threshold"]["held_out"] = sorted({float(t) for t in held_out[~np.isnan(held_out)]})
            scores["threshold"]["scored"] = "2-fold: each half's boxes at the threshold calibrated on the other half"
        write_json(out_dir / "scores.json", scores)
    log.info("localised %d images into %s; after the classifier pass: %.1f s", len(items), out_dir,
             time.perf_counter() - passed_at)
    return LocalizeResult(out_dir=out_dir, annotations=annotations, pseudo=pseudo, items=items, scores=scores,
                          skipped=tuple(skipped))


@dataclass(frozen=True)
class _Learned:
    localizer: CellLocalizer
    fold_localizers: list[CellLocalizer]
    indices: list[int]
    fold: np.ndarray
    n_groups: int


def _learn(gt, gt_path: Path, root: Path, items, images, known, probabilities, class_maps, map_features,
           config: LocalizeConfig, model_sha256: str) -> _Learned | None:
    """A cell localizer fitted on the hand-boxed images among ``items``, and one per fold over their
    capture groups for scoring them; None (with a warning) when fewer than 2 groups are boxed."""
    from localize.cell_localizer import cross_fit, fit_cell_localizer
    from localize.evaluate import match_images

    names = [ImageAnnotation(item.name, 1, 1) for item in items]
    match = match_images(names, gt, pred_root=root, gt_root=gt_path.parent)
    pairs = [(i, g) for g, i in zip(gt, match, strict=True) if i is not None and len(g.boxes)]
    # Without a manifest every photo is its own capture group.
    groups = np.array([items[i].group if items[i].group is not None else -1 - i for i, _ in pairs])
    if len(np.unique(groups)) < 2:
        log.warning("%d hand-boxed image(s) from %d capture group(s) match the images: too few to learn a "
                    "localizer from", len(pairs), len(np.unique(groups)))
        return None
    indices = [i for i, _ in pairs]
    # Every object of a photo is object: its boxes, normalised (annotation pixels to fractions).
    boxes = [np.clip(g.xyxy() / [g.width, g.height, g.width, g.height], 0, 1) for _, g in pairs]
    classes = box_classes(probabilities[indices], [known[i] for i in indices], num_classes=class_maps.shape[-1])
    cams = class_heatmaps(class_maps[indices], classes)
    feats = np.asarray(map_features[indices])
    photos = [images[i] for i in indices]
    localizer = fit_cell_localizer(feats, cams, boxes, groups=groups, folds=config.folds, images=photos,
                                   model_sha256=model_sha256)
    fold_localizers, fold = cross_fit(feats, cams, boxes, groups=groups, folds=config.folds, images=photos,
                                      model_sha256=model_sha256)
    log.info("cell localizer learned from %d hand boxes in %d capture groups (scored %d-fold over the groups)",
             len(pairs), len(np.unique(groups)), len(fold_localizers))
    return _Learned(localizer, fold_localizers, indices, fold, len(np.unique(groups)))


def keep_learned(out_dir: str | os.PathLike, model_dir: str | os.PathLike) -> list[Path]:
    """Put what a :func:`localize_images` run learned from hand boxes (in ``out_dir``: the cell
    localizer, the calibrated threshold) beside the model in ``model_dir``, replacing what was
    there, so that ``boxstrap localize MODEL new_photos`` boxes new photos the same way; return the
    files written. A run that learned nothing changes nothing there."""
    from groundwork.atomic import write_bytes
    from localize.calibration import FILENAME as CALIBRATION
    from localize.cell_localizer import FILENAME as LOCALIZER

    names = [name for name in (LOCALIZER, CALIBRATION) if (Path(out_dir) / name).is_file()]
    if not names:
        return []
    forget_learned(model_dir)
    return [write_bytes(Path(model_dir) / name, (Path(out_dir) / name).read_bytes()) for name in names]


def _forget_earlier_results(out_dir: Path) -> None:
    """Remove what an earlier run into ``out_dir`` learned or scored and this one may not write
    (a rerun without hand boxes, or with ``learn=False``): left there, its localizer would be kept
    with the model again and its folds would score the box model."""
    forget_learned(out_dir)
    for name in (HELD_OUT_BOXES, FOLDS, "scores.json"):
        (out_dir / name).unlink(missing_ok=True)


def forget_learned(model_dir: str | os.PathLike) -> None:
    """Remove what :func:`keep_learned` put beside a model (or what a run learned, from its folder)."""
    from localize.calibration import FILENAME as CALIBRATION
    from localize.cell_localizer import FILENAME as LOCALIZER

    for name in (LOCALIZER, CALIBRATION):
        (Path(model_dir) / name).unlink(missing_ok=True)


def largest_box(annotation: ImageAnnotation) -> np.ndarray:
    """An annotation's largest box (the box model regresses one box per photo)."""
    xyxy = annotation.xyxy()
    return xyxy[int(np.argmax((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])))]


def check_out_dir(out_dir: Path, marker: str, *, overwrite: bool, what: str) -> None:
    """Refuse an output folder before any photo is read: a file, a place that cannot be written, or a
    folder holding an earlier result (``marker``) without ``overwrite``."""
    check_out_folder(out_dir, holds="a folder of annotation files and pictures")
    if (out_dir / marker).exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already holds {what}; pass overwrite=True (--overwrite) to "
                              "replace them, or choose another folder.")


def check_outside_photos(out_dir: Path, source, root: Path) -> None:
    """Refuse an output folder inside the photo folder ``root`` (when ``source`` is a folder): a rerun
    would read the pictures written there as photos."""
    if Path(source).is_dir() and Path(os.path.abspath(out_dir)).is_relative_to(os.path.abspath(root)):
        raise ValueError(f"out {out_dir} is inside the photo folder {root}; choose a folder outside it.")


def _calibrate(gt, gt_path: Path, root: Path, items, known, probabilities, class_maps, input_size):
    """The CAM threshold calibrated on the hand-boxed images among ``items``, and per item the
    threshold calibrated on the other fold (NaN for items without ground truth)."""
    from localize.calibration import ThresholdCalibration, cross_calibrate
    from localize.evaluate import match_images

    names = [ImageAnnotation(item.name, 1, 1) for item in items]
    match = match_images(names, gt, pred_root=root, gt_root=gt_path.parent)
    pairs = [(i, g) for g, i in zip(gt, match, strict=True) if i is not None and len(g.boxes)]
    held_out = np.full(len(items), np.nan)
    if len(pairs) < 2:
        log.warning("%d hand-boxed image(s) match the images: too few to calibrate the CAM threshold; "
                    "using the default", len(pairs))
        return ThresholdCalibration(), None
    subset = [i for i, _ in pairs]
    classes = box_classes(probabilities[subset], [known[i] for i in subset], num_classes=class_maps.shape[-1])
    heatmaps = class_heatmaps(class_maps[subset], classes, input_size)
    calibration, per_image = cross_calibrate(heatmaps, [g.xyxy() for _, g in pairs],
                                             image_sizes=[(g.height, g.width) for _, g in pairs])
    for (i, _), threshold in zip(pairs, per_image, strict=True):
        held_out[i] = threshold
    log.info("CAM threshold %.2f calibrated on %d hand-boxed images (2-fold: %s)", calibration.threshold,
             len(pairs), sorted({float(t) for t in per_image}))
    return calibration, held_out


def _annotation(item: ImageItem, image: np.ndarray, pseudo: PseudoBoxes, i: int, labels) -> ImageAnnotation:
    """Image ``i``'s pseudo boxes as an annotation of the original photo."""
    return photo_annotation(item, image.shape, pseudo.boxes[i], pseudo.scores[i], labels[pseudo.classes[i]])


def photo_annotation(item: ImageItem, shape: tuple[int, ...], boxes: np.ndarray, scores: np.ndarray,
                     label: str) -> ImageAnnotation:
    """Boxes found on the image read for ``item`` (of ``shape``) as an annotation of the original photo.

    When a prepared image stood in for the photo (``item.size``), the boxes are scaled back to the
    photo's pixels; they are clipped to it either way.
    """
    height, width = shape[:2]
    out_w, out_h = item.size or (width, height)
    scale = np.array([out_w / width, out_h / height] * 2)
    annotated = tuple(Box(label, *map(float, np.clip(b * scale, 0, [out_w, out_h] * 2)), score=float(s))
                      for b, s in zip(boxes, scores, strict=True))
    return ImageAnnotation(item.name, int(out_w), int(out_h), annotated, label=label)


def _write_review(out_dir: Path, items, images, pseudo: PseudoBoxes, labels, *, overlays: bool,
                  progress: bool) -> None:
    confidence = pseudo.probabilities[np.arange(len(items)), pseudo.classes]
    write_review(out_dir, items, images, pseudo.boxes, pseudo.scores, [labels[c] for c in pseudo.classes],
                 confidence, pseudo.notes, heatmaps=pseudo.heatmaps, overlays=overlays, progress=progress)


def write_review(out_dir: Path, items: Sequence[ImageItem], images: Sequence[np.ndarray],
                 boxes: Sequence[np.ndarray], scores: Sequence[np.ndarray], classes: Sequence[str],
                 confidence: np.ndarray, notes: Sequence[str], *, heatmaps: Sequence[np.ndarray] | None = None,
                 overlays: bool = True, progress: bool = True) -> None:
    """``review.json`` (lowest confidence first), contact sheets and (with ``overlays``) one picture
    per image: its box, class and score, over its heatmap when given."""
    from groundwork.progress import progress_bar

    order = np.argsort(confidence, kind="stable")
    write_json(out_dir / "review.json", [
        {"image": items[i].name, "class": classes[i], "confidence": float(confidence[i]),
         "box": boxes[i][0].tolist() if len(boxes[i]) else None, "note": notes[i]}
        for i in order])
    review = [
        ReviewItem(images[i], boxes[i], scores[i], caption=Path(items[i].name).name,
                   labels=(classes[i],) * len(boxes[i]), confidence=float(confidence[i])).shrunk(200)
        for i in range(len(items))
    ]
    sheets_dir = out_dir / "contact_sheets"
    shutil.rmtree(sheets_dir, ignore_errors=True)
    for k, sheet in enumerate(render_contact_sheets(review), start=1):
        write_png(sheets_dir / f"sheet_{k:03d}.png", sheet)
    if overlays:
        for i in progress_bar(range(len(items)), desc="overlays", unit="img", enabled=progress):
            overlay = render_overlay(images[i], heatmap=None if heatmaps is None else heatmaps[i], boxes=boxes[i],
                                     scores=scores[i], labels=[classes[i]] * len(boxes[i]))
            write_png(confined(out_dir / "overlays", Path(items[i].name).with_suffix(".png"),
                               source=f"the image name {items[i].name!r}"), overlay)


def save_features(out_dir: Path, features: np.ndarray, names: Sequence[str], model_sha256: str) -> None:
    """Keep the descriptors of one classifier pass, with the image names and model they belong to."""
    from groundwork.atomic import atomic_open

    with atomic_open(out_dir / "features.npy") as handle:
        np.save(handle, features)
    write_json(out_dir / "features.json", {"model_sha256": model_sha256, "images": list(names)})


def load_features(out_dir: str | os.PathLike, names: Sequence[str], model_sha256: str) -> np.ndarray | None:
    """Descriptors saved by :func:`save_features` for exactly these images and model, else None."""
    import json

    out_dir = Path(out_dir)
    try:
        index = json.loads((out_dir / "features.json").read_text(encoding="utf-8"))
        if index["model_sha256"] != model_sha256:
            return None
        position = {name: i for i, name in enumerate(index["images"])}
        rows = [position[name] for name in names]
        return np.load(out_dir / "features.npy", mmap_mode="r")[rows]
    except (FileNotFoundError, KeyError, ValueError, json.JSONDecodeError):
        return None
