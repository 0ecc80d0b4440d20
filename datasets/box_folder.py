"""A folder of boxes that ``localize`` writes and the box model reads: the files beside the boxes.

Besides its annotation files (one per format, :data:`ANNOTATION_PATHS`, the boxes JSON named by
the writer), a ``localize`` folder holds what the box model reuses: the classifier's descriptors of
the photos (:func:`save_features` / :func:`load_features`, a cache tied to the photos and the
model) and, when a localizer was learned from hand boxes, each hand-boxed photo's held-out pseudo
box (:data:`HELD_OUT_BOXES`) and capture-group fold (:data:`FOLDS`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datasets.annotations import FORMATS
from groundwork.atomic import atomic_open, write_json

__all__ = ["ANNOTATION_PATHS", "FOLDS", "HELD_OUT_BOXES", "annotation_paths", "load_features", "save_features"]

HELD_OUT_BOXES = "held_out_boxes.json"
FOLDS = "folds.json"


#: Where each annotation format (:data:`datasets.annotations.FORMATS`) is written inside a folder of
#: boxes: a folder of files or one file (``boxes-json``: see :func:`annotation_paths`).
ANNOTATION_PATHS = {fmt: "boxes.json" if fmt == "boxes-json" else f"annotations/{fmt}" if fmt in ("voc", "yolo")
                    else f"annotations/{fmt}.json" for fmt in FORMATS}


def annotation_paths(boxes_json: str) -> dict[str, str]:
    """:data:`ANNOTATION_PATHS` with the boxes JSON named for what it holds (``pseudo_boxes.json``,
    ``detections.json``)."""
    return {**ANNOTATION_PATHS, "boxes-json": boxes_json}


def save_features(out_dir: Path, features: np.ndarray, names: Sequence[str], model_sha256: str) -> None:
    """Keep the descriptors of one classifier pass, with the image names and model they belong to."""
    with atomic_open(out_dir / "features.npy") as handle:
        np.save(handle, features)
    write_json(out_dir / "features.json", {"model_sha256": model_sha256, "images": list(names)})


def load_features(out_dir: str | os.PathLike, names: Sequence[str], model_sha256: str) -> np.ndarray | None:
    """Descriptors saved by :func:`save_features` for exactly these images and model, else None."""
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
