"""A box model directory: the Keras box model and what it needs, saved and read back.

::

    BOX_DIR/box_model.keras        image -> [probabilities (N, C), box (N, 4)] (one box), or
                                   [probabilities, box_confidence (N, K, C), boxes (N, K, 4)]; safe_mode loadable
    BOX_DIR/preprocessing.json     the classifier's Preprocessing
    BOX_DIR/labels.json            class labels in output order
    BOX_DIR/box_train_config.json  BoxTrainConfig
    BOX_DIR/box_metrics.json       training history and scores

It is read by :func:`classifier.model_dir.load_model_dir` with :data:`BOX_MODEL_LAYOUT` (the
trained classifier's directory is read the same way), so both kinds give the same checks and the
same errors. The layout and its check of the model's outputs (:func:`check_box_model_contract`)
are the box model's contract: ``verify`` reads box model directories through them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.model_dir import LABELS_FILENAME, ModelDirLayout, load_model_dir
from datasets.preprocessing import Preprocessing
from groundwork.atomic import write_json
from groundwork.config import save_config

__all__ = ["BOX_MODEL_LAYOUT", "BoxModel", "check_box_model_contract", "load_box_model", "save_box_model"]


def check_box_model_contract(model: Any, labels: tuple[str, ...], preprocessing: Preprocessing,
                             *, source: str = "model") -> None:
    """Check a box model's outputs: ``probabilities`` (N, C) with one class per label, then either
    ``box`` (N, 4) (a one-box head) or ``box_confidence`` (N, K, C) and ``boxes`` (N, K, 4) (the
    ``"centres"`` head: K cells).

    Raises
    ------
    ValueError
        Naming the output shapes found.
    """
    shapes = [tuple(t.shape[1:]) for t in model.outputs]
    c = len(labels)
    one_box = shapes == [(c,), (4,)]
    several = (len(shapes) == 3 and shapes[0] == (c,) and len(shapes[1]) == 2 and shapes[1][1] == c
               and shapes[2] == (shapes[1][0], 4))
    if not (one_box or several):
        raise ValueError(f"{source}: a box model outputs probabilities ({c},) and box (4,), or probabilities "
                         f"({c},), box_confidence (K, {c}) and boxes (K, 4). Received output shapes: {shapes}")


#: The box model directory's files and check, for :func:`classifier.model_dir.load_model_dir`.
BOX_MODEL_LAYOUT = ModelDirLayout(kind="box model directory", model_filename="box_model.keras",
                                  config_filename="box_train_config.json", metrics_filename="box_metrics.json",
                                  written_by="boxstrap train-boxes", check=check_box_model_contract)

MODEL_FILENAME = BOX_MODEL_LAYOUT.model_filename
CONFIG_FILENAME = BOX_MODEL_LAYOUT.config_filename
METRICS_FILENAME = BOX_MODEL_LAYOUT.metrics_filename


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

    Parameters
    ----------
    directory : str or PathLike

    Returns
    -------
    BoxModel

    Raises
    ------
    FileNotFoundError
        If the directory, ``box_model.keras``, ``preprocessing.json`` or ``labels.json`` is missing.
    ValueError
        If a file is not valid (labels not a list of at least 2 distinct non-empty strings, a model
        file Keras cannot load, a Lambda layer), or the model does not output probabilities
        ``(N, C)`` with one class per label and ``box`` ``(N, 4)``.
    """
    loaded = load_model_dir(directory, BOX_MODEL_LAYOUT)
    return BoxModel(directory=loaded.directory, model=loaded.model, preprocessing=loaded.preprocessing,
                    labels=loaded.labels, metrics=loaded.metrics, model_sha256=loaded.model_sha256)
