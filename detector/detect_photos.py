"""``boxstrap detect``: the box model on new photos, written as ``localize`` writes its pseudo boxes.

:func:`detect_photos` is the I/O edge: it finds the photos (a prepared dataset, a folder per class
or plain files, as :func:`datasets.photo_items.find_photos`), runs the box model
(:func:`detector.box_predictions.predict_boxes`: the class of each photo and its boxes, every object
a ``"centres"`` box model finds, in the photo's own pixels) and writes into ``OUT``::

    OUT/detect_config.json         DetectConfig
    OUT/detections.json            boxes JSON (with scores)
    OUT/annotations/voc/ ...       the same boxes for CVAT, Label Studio, Roboflow, Create ML
    OUT/annotations/coco.json, annotations/yolo/, annotations/createml.json
    OUT/review.json                per image: class, confidence, box, note; in review order (datasets.review.review_order)
    OUT/contact_sheets/sheet_NNN.png, OUT/overlays/<image>.png
    OUT/skipped.json               images that could not be read (file and reason)
    OUT/scores.json                CorLoc, IoU, MaxBoxAcc, COCO mAP when ground truth is given

The class is the box model's prediction (a photo's folder name is not used: new photos are
what the model is for); a photo whose class probability is below ``min_confidence``, or in which
the box model keeps no box (a miss, or a photo without any of its objects), is flagged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.annotations import FORMATS, ImageAnnotation, read_annotations, write_annotations
from datasets.box_folder import annotation_paths
from datasets.photo_items import PhotoItem, find_photos, photo_annotation
from datasets.review import MIN_CONFIDENCE, review_note, write_review
from detector.box_model_dir import BoxModel, load_box_model
from detector.box_predictions import predict_photos
from groundwork.atomic import write_json
from groundwork.config import save_config
from groundwork.paths import check_out_dir, check_outside_photos
from groundwork.photo_map import RayOptions

__all__ = ["ANNOTATION_PATHS", "DETECTIONS", "DetectConfig", "DetectResult", "detect_photos"]

log = logging.getLogger(__name__)

DETECTIONS = "detections.json"
#: Where each format is written: as ``localize`` writes them, the boxes JSON named for what it holds.
ANNOTATION_PATHS = annotation_paths(DETECTIONS)


@dataclass(frozen=True)
class DetectConfig:
    """How ``boxstrap detect`` writes; saved as ``detect_config.json`` beside the boxes.

    Parameters
    ----------
    formats : tuple of str
        Annotation formats to write (``boxes-json`` is always written, as ``detections.json``).
    overlays : bool
        One picture per photo with its box.
    min_confidence : float in [0, 1]
        Photos whose class probability is below it are flagged ``"low confidence"``
        (:data:`datasets.review.MIN_CONFIDENCE` says why 0.9).
    batch_size : int >= 1
    """

    formats: tuple[str, ...] = FORMATS
    overlays: bool = True
    min_confidence: float = MIN_CONFIDENCE
    batch_size: int = 8

    def __post_init__(self) -> None:
        formats = tuple(dict.fromkeys((*self.formats, "boxes-json")))
        unknown = sorted(set(formats) - set(ANNOTATION_PATHS))
        if unknown:
            raise ValueError(f"formats must be among {tuple(ANNOTATION_PATHS)}. Received: {unknown}")
        object.__setattr__(self, "formats", formats)
        if not 0 <= self.min_confidence <= 1:
            raise ValueError(f"min_confidence must be in [0, 1]. Received: {self.min_confidence!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1. Received: {self.batch_size!r}")


@dataclass(frozen=True)
class DetectResult:
    """What :func:`detect_photos` wrote and found."""

    out_dir: Path
    annotations: list[ImageAnnotation]
    items: list[PhotoItem]
    probabilities: np.ndarray
    scores: dict | None
    skipped: tuple[dict[str, str], ...] = ()
    notes: tuple[str, ...] = ()  # per photo: "" or why it is flagged for review (as in review.json)


def detect_photos(model: BoxModel | str | os.PathLike, source: str | os.PathLike, out_dir: str | os.PathLike,
                  config: DetectConfig = DetectConfig(), *, ground_truth: str | os.PathLike | None = None,
                  overwrite: bool = False, progress: bool = True, ray: RayOptions | None = None) -> DetectResult:
    """Box every photo under ``source`` with the box model; write annotations and review pictures.

    With ``ray`` the box model runs on Ray workers (:mod:`groundwork.photo_map`; photos at paths
    every worker sees); the files are written here, the same as without it.

    Raises
    ------
    NotADirectoryError, FileExistsError, ValueError
        For an output folder that is a file, holds earlier detections (without ``overwrite``) or
        lies inside the photo folder: all before any photo is read. ValueError also when no photo
        can be read.
    FileNotFoundError
        For a missing box model, photos or ground truth.
    """
    from datasets.evaluate import evaluate_annotations

    out_dir = Path(out_dir)
    check_out_dir(out_dir, DETECTIONS, overwrite=overwrite, what="detections")
    if ground_truth is not None and not Path(ground_truth).is_file():
        raise FileNotFoundError(f"ground truth: no annotation file at {ground_truth}.")
    box_model = model if isinstance(model, BoxModel) else load_box_model(model)
    labels = list(box_model.labels)
    root, items = find_photos(source, labels)
    check_outside_photos(out_dir, source, root)
    items, images, probabilities, boxes, scores, skipped = predict_photos(
        box_model, items, batch_size=config.batch_size, ray=ray, progress=progress, source=source)
    classes = np.argmax(probabilities, axis=1)
    confidence = probabilities[np.arange(len(items)), classes]
    notes = [review_note(len(b), float(c), config.min_confidence, no_box="the box model found no object")
             for b, c in zip(boxes, confidence, strict=True)]
    annotations = [photo_annotation(item, image.shape, b, s, labels[int(c)])
                   for item, image, b, s, c in zip(items, images, boxes, scores, classes, strict=True)]
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir / "detect_config.json")
    for fmt in config.formats:
        write_annotations(annotations, out_dir / ANNOTATION_PATHS[fmt], fmt, labels=labels)
    write_review(out_dir, items, images, boxes, scores, [labels[int(c)] for c in classes], confidence, notes,
                 overlays=config.overlays, progress=progress)
    write_json(out_dir / "skipped.json", skipped)
    metrics = None
    if ground_truth is not None:
        gt_path = Path(ground_truth)
        gt = read_annotations(gt_path, labels=labels)
        metrics = evaluate_annotations(annotations, gt, pred_root=root, gt_root=gt_path.parent,
                                       labels=labels).to_dict()
        write_json(out_dir / "scores.json", metrics)
    log.info("boxed %d photos with %s into %s", len(items), box_model.directory, out_dir)
    return DetectResult(out_dir=out_dir, annotations=annotations, items=items, probabilities=probabilities,
                        scores=metrics, skipped=tuple(skipped), notes=tuple(notes))
