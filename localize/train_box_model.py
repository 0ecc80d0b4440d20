"""``boxstrap train-boxes``: train the box model on pseudo (or corrected) boxes.

:func:`train_box_model` reads boxes in any annotation format (the ``pseudo_boxes.json`` that
``boxstrap localize`` wrote, or the file a person corrected in CVAT, Label Studio, Roboflow or
Create ML), matches them to the images, and trains the box head of
:mod:`localize.box_model` on the classifier's descriptors. The descriptors saved by
``boxstrap localize`` beside the boxes are reused when they belong to the same images and model,
so the box model costs no forward pass of its own; otherwise one pass computes them.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from classifier.trained_model import TrainedModel, load_trained_model
from datasets.annotations import read_annotations
from datasets.tf_input import read_rgb
from groundwork.box_geometry import cxcywh_to_xyxy, matched_box_iou
from localize.box_model import BoxTrainConfig, build_box_model, feature_scale, normalise_boxes, train_box_head
from localize.box_model_dir import save_box_model
from localize.localize_images import find_images, load_features
from localize.multi_view_maps import forward

log = logging.getLogger(__name__)

VALID_SHARE = 0.15


def train_box_model(
    model: TrainedModel | str | os.PathLike,
    boxes: str | os.PathLike,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: BoxTrainConfig = BoxTrainConfig(),
    *,
    overwrite: bool = False,
    verbose: int = 1,
) -> Path:
    """Train and save a box model directory; return its path.

    Parameters
    ----------
    model : TrainedModel or model directory
        The trained classifier (its backbone and class head are reused, frozen).
    boxes : path
        An annotation file or folder in any supported format; per image its highest-scoring box
        is the target (images without a box are left out).
    source : path
        The images the boxes name (a prepared dataset, a folder per class, or their folder).
    out_dir : path
        The box model directory to write (see :mod:`localize.box_model_dir`).
    config : BoxTrainConfig

    Raises
    ------
    ValueError
        If no image of the boxes file is found under ``source``, or no image has a box.
    """
    trained = model if isinstance(model, TrainedModel) else load_trained_model(model)
    boxes_path = Path(boxes)
    annotations = read_annotations(boxes_path, labels=trained.labels)
    _, items = find_images(source, trained.labels)
    by_name = {item.name: item for item in items}
    chosen = [(a, by_name[a.image]) for a in annotations if len(a.boxes) and a.image in by_name]
    missing = sum(a.image not in by_name for a in annotations)
    if missing:
        log.warning("%d images of %s are not under %s; left out", missing, boxes_path, source)
    if not chosen:
        raise ValueError(f"No image of {boxes_path} with a box was found under {source}: nothing to train on.")
    names = [item.name for _, item in chosen]
    target = normalise_boxes(np.stack([_top_box(a) for a, _ in chosen]), [(a.width, a.height) for a, _ in chosen])
    start = time.perf_counter()
    folder = boxes_path if boxes_path.is_dir() else boxes_path.parent
    features = load_features(folder, names, trained.model_sha256)
    if features is None:
        log.info("computing %s descriptors of %d images (one classifier pass)", trained.feature_layer, len(names))
        pre = trained.preprocessing
        x = np.stack([pre.apply(read_rgb(item.path, pre)) for _, item in chosen])
        features = forward(trained.model, x, feature_layer=trained.feature_layer)[2]
    else:
        log.info("reusing the descriptors saved beside %s", boxes_path)
    features = np.asarray(features)  # float16 as cached: the views are made and batches cast from it
    order = np.random.default_rng(config.seed).permutation(len(names))
    n_valid = int(round(len(names) * VALID_SHARE)) if len(names) >= 10 else 0
    valid, train = order[:n_valid], order[n_valid:]
    box_model, head = build_box_model(trained.model, config, feature_layer=trained.feature_layer,
                                      feature_scale=feature_scale(features[train]))
    history = train_box_head(head, features[train], target[train], config,
                             valid=(features[valid], target[valid]) if n_valid else None, verbose=verbose)
    predicted = np.asarray(head.predict(features, verbose=0))
    ious = matched_box_iou(cxcywh_to_xyxy(predicted, dtype=np.float32), cxcywh_to_xyxy(target, dtype=np.float32))
    metrics = {
        "images": len(names),
        "train_images": int(len(train)),
        "valid_images": int(n_valid),
        "boxes_file": str(boxes_path),
        "agreement_with_boxes": {
            "train_mean_iou": float(ious[train].mean()),
            "valid_mean_iou": float(ious[valid].mean()) if n_valid else None,
        },
        "history": history,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return save_box_model(box_model, out_dir, preprocessing=trained.preprocessing, labels=trained.labels,
                          config=config, metrics=metrics, overwrite=overwrite)


def _top_box(annotation) -> np.ndarray:
    scores = np.nan_to_num(annotation.scores(), nan=1.0)
    return annotation.xyxy()[int(np.argmax(scores))]
