"""A model directory read back: the one loader of trained classifiers and box models.

Both kinds of model directory hold a Keras model and what it needs beside it (docs/ARCHITECTURE.md)::

    DIR/<model file>        loaded with safe_mode=True (no Lambda layers, no pickled code)
    DIR/preprocessing.json  datasets.preprocessing.Preprocessing (required)
    DIR/labels.json         class labels in output order (required)
    DIR/<config file>       the config it was trained with (optional, {} when absent)
    DIR/<metrics file>      its metrics (optional, {} when absent)

A :class:`ModelDirLayout` names the files of one kind: the trained classifier's is
``classifier.trained_model.TRAINED_MODEL_LAYOUT`` (``model.keras``, ``boxstrap train``), the box
model's is ``detector.box_model_dir.BOX_MODEL_LAYOUT`` (``box_model.keras``, ``boxstrap train-boxes``;
the box model is the classifier with a box head). :func:`load_model_dir` checks the
folder, validates the labels, reads the preprocessing, loads the model safely (a file Keras cannot
load is a ``ValueError`` naming the file), hashes it, and runs the layout's check of the model's
inputs and outputs. ``classifier.trained_model.load_trained_model``,
``detector.box_model_dir.load_box_model`` and ``verify`` all read model directories through it.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets.preprocessing import Preprocessing
from groundwork.files import file_sha256

__all__ = ["LABELS_FILENAME", "ModelDir", "ModelDirLayout", "load_model_dir"]

log = logging.getLogger(__name__)

LABELS_FILENAME = "labels.json"
# Modules whose import registers the custom (serializable) Keras layers boxstrap models use.
_CUSTOM_LAYER_MODULES = ("classifier.pooling",)

#: ``check(model, labels, preprocessing, *, source)``: raises ``ValueError`` when the model does not fit.
ModelCheck = Callable[[Any, tuple[str, ...], Preprocessing, str], None]


@dataclass(frozen=True)
class ModelDirLayout:
    """The files of one kind of model directory and the check its model must pass.

    Attributes
    ----------
    kind : str
        What the directory is called in messages ("trained model directory").
    model_filename, config_filename, metrics_filename : str
        The Keras model, the training config (optional) and the metrics (optional).
    written_by : str
        The command that writes such a directory (named in messages).
    check : callable, optional
        ``check(model, labels, preprocessing, *, source)`` raising ``ValueError`` naming what
        does not fit (``source`` is the model file); run after loading.
    """

    kind: str
    model_filename: str
    config_filename: str
    metrics_filename: str
    written_by: str
    check: ModelCheck | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ModelDir:
    """A loaded model directory.

    Attributes
    ----------
    directory : Path
    model : keras.Model
    preprocessing : Preprocessing
        How an RGB image becomes the model's input.
    labels : tuple of str
        Class labels in output order.
    layout : ModelDirLayout
        The kind of directory it was read as.
    config, metrics : dict
        As saved, ``{}`` if the file is absent.
    model_sha256 : str
        Hex SHA-256 of the model file (identifies the exact weights an export came from).
    """

    directory: Path
    model: Any = field(repr=False)
    preprocessing: Preprocessing
    labels: tuple[str, ...]
    layout: ModelDirLayout = field(repr=False)
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    metrics: dict[str, Any] = field(default_factory=dict, repr=False)
    model_sha256: str = ""

    @property
    def model_path(self) -> Path:
        """Path of the model file."""
        return self.directory / self.layout.model_filename


def load_model_dir(directory: str | os.PathLike, layout: ModelDirLayout) -> ModelDir:
    """Load a model directory of the kind ``layout`` describes and check that its parts agree.

    Parameters
    ----------
    directory : str or PathLike
    layout : ModelDirLayout
        E.g. ``classifier.trained_model.TRAINED_MODEL_LAYOUT`` or ``detector.box_model_dir.BOX_MODEL_LAYOUT``.

    Returns
    -------
    ModelDir

    Raises
    ------
    FileNotFoundError
        If the directory, the model file, ``preprocessing.json`` or ``labels.json`` is missing.
    ValueError
        If a file is not valid (the labels not a list of at least 2 distinct non-empty strings,
        JSON that does not parse, a model file Keras cannot load), the model has a Lambda layer
        (or other code safe mode refuses), or it fails the layout's check.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"directory must be a {layout.kind}. Received: {str(directory)!r} "
                                "(not a directory)")
    model_path = directory / layout.model_filename
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} not found: is {str(directory)!r} a {layout.kind} written by "
                                f"`{layout.written_by}`?")
    preprocessing = Preprocessing.load(directory)
    labels = _read_labels(directory / LABELS_FILENAME)
    config = _read_optional_json(directory / layout.config_filename)
    metrics = _read_optional_json(directory / layout.metrics_filename)
    start = time.perf_counter()
    model = _load_keras(model_path)
    log.info("loaded %s (%d parameters) in %.1f s", model_path, model.count_params(),
             time.perf_counter() - start)
    if layout.check is not None:
        layout.check(model, labels, preprocessing, source=str(model_path))
    return ModelDir(directory=directory, model=model, preprocessing=preprocessing, labels=labels, layout=layout,
                    config=config, metrics=metrics, model_sha256=file_sha256(model_path))


def _load_keras(path: Path) -> Any:
    import keras

    for module in _CUSTOM_LAYER_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:  # pragma: no cover - the module is part of boxstrap
            log.debug("custom layer module %s not importable", module)
    _check_archive(path)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as error:
        text = str(error)
        if "Lambda" in text or "safe_mode" in text or "unsafe" in text.lower():
            raise ValueError(f"{path}: refused to load with safe_mode=True: the model has a Lambda layer (or "
                             "other serialized Python code). boxstrap models do their preprocessing outside "
                             f"the network and must not contain Lambda layers. Keras said: {text}") from None
        raise ValueError(f"{path}: not a loadable Keras model: {text}") from None
    except (OSError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a loadable Keras model: {error}") from None


def _check_archive(path: Path) -> None:
    """A ``.keras`` file is a zip archive: say so when it is truncated or not one (Keras says "File not found")."""
    damaged = f"{path}: the file is truncated or damaged, or not a .keras archive"
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{damaged} (no zip directory at its end). Copy it again or retrain the model.")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"{damaged} ({error}). Copy it again or retrain the model.") from None
    if bad is not None:
        raise ValueError(f"{damaged} ({bad} inside it fails its checksum). Copy it again or retrain the model.")


def _read_labels(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a model directory keeps its class labels (in output order) "
                                "there.")
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if (not isinstance(labels, list) or len(labels) < 2
            or not all(isinstance(v, str) and v for v in labels) or len(set(labels)) != len(labels)):
        raise ValueError(f"{path}: labels must be a list of at least 2 distinct non-empty strings. "
                         f"Received: {labels!r}")
    return tuple(labels)


def _read_optional_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        log.warning("%s not found; continuing without it", path)
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object. Received: {type(data).__name__}")
    return data
