"""Run a box model on photos: its boxes and the class of each photo, as annotations, scored when boxes are known."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classifier.photo_work import PhotoWork, run_photo_work
from datasets.annotations import read_annotations, write_annotations
from datasets.tf_input import read_rgb
from detector.box_decode import CONFIDENCE_THRESHOLD, IOU_THRESHOLD, detector_boxes
from detector.box_model_dir import BoxModel, load_box_model
from groundwork.atomic import write_json
from groundwork.box_geometry import cxcywh_to_xyxy
from groundwork.photo_map import RayOptions

__all__ = ["predict_box_annotations", "predict_boxes", "predict_photos"]

log = logging.getLogger(__name__)


def predict_boxes(box_model: BoxModel, images: Sequence[np.ndarray], *, batch_size: int = 8,
                  iou_threshold: float = IOU_THRESHOLD, confidence_threshold: float = CONFIDENCE_THRESHOLD
                  ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Class probabilities and the boxes of each image.

    Parameters
    ----------
    box_model : BoxModel
    images : sequence of (H_i, W_i, 3) uint8 ndarrays
        Upright RGB photos at any size.
    iou_threshold, confidence_threshold : float
        Non-maximum suppression of a ``"centres"`` box model's cells, as the exported detector's
        (:func:`detector.box_decode.non_max_suppression`). A one-box model ignores them.

    Returns
    -------
    probabilities : (N, C) float32 ndarray
    boxes : list of (k_i, 4) float64 ndarrays
        ``xmin, ymin, xmax, ymax`` in each image's own pixels (continuous edges), clipped, best first:
        one per image for a one-box model, every box suppression keeps for a ``"centres"`` one.
    scores : list of (k_i,) float64 ndarrays
        Each box's confidence: the image's top class probability for a one-box model; for a
        ``"centres"`` one, the box's centre score times it (the exported detector's confidence)
        times the cells' agreement on the box (:func:`detector.box_decode.detector_boxes`).
    """
    pre = box_model.preprocessing
    probabilities, normalised, scores = [], [], []
    for start in range(0, len(images), batch_size):
        x = np.stack([pre.apply(pre.resize(image)) for image in images[start:start + batch_size]])
        outputs = box_model.model.predict_on_batch(x)
        p = np.asarray(outputs[0], np.float32)
        probabilities.append(p)
        if len(outputs) == 2:  # one box per image
            normalised += list(np.asarray(outputs[1], np.float64)[:, None])
            scores += [row.max(keepdims=True).astype(np.float64) for row in p]
            continue
        for confidence, coordinates in zip(np.asarray(outputs[1]), np.asarray(outputs[2]), strict=True):
            kept, kept_scores, _ = detector_boxes(confidence, coordinates, iou_threshold=iou_threshold,
                                                  confidence_threshold=confidence_threshold)
            normalised.append(kept.astype(np.float64))
            scores.append(kept_scores)
    probs = np.concatenate(probabilities) if probabilities else np.zeros((0, len(box_model.labels)), np.float32)
    boxes = []
    for image, box in zip(images, normalised, strict=True):
        height, width = image.shape[:2]
        # Converted in float32, as the box model computes.
        xyxy = cxcywh_to_xyxy(box.reshape(-1, 4), dtype=np.float32).astype(np.float64)
        xyxy = np.clip(xyxy, 0, 1) * [width, height, width, height]
        boxes.append(xyxy)
    return probs, boxes, scores


class _DetectWork(PhotoWork):
    def load(self, directory):
        return load_box_model(directory)

    def run(self, model: BoxModel, images: list[np.ndarray], items) -> list[tuple]:
        probabilities, boxes, scores = predict_boxes(model, images, batch_size=len(images))
        return [(image, p, b, s) for image, p, b, s in zip(images, probabilities, boxes, scores, strict=True)]


def predict_photos(box_model: BoxModel, items: Sequence, *, batch_size: int = 8, ray: RayOptions | None = None,
                  progress: bool = True, source=None
                  ) -> tuple[list, list[np.ndarray], np.ndarray, list[np.ndarray], list[np.ndarray], list[dict[str, str]]]:
    """:func:`predict_boxes` over the photos of ``items`` (each with a ``path``), here or on Ray.

    Returns the readable items, their photos, probabilities (N, C), boxes, box scores and the skipped photos
    (:func:`classifier.photo_work.run_photo_work`, which raises ValueError when none can be read).
    """
    work = _DetectWork(box_model.directory, box_model.model_sha256, loaded=box_model)
    readable, results, skipped = run_photo_work(work, items, batch_size=batch_size, ray=ray, progress=progress,
                                                desc="detect", source=source)
    probabilities = np.stack([r[1] for r in results]).astype(np.float32)
    return readable, [r[0] for r in results], probabilities, [r[2] for r in results], [r[3] for r in results], skipped


def predict_box_annotations(model: BoxModel | str | os.PathLike, source: str | os.PathLike,
                            out_dir: str | os.PathLike, *, ground_truth: str | os.PathLike | None = None
                            ) -> dict | None:
    """Predict boxes for the images under ``source``, write ``OUT/box_predictions.json`` (boxes JSON),
    and with ``ground_truth`` score them (``OUT/scores.json``, returned)."""
    from datasets.evaluate import evaluate_annotations
    from datasets.photo_items import find_photos, photo_annotation

    box_model = model if isinstance(model, BoxModel) else load_box_model(model)
    root, items = find_photos(source, box_model.labels)
    images = [read_rgb(item.path) for item in items]
    probabilities, boxes, scores = predict_boxes(box_model, images)
    annotations = [photo_annotation(item, image.shape, b, s, box_model.labels[int(np.argmax(p))])
                   for item, image, p, b, s in zip(items, images, probabilities, boxes, scores, strict=True)]
    out_dir = Path(out_dir)
    write_annotations(annotations, out_dir / "box_predictions.json", "boxes-json", labels=box_model.labels)
    if ground_truth is None:
        return None
    gt_path = Path(ground_truth)
    gt = read_annotations(gt_path, labels=box_model.labels)
    scores = evaluate_annotations(annotations, gt, pred_root=root, gt_root=gt_path.parent,
                                  labels=box_model.labels).to_dict()
    write_json(out_dir / "scores.json", scores)
    return scores
