"""A box model directory: the Keras box model and what it needs, saved and read back.

::

    BOX_DIR/box_model.keras        image -> [probabilities (N, C), box (N, 4)], safe_mode loadable
    BOX_DIR/preprocessing.json     the classifier's Preprocessing
    BOX_DIR/labels.json            class labels in output order
    BOX_DIR/box_train_config.json  BoxTrainConfig
    BOX_DIR/box_metrics.json       training history and scores
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets.preprocessing import Preprocessing
from groundwork.atomic import write_json
from groundwork.config import save_config
from groundwork.files import file_sha256

MODEL_FILENAME = "box_model.keras"
LABELS_FILENAME = "labels.json"
CONFIG_FILENAME = "box_train_config.json"
METRICS_FILENAME = "box_metrics.json"


@dataclass(frozen=True)
class BoxModel:
    """A loaded box model directory."""

    directory: Path
    model: Any = field(repr=False)
    preprocessing: Preprocessing
    labels: tuple[str, ...]
    metrics: dict[str, Any] = field(default_factory=dict, repr=False)
    model_sha256: str = ""


def save_box_model(model, directory: str | os.PathLike, *, preprocessing: Preprocessing, labels, config,
                   metrics: dict[str, Any], overwrite: bool = False) -> Path:
    """Write a box model directory atomically (built beside it, then renamed into place).

    Raises
    ------
    FileExistsError
        If ``directory`` exists and ``overwrite`` is false.
    """
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory} already exists; pass overwrite=True (--overwrite) to replace it.")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".part", dir=directory.parent))
    try:
        model.save(staging / MODEL_FILENAME)
        preprocessing.save(staging)
        write_json(staging / LABELS_FILENAME, list(labels))
        save_config(config, staging / CONFIG_FILENAME)
        write_json(staging / METRICS_FILENAME, metrics)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def load_box_model(directory: str | os.PathLike) -> BoxModel:
    """Read a box model directory written by :func:`save_box_model`.

    Raises
    ------
    FileNotFoundError
        If the directory or one of its files is missing (named).
    ValueError
        If the model does not output ``probabilities`` and ``box`` or the labels do not match.
    """
    import keras

    import classifier.pooling  # noqa: F401  (registers the custom pooling layer for safe loading)

    directory = Path(directory)
    path = directory / MODEL_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {str(directory)!r} a box model directory written by "
                                "`boxstrap train-boxes`?")
    labels_path = directory / LABELS_FILENAME
    if not labels_path.is_file():
        raise FileNotFoundError(f"{labels_path} not found: the box model's class labels are kept there.")
    labels = tuple(json.loads(labels_path.read_text(encoding="utf-8")))
    model = keras.saving.load_model(path, safe_mode=True)
    shapes = [tuple(t.shape[1:]) for t in model.outputs]
    if shapes != [(len(labels),), (4,)]:
        raise ValueError(f"{path}: a box model outputs probabilities ({len(labels)},) and box (4,). "
                         f"Received output shapes: {shapes}")
    metrics_path = directory / METRICS_FILENAME
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    return BoxModel(directory=directory, model=model, preprocessing=Preprocessing.load(directory), labels=labels,
                    metrics=metrics, model_sha256=file_sha256(path))
