"""Export a trained model directory to Core ML: an ML Program ``.mlpackage`` and/or a NeuralNetwork ``.mlmodel``.

What the exported model looks like (both formats)::

    input   image            ct.ImageType, (H, W) and colour order, bias and scale from the saved
                             Preprocessing: Core ML does the preprocessing, an app passes a photo
    output  classLabel       the most probable class (string)
    output  classLabelProbs  {label: probability}, labels in the saved order
    output  class_map        (1, h, w, C) float32, only with ``heatmap=True``: one map per class
                             that an app can draw over the photo

How the classifier is made (and why): coremltools 9.0 cannot convert a two-output Keras model
with a ``ClassifierConfig`` (its ``classify`` op sees the wrong tensor, or an ``IndexError`` from
the unused TensorFlow output types), and for NeuralNetwork it turns the *first* output into
the probability dictionary whatever it is. So the Keras model is converted without a classifier
to a MIL program (``convert_to="milinternal"``); there its outputs are found by rank
(probabilities (1, C), class map (1, h, w, C)), renamed, reordered (probabilities first,
class map dropped unless ``heatmap``), and the program is converted again with the
``ClassifierConfig``, which then adds the ``classify`` op (ML Program) or the
``neuralNetworkClassifier`` fields (NeuralNetwork) on the right tensor. One path serves both
formats, with and without the heatmap.

Precision and int8 quantization are :mod:`classifier.coreml_toolkit`'s, shared with the box
model's export (:mod:`detector.box_export`). Measured sizes: ``benchmarks/export_sizes.py``.

Every output is written to a temporary path in the output folder and renamed into place; the
:class:`ExportConfig` is saved beside it as ``export_config.json`` and also stored in the model's
metadata (see :mod:`classifier.export_metadata`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier import coreml_toolkit as toolkit
from classifier.trained_model import INPUT_NAME, TrainedModel, load_trained_model
from datasets.preprocessing import Preprocessing
from groundwork.config import save_config
from groundwork.files import disk_size
from groundwork.paths import check_out_folder

__all__ = ["EXPORT_FORMATS", "ExportConfig", "ExportResult", "export_coreml"]

log = logging.getLogger(__name__)

EXPORT_FORMATS = (*toolkit.FORMATS, "both")
"""What ``ExportConfig.format`` takes: one of the Core ML formats, or both."""
CONFIG_FILENAME = "export_config.json"
LABEL_OUTPUT = "classLabel"
PROBABILITIES_OUTPUT = "classLabelProbs"
CLASS_MAP_OUTPUT = "class_map"


@dataclass(frozen=True)
class ExportConfig:
    """How to export a trained model to Core ML.

    Parameters
    ----------
    format : {"mlprogram", "neuralnetwork", "both"}
        ML Program ``.mlpackage`` (iOS 15+), NeuralNetwork ``.mlmodel`` (iOS 13+), or both.
    precision : {"float16", "float32"}
        Weight (and ML Program compute) precision.
    quantize : {None, "int8"}
        8-bit linear weight quantization.
    heatmap : bool
        Add the ``class_map`` output. Not with ``quantize`` for the ML Program: coremltools
        9.0's weight quantization rebuilds the program with the class map's output after the
        classifier op, and then cannot save the program (its labels list is written only when
        the classifier op comes last). The NeuralNetwork format takes both.
    name : str
        File stem of the exports (Xcode names the generated Swift class after it).
    input_size : (height, width) or None
        Export at another input size than the saved preprocessing's (the network is fully
        convolutional); None keeps the trained size.
    author, license, version, short_description : str
        Core ML metadata; an empty ``short_description`` is generated from the labels.
    """

    format: str = "mlprogram"
    precision: str = "float16"
    quantize: str | None = None
    heatmap: bool = False
    name: str = "BoxstrapClassifier"
    input_size: tuple[int, int] | None = None
    author: str = ""
    license: str = ""
    version: str = ""
    short_description: str = ""

    def __post_init__(self) -> None:
        toolkit.check_choice("format", self.format, EXPORT_FORMATS)
        toolkit.check_choice("precision", self.precision, toolkit.PRECISIONS)
        toolkit.check_choice("quantize", self.quantize, toolkit.QUANTIZATIONS)
        toolkit.check_file_stem(self.name)
        if self.heatmap and self.quantize and "mlprogram" in self.formats:
            raise ValueError(f"heatmap with quantize={self.quantize!r} cannot be exported as an ML Program "
                             "(coremltools 9.0's weight quantization cannot save a classifier with a second output). "
                             "Export the heatmap model without quantize, or as a NeuralNetwork "
                             "(format='neuralnetwork'; --format neuralnetwork).")
        if self.input_size is not None:
            size = tuple(int(v) for v in self.input_size)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"input_size must be (height, width) of positive ints or None. "
                                 f"Received: {self.input_size!r}")
            object.__setattr__(self, "input_size", size)

    @property
    def formats(self) -> tuple[str, ...]:
        """The single formats to write, in order."""
        return ("mlprogram", "neuralnetwork") if self.format == "both" else (self.format,)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_coreml` wrote.

    Attributes
    ----------
    paths : {format: Path}
        Each export (``.mlpackage`` folder or ``.mlmodel`` file).
    sizes : {format: int}
        Bytes on disk of each export (a package's total).
    unquantized_sizes : {format: int}
        With ``quantize``: bytes the same export took before quantization; else empty.
    config_path : Path
        The saved ``export_config.json``.
    """

    paths: dict[str, Path]
    sizes: dict[str, int]
    unquantized_sizes: dict[str, int] = field(default_factory=dict)
    config_path: Path | None = None


def export_coreml(
    model: TrainedModel | str | os.PathLike,
    out_dir: str | os.PathLike,
    config: ExportConfig = ExportConfig(),
    *,
    overwrite: bool = False,
) -> ExportResult:
    """Convert a trained model to Core ML and write it into ``out_dir``.

    Parameters
    ----------
    model : TrainedModel or path of a model directory
    out_dir : str or PathLike
        Folder for ``{config.name}.mlpackage`` / ``{config.name}.mlmodel`` and
        ``export_config.json``; created if needed.
    config : ExportConfig
    overwrite : bool
        Replace existing exports; without it an existing one is an error.

    Returns
    -------
    ExportResult

    Raises
    ------
    FileNotFoundError
        If the model directory or its ``preprocessing.json`` / ``labels.json`` is missing.
    FileExistsError
        If an output exists and ``overwrite`` is false.
    ValueError
        If the labels do not match the model's outputs, the model has a Lambda layer, or the
        input size is one the network cannot take.
    TypeError
        If ``config`` is not an ExportConfig.
    """
    if not isinstance(config, ExportConfig):
        raise TypeError(f"config must be an ExportConfig. Received: {type(config).__name__}")
    out_dir = check_out_folder(out_dir)
    trained = model if isinstance(model, TrainedModel) else load_trained_model(model)
    targets = {fmt: out_dir / f"{config.name}{toolkit.EXTENSIONS[fmt]}" for fmt in config.formats}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass overwrite=True (--overwrite) to "
                              "replace, or choose another output folder or name.")
    sized = trained.at_input_size(config.input_size)
    if sized is not trained:
        log.info("exporting at input size %s (trained at %s)", sized.preprocessing.input_size,
                 trained.preprocessing.input_size)
    preprocessing, keras_model = sized.preprocessing, sized.model
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, sizes, before = {}, {}, {}
    for fmt, target in targets.items():
        start = time.perf_counter()
        mlmodel, keep_alive = _convert(keras_model, preprocessing, trained.labels, fmt, config)
        with toolkit.staging_folder(target) as tmp:
            if config.quantize:
                plain = tmp / f"plain{toolkit.EXTENSIONS[fmt]}"
                mlmodel.save(str(plain))
                before[fmt] = disk_size(plain)
                mlmodel = toolkit.quantize_int8(mlmodel, fmt)
            _describe(mlmodel, trained, preprocessing, fmt, config)
            toolkit.save_into_place(mlmodel, target, tmp)
        del keep_alive
        paths[fmt], sizes[fmt] = target, disk_size(target)
        log.info("wrote %s (%.1f MB%s) in %.1f s", target, sizes[fmt] / 1e6,
                 f", {before[fmt] / 1e6:.1f} MB before int8" if fmt in before else "",
                 time.perf_counter() - start)
    config_path = save_config(config, out_dir / CONFIG_FILENAME)
    return ExportResult(paths=paths, sizes=sizes, unquantized_sizes=before, config_path=config_path)


# --- conversion --------------------------------------------------------------------------------
def _convert(keras_model: Any, pre: Preprocessing, labels: tuple[str, ...], fmt: str,
             config: ExportConfig) -> tuple[Any, Any]:
    """Convert to one Core ML format; return (MLModel, object to keep alive until saved)."""
    with toolkit.quiet_coremltools():  # on Linux, importing coremltools logs "Failed to load _MLModelProxy" (no Core ML here)
        import coremltools as ct

    program, options = toolkit.convert_to_mil(keras_model, pre, fmt, config.precision)
    main = program.functions["main"]
    by_rank = {var.rank: var for var in main.outputs}
    if set(by_rank) != {2, 4}:
        raise ValueError(f"expected the converted program to output probabilities (rank 2) and a class map "
                         f"(rank 4). Received ranks: {[v.rank for v in main.outputs]}")
    probabilities, class_map = by_rank[2], by_rank[4]
    # NeuralNetwork: the probability dictionary is named after the probabilities blob.
    probabilities.name = PROBABILITIES_OUTPUT if fmt == "neuralnetwork" else "probabilities"
    class_map.name = CLASS_MAP_OUTPUT
    main.set_outputs([probabilities, class_map] if config.heatmap else [probabilities])
    main.set_output_types(None)
    classifier = ct.ClassifierConfig(list(labels), predicted_feature_name=LABEL_OUTPUT,
                                     predicted_probabilities_output=probabilities.name)
    converted = toolkit.convert_from_mil(program, fmt, options, precision=config.precision,
                                         quantize=config.quantize, classifier_config=classifier)
    if fmt == "neuralnetwork":
        return converted, None
    spec = converted.get_spec()
    ct.utils.rename_feature(spec, f"{LABEL_OUTPUT}_probs", PROBABILITIES_OUTPUT)
    renamed = ct.models.MLModel(spec, weights_dir=converted.weights_dir, skip_model_load=True)
    return renamed, converted  # ``converted`` owns the weights folder ``renamed`` reads


def _describe(mlmodel: Any, trained: TrainedModel, pre: Preprocessing, fmt: str, config: ExportConfig) -> None:
    """Fill in descriptions and boxstrap's metadata (readable with read_export_metadata)."""
    labels = list(trained.labels)
    height, width = pre.input_size
    mlmodel.input_description[INPUT_NAME] = toolkit.image_input_description(pre)
    mlmodel.output_description[LABEL_OUTPUT] = "Most probable class"
    mlmodel.output_description[PROBABILITIES_OUTPUT] = "Probability of each class"
    if config.heatmap:
        mlmodel.output_description[CLASS_MAP_OUTPUT] = (
            "Class maps (1, h, w, classes): the class convolution's output before pooling; upsample one "
            "class's map to the photo to draw where that class is.")
    outputs = {"label": LABEL_OUTPUT, "probabilities": PROBABILITIES_OUTPUT,
               "class_map": CLASS_MAP_OUTPUT if config.heatmap else None}
    metadata = toolkit.boxstrap_metadata(
        preprocessing=pre, labels=labels, metrics=trained.metrics, outputs=outputs, fmt=fmt, config=config,
        source_sha256=trained.model_sha256, preview_type="imageClassifier")
    summary = config.short_description or (
        f"Classifies a photo as one of {', '.join(labels)} (boxstrap class-map classifier, "
        f"{width}x{height} input{', with class heatmaps' if config.heatmap else ''}).")
    toolkit.write_metadata(mlmodel, metadata, short_description=summary, author=config.author,
                           license=config.license, version=config.version)
