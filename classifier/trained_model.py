"""A trained model directory read back: the Keras model and everything saved beside it.

:func:`load_trained_model` reads the directory ``boxstrap train`` writes (docs/ARCHITECTURE.md)::

    MODEL_DIR/model.keras          loaded with safe_mode=True (no Lambda layers, no pickled code)
    MODEL_DIR/preprocessing.json   datasets.preprocessing.Preprocessing (required)
    MODEL_DIR/labels.json          class labels in output order (required)
    MODEL_DIR/train_config.json    TrainConfig as a dict (optional, {} when absent)
    MODEL_DIR/metrics.json         training metrics (optional, {} when absent)

and checks that they fit together: the model's input is ``image`` (H, W, 3), its outputs are
``probabilities`` (N, C) and ``class_map`` (N, h, w, C), and there is one label per class.
Prediction, export and verification all start from the :class:`TrainedModel` it returns.
The reading itself (folder, labels, preprocessing, safe Keras load, hash) is
:func:`classifier.model_dir.load_model_dir`'s, shared with the box model directory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from classifier.backbones.backbone_spec import BackboneSpec
from classifier.backbones.registry import UNNAMED_BACKBONE, get_backbone
from classifier.model_dir import ModelDirLayout, load_model_dir
from datasets.preprocessing import Preprocessing

__all__ = ["INPUT_NAME", "TRAINED_MODEL_LAYOUT", "TrainedModel", "load_trained_model", "output_shapes"]

log = logging.getLogger(__name__)

MODEL_FILENAME = "model.keras"
TRAIN_CONFIG_FILENAME = "train_config.json"
METRICS_FILENAME = "metrics.json"
INPUT_NAME = "image"
OUTPUT_NAMES = ("probabilities", "class_map")


@dataclass(frozen=True)
class TrainedModel:
    """A loaded model directory.

    Attributes
    ----------
    directory : Path
        The model directory.
    model : keras.Model
        Input ``image`` (N, H, W, 3) float32, already preprocessed; outputs ``probabilities``
        (N, C) and ``class_map`` (N, h, w, C).
    preprocessing : Preprocessing
        How an RGB image becomes the model's input.
    labels : tuple of str
        Class labels in output order (C of them).
    config : dict
        The training config as saved (``train_config.json``), ``{}`` if there is none.
    metrics : dict
        Training metrics (``metrics.json``), ``{}`` if there are none.
    model_sha256 : str
        Hex SHA-256 of ``model.keras`` (identifies the exact weights an export came from).
    """

    directory: Path
    model: Any = field(repr=False)
    preprocessing: Preprocessing
    labels: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict, repr=False)
    metrics: dict[str, Any] = field(default_factory=dict, repr=False)
    model_sha256: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return len(self.labels)

    @property
    def backbone(self) -> BackboneSpec | None:
        """The spec of the backbone the model was trained on (``train_config.json``'s ``backbone``).

        A training config without the name is from before the registry (VGG16); ``None`` when the
        directory has no training config at all (a model boxstrap did not train).
        """
        if not self.config:
            return None
        return get_backbone(self.config.get("backbone", UNNAMED_BACKBONE))

    def at_input_size(self, size: tuple[int, int] | None) -> TrainedModel:
        """The same model for photos of ``size`` (height, width): the fully convolutional network
        rebuilt at that input with the same weights, its preprocessing resizing to it. ``None`` or
        the trained size: this model itself.

        Raises
        ------
        ValueError
            If the backbone or the network's stride cannot take ``size`` (say why).
        """
        pre = self.preprocessing
        if size is None or tuple(size) == pre.input_size:
            return self
        import keras

        if self.backbone is not None:
            self.backbone.check_input_size(size)  # the backbone's own rule (VGG16: multiples of 32)
        stride = pre.input_size[0] // output_shapes(self.model)["class_map"][1]
        height, width = size
        if height % stride or width % stride:
            raise ValueError(f"input_size must be a multiple of the network's stride {stride} (class-map cells of "
                             f"{stride}x{stride} pixels). Received: {tuple(size)}")
        image = keras.Input((height, width, 3), name=INPUT_NAME)
        try:
            resized = keras.models.clone_model(self.model, input_tensors=image)
        except (ValueError, TypeError) as error:
            raise ValueError(f"input_size {tuple(size)}: the network cannot be rebuilt at this size: {error}") from None
        resized.set_weights(self.model.get_weights())
        class_map = output_shapes(resized)["class_map"]
        if (class_map[1] * stride, class_map[2] * stride) != (height, width):
            raise ValueError(f"input_size {tuple(size)} gives a {class_map[1]}x{class_map[2]} class map that does not "
                             f"tile the image in {stride}-pixel cells; choose a size the network divides evenly.")
        return replace(self, model=resized, preprocessing=replace(pre, input_size=(height, width)))

    @property
    def feature_layer(self) -> str:
        """The backbone spec's feature layer: what the localizer and the box model read.

        Raises
        ------
        ValueError
            If the directory has no ``train_config.json`` to name the backbone.
        """
        if self.backbone is None:
            raise ValueError(f"{self.directory / TRAIN_CONFIG_FILENAME} not found: boxes need to know the backbone "
                             "the model was trained on, and that file names it. Is this a directory written by "
                             "`boxstrap train`?")
        return self.backbone.feature_layer

    @property
    def map_layer(self) -> str:
        """The layer the class-map convolution reads (:func:`classifier.model.map_layer`): the
        descriptors the cell localizer learns from. The feature layer unless the head reads more
        (a context layer, the multilevel taps)."""
        from classifier.model import map_layer

        feature_layer = self.feature_layer
        return map_layer(self.model, self.backbone.name) if self.backbone is not None else feature_layer

    @property
    def model_path(self) -> Path:
        """Path of ``model.keras``."""
        return self.directory / MODEL_FILENAME


def load_trained_model(directory: str | os.PathLike) -> TrainedModel:
    """Load a trained model directory and check that its parts agree.

    Parameters
    ----------
    directory : str or PathLike
        A directory written by ``boxstrap train``.

    Returns
    -------
    TrainedModel

    Raises
    ------
    FileNotFoundError
        If the directory, ``model.keras``, ``preprocessing.json`` or ``labels.json`` is missing.
    ValueError
        If a file is not valid, the model has a Lambda layer (or other code safe mode refuses),
        its inputs/outputs do not follow the contract, the labels do not match the number of
        classes, or the saved input size does not match a fixed-size model input.
    """
    loaded = load_model_dir(directory, TRAINED_MODEL_LAYOUT)
    return TrainedModel(directory=loaded.directory, model=loaded.model, preprocessing=loaded.preprocessing,
                        labels=loaded.labels, config=loaded.config, metrics=loaded.metrics,
                        model_sha256=loaded.model_sha256)


def check_model_contract(model: Any, labels: tuple[str, ...], preprocessing: Preprocessing,
                         *, source: str = "model") -> None:
    """Check a Keras model against the model-directory contract (see module docstring).

    Raises
    ------
    ValueError
        Naming what does not match and the values found.
    """
    lambdas = [layer.name for layer in _all_layers(model) if type(layer).__name__ == "Lambda"]
    if lambdas:
        raise ValueError(f"{source}: has Lambda layers {lambdas}; boxstrap models must not (they hold "
                         "arbitrary Python code, cannot be loaded safely, and do not convert to Core ML).")
    input_names = [t.name for t in model.inputs]
    if len(model.inputs) != 1:
        raise ValueError(f"{source}: must have exactly one input named {INPUT_NAME!r}. Received inputs: "
                         f"{input_names}")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"{source}: the input must be (N, H, W, 3). Received shape: {shape}")
    if shape[1] is not None and shape[2] is not None and tuple(shape[1:3]) != preprocessing.input_size:
        raise ValueError(f"{source}: the model's input size {tuple(shape[1:3])} does not match the saved "
                         f"preprocessing input_size {preprocessing.input_size}.")
    outputs = output_shapes(model)
    missing = [name for name in OUTPUT_NAMES if name not in outputs]
    if missing:
        raise ValueError(f"{source}: outputs must be named {list(OUTPUT_NAMES)}. Received: {list(outputs)}")
    probs, class_map = outputs["probabilities"], outputs["class_map"]
    if len(probs) != 2 or len(class_map) != 4 or probs[-1] != class_map[-1]:
        raise ValueError(f"{source}: expected probabilities (N, C) and class_map (N, h, w, C). "
                         f"Received: probabilities {probs}, class_map {class_map}")
    if probs[-1] != len(labels):
        raise ValueError(f"labels must have one entry per model output: the model has {probs[-1]} classes, "
                         f"labels.json has {len(labels)}: {list(labels)}")


def output_shapes(model: Any) -> dict[str, tuple]:
    """Map each output name of a Keras model to its shape (batch dimension ``None``)."""
    names = list(getattr(model, "output_names", None) or [t.name for t in model.outputs])
    return {name: tuple(t.shape) for name, t in zip(names, model.outputs, strict=True)}


def _all_layers(model: Any) -> list:
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        if hasattr(layer, "layers"):
            found.extend(_all_layers(layer))
    return found


#: The trained classifier's directory, read by :func:`classifier.model_dir.load_model_dir`.
TRAINED_MODEL_LAYOUT = ModelDirLayout(kind="trained model directory", model_filename=MODEL_FILENAME,
                                      config_filename=TRAIN_CONFIG_FILENAME, metrics_filename=METRICS_FILENAME,
                                      written_by="boxstrap train", check=check_model_contract)
