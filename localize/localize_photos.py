"""``boxstrap localize``: pseudo boxes for a folder of photos, written for review and correction.

:func:`localize_photos` is the stage's I/O edge: it finds the images (a prepared dataset, a folder
per class, or plain files), runs :func:`classifier.forward_photos.forward_photos` (here or on Ray) and
:func:`localize.pseudo_boxes.pseudo_boxes`, and writes into ``OUT``::

    OUT/localize_config.json       LocalizeConfig
    OUT/pseudo_boxes.json          boxes JSON (with scores): the boxes every later step reads
    OUT/annotations/voc/ ...       the same boxes for CVAT, Label Studio, Roboflow, Create ML
    OUT/annotations/coco.json, annotations/yolo/, annotations/createml.json
    OUT/review.json                per image: class, confidence, box, note; in review order (datasets.review.review_order)
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
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.forward_photos import forward_photos
from classifier.trained_model import TrainedModel, load_trained_model
from datasets.annotations import ImageAnnotation, read_annotations, write_annotations
from datasets.box_folder import FOLDS, HELD_OUT_BOXES, annotation_paths, save_features
from datasets.photo_items import PhotoItem, find_photos, photo_annotation
from datasets.review import write_review
from groundwork.atomic import write_json
from groundwork.config import save_config
from groundwork.paths import check_out_dir, check_outside_photos
from groundwork.photo_map import RayOptions
from localize.cell_localizer import CellLocalizer, load_cell_localizer, save_cell_localizer
from localize.learned import forget_learned
from localize.pass_boxes import PassBoxes
from localize.pseudo_boxes import (
    LocalizeConfig,
    PseudoBoxes,
    box_classes,
    boxing_rule,
    class_heatmaps,
    known_classes,
    pseudo_boxes,
)

__all__ = ["ANNOTATION_PATHS", "FORWARD_CACHE", "LocalizeResult", "localize_photos"]

log = logging.getLogger(__name__)

FORWARD_CACHE = "forward"
ANNOTATION_PATHS = annotation_paths("pseudo_boxes.json")


@dataclass(frozen=True)
class LocalizeResult:
    """What :func:`localize_photos` wrote and found."""

    out_dir: Path
    annotations: list[ImageAnnotation]
    pseudo: PseudoBoxes
    items: list[PhotoItem]
    scores: dict | None
    skipped: tuple[dict[str, str], ...] = ()


def localize_photos(
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
    root, items = find_photos(source, trained.labels)
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
    pseudo = None if passed.boxed is None else PassBoxes.gather(passed.boxed, probabilities, features)
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
        from datasets.evaluate import evaluate_annotations

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
    from datasets.evaluate import match_photos
    from localize.cell_localizer import cross_fit, fit_cell_localizer

    names = [ImageAnnotation(item.name, 1, 1) for item in items]
    match = match_photos(names, gt, pred_root=root, gt_root=gt_path.parent)
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


def _forget_earlier_results(out_dir: Path) -> None:
    """Remove what an earlier run into ``out_dir`` learned or scored and this one may not write
    (a rerun without hand boxes, or with ``learn=False``): left there, its localizer would be kept
    with the model again and its folds would score the box model."""
    forget_learned(out_dir)
    for name in (HELD_OUT_BOXES, FOLDS, "scores.json"):
        (out_dir / name).unlink(missing_ok=True)


def _calibrate(gt, gt_path: Path, root: Path, items, known, probabilities, class_maps, input_size):
    """The CAM threshold calibrated on the hand-boxed images among ``items``, and per item the
    threshold calibrated on the other fold (NaN for items without ground truth)."""
    from datasets.evaluate import match_photos
    from localize.calibration import ThresholdCalibration, cross_calibrate

    names = [ImageAnnotation(item.name, 1, 1) for item in items]
    match = match_photos(names, gt, pred_root=root, gt_root=gt_path.parent)
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


def _annotation(item: PhotoItem, image: np.ndarray, pseudo: PseudoBoxes, i: int, labels) -> ImageAnnotation:
    """Image ``i``'s pseudo boxes as an annotation of the original photo."""
    return photo_annotation(item, image.shape, pseudo.boxes[i], pseudo.scores[i], labels[pseudo.classes[i]])


def _write_review(out_dir: Path, items, images, pseudo: PseudoBoxes, labels, *, overlays: bool,
                  progress: bool) -> None:
    confidence = pseudo.probabilities[np.arange(len(items)), pseudo.classes]
    write_review(out_dir, items, images, pseudo.boxes, pseudo.scores, [labels[c] for c in pseudo.classes],
                 confidence, pseudo.notes, heatmaps=pseudo.heatmaps, overlays=overlays, progress=progress)


