"""Export a box model to Core ML the way Apple's Vision framework reads object detectors.

The exported model is a pipeline of two models::

    image ──> box network (ML Program or NeuralNetwork)
                 raw_confidence  (K, C)   per box, its confidence per class
                 raw_coordinates (K, 4)   normalised (centre x, centre y, width, height)
          ──> NonMaximumSuppression (Core ML's own)
                 confidence  (0..1, C)
                 coordinates (0..1, 4)

Vision returns ``VNRecognizedObjectObservation``s only for a model that ends in Core ML's
non-maximum suppression, with outputs named ``confidence`` and ``coordinates``; a plain network
with those outputs gives raw feature values instead. A ``"centres"`` box model gives a box per
cell of its feature grid (K cells), its confidence the cell's centre score times the class
probabilities; suppression keeps the boxes above ``confidenceThreshold`` that overlap no better
one by more than ``iouThreshold`` (optional inputs, defaults from :class:`BoxExportConfig`), so
Vision returns one observation per object, with that confidence (``boxstrap detect`` also
weighs it by the cells' agreement on the box, :mod:`detector.box_decode`, which needs the cells
suppression does not return). A one-box model gives K = 1: its class probabilities
and its box, kept or dropped by ``confidenceThreshold``. Preprocessing (colour order, bias, scale) is the image input's
own, as in the classifier export, and the labels are the suppression model's class labels.
Conversion, precision, metadata and writing the package are :mod:`classifier.coreml_toolkit`'s,
shared with the classifier export.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier import coreml_toolkit as toolkit
from classifier.trained_model import INPUT_NAME
from detector import box_decode
from detector.box_model_dir import BoxModel, load_box_model
from groundwork.config import save_config
from groundwork.files import disk_size
from groundwork.paths import check_out_folder

__all__ = ["BoxExportConfig", "export_box_model"]

log = logging.getLogger(__name__)

CONFIG_FILENAME = "box_export_config.json"
RAW_CONFIDENCE = "raw_confidence"
RAW_COORDINATES = "raw_coordinates"
CONFIDENCE = "confidence"
COORDINATES = "coordinates"
IOU_THRESHOLD = "iouThreshold"
CONFIDENCE_THRESHOLD = "confidenceThreshold"


@dataclass(frozen=True)
class BoxExportConfig:
    """How to export a box model.

    Parameters
    ----------
    format : {"mlprogram", "neuralnetwork"}
        Format of the box network inside the pipeline.
    precision : {"float16", "float32"}
        ML Program compute precision (NeuralNetwork: weight precision).
    name : str
        File stem of the export.
    iou_threshold, confidence_threshold : float
        Defaults of the suppression model's optional inputs of the same names.
    author, license, version, short_description : str
        Core ML metadata.
    """

    format: str = "mlprogram"
    precision: str = "float16"
    name: str = "BoxstrapDetector"
    iou_threshold: float = box_decode.IOU_THRESHOLD
    confidence_threshold: float = box_decode.CONFIDENCE_THRESHOLD
    author: str = ""
    license: str = ""
    version: str = ""
    short_description: str = ""

    def __post_init__(self) -> None:
        toolkit.check_choice("format", self.format, toolkit.FORMATS)
        toolkit.check_choice("precision", self.precision, toolkit.PRECISIONS)
        for name in ("iou_threshold", "confidence_threshold"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]. Received: {getattr(self, name)!r}")
        toolkit.check_file_stem(self.name)


def export_box_model(model: BoxModel | str | os.PathLike, out_dir: str | os.PathLike,
                     config: BoxExportConfig = BoxExportConfig(), *, overwrite: bool = False) -> Path:
    """Convert a box model directory to a Vision object-detector pipeline; return its path.

    Raises
    ------
    FileNotFoundError
        If the box model directory or a file in it is missing.
    FileExistsError
        If the export exists and ``overwrite`` is false.
    ValueError
        If the model's outputs are not ``probabilities`` (1, C) and ``box`` (1, 4).
    """
    if not isinstance(config, BoxExportConfig):
        raise TypeError(f"config must be a BoxExportConfig. Received: {type(config).__name__}")
    out_dir = check_out_folder(out_dir)
    box_model = model if isinstance(model, BoxModel) else load_box_model(model)
    target = out_dir / f"{config.name}{toolkit.EXTENSIONS[config.format]}"
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it.")
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    network, keep_alive = _convert_network(box_model, config)
    pipeline = _pipeline(network, box_model.labels, config, boxes=_boxes_per_photo(box_model))
    _describe(pipeline, box_model, config)
    with toolkit.staging_folder(target) as tmp:
        toolkit.save_into_place(pipeline, target, tmp)
    del keep_alive
    save_config(config, out_dir / CONFIG_FILENAME)
    log.info("wrote %s (%.1f MB) in %.1f s", target, disk_size(target) / 1e6, time.perf_counter() - start)
    return target


def _convert_network(box_model: BoxModel, config: BoxExportConfig) -> tuple[Any, Any]:
    from coremltools.converters.mil import Builder as mb

    program, options = toolkit.convert_to_mil(box_model.model, box_model.preprocessing, config.format, config.precision)
    main = program.functions["main"]
    shapes = [tuple(var.shape) for var in main.outputs]
    c = len(box_model.labels)
    if shapes == [(1, c), (1, 4)]:  # one box: the batch of one is the list of boxes
        confidence, coordinates = main.outputs
        confidence.name, coordinates.name = RAW_CONFIDENCE, RAW_COORDINATES
    elif len(shapes) == 3 and shapes[0] == (1, c) and len(shapes[1]) == 3 and shapes[1][::2] == (1, c) \
            and shapes[2] == (1, shapes[1][1], 4):
        # Every cell's box: (1, K, C) and (1, K, 4) become suppression's (K, C) and (K, 4).
        with main:
            confidence = mb.squeeze(x=main.outputs[1], axes=[0], name=RAW_CONFIDENCE)
            coordinates = mb.squeeze(x=main.outputs[2], axes=[0], name=RAW_COORDINATES)
        main.set_outputs([confidence, coordinates])
    else:
        raise ValueError(f"a box model must output probabilities (1, {c}) and box (1, 4), or probabilities (1, {c}), "
                         f"box_confidence (1, K, {c}) and boxes (1, K, 4), in that order. Received: {shapes}")
    main.set_output_types(None)
    converted = toolkit.convert_from_mil(program, config.format, options, precision=config.precision)
    return converted, converted


def _pipeline(network: Any, labels: tuple[str, ...], config: BoxExportConfig, boxes: int = 1) -> Any:
    """The network (``boxes`` boxes per photo) followed by Core ML's non-maximum suppression, as one
    pipeline model."""
    import coremltools as ct
    from coremltools.models import datatypes
    from coremltools.models.pipeline import Pipeline

    net_spec = network.get_spec()
    widths = {RAW_CONFIDENCE: len(labels), RAW_COORDINATES: 4}
    for output in net_spec.description.output:
        # The network gives its boxes: (K, C) and (K, 4); NeuralNetwork specs leave the shape out.
        del output.type.multiArrayType.shape[:]
        output.type.multiArrayType.shape.extend([boxes, widths[output.name]])
    nms = ct.proto.Model_pb2.Model()
    nms.specificationVersion = net_spec.specificationVersion
    for name, out_name in ((RAW_CONFIDENCE, CONFIDENCE), (RAW_COORDINATES, COORDINATES)):
        source = next(o for o in net_spec.description.output if o.name == name)
        nms.description.input.add().CopyFrom(source)
        out = nms.description.output.add()
        out.CopyFrom(source)
        out.name = out_name
        for feature in (nms.description.input[-1], out):
            array = feature.type.multiArrayType
            del array.shape[:]
            # Suppression takes and gives any number of boxes: (0..n, classes) / (0..n, 4).
            array.shapeRange.sizeRanges.add(lowerBound=0, upperBound=-1)
            array.shapeRange.sizeRanges.add(lowerBound=widths[name], upperBound=widths[name])
            array.dataType = ct.proto.FeatureTypes_pb2.ArrayFeatureType.DOUBLE
    for name in (IOU_THRESHOLD, CONFIDENCE_THRESHOLD):
        threshold = nms.description.input.add()
        threshold.name = name
        threshold.type.doubleType.MergeFromString(b"")
        threshold.type.isOptional = True
    suppression = nms.nonMaximumSuppression
    suppression.confidenceInputFeatureName = RAW_CONFIDENCE
    suppression.coordinatesInputFeatureName = RAW_COORDINATES
    suppression.confidenceOutputFeatureName = CONFIDENCE
    suppression.coordinatesOutputFeatureName = COORDINATES
    suppression.iouThresholdInputFeatureName = IOU_THRESHOLD
    suppression.confidenceThresholdInputFeatureName = CONFIDENCE_THRESHOLD
    suppression.iouThreshold = config.iou_threshold
    suppression.confidenceThreshold = config.confidence_threshold
    suppression.pickTop.perClass = False
    suppression.stringClassLabels.vector.extend(labels)

    pipeline = Pipeline(
        input_features=[(INPUT_NAME, datatypes.Array(1)), (IOU_THRESHOLD, datatypes.Double()),
                        (CONFIDENCE_THRESHOLD, datatypes.Double())],
        output_features=[CONFIDENCE, COORDINATES],
    )
    pipeline.add_model(net_spec)
    pipeline.add_model(nms)
    spec = pipeline.spec
    spec.description.input[0].CopyFrom(net_spec.description.input[0])
    for feature in spec.description.input[1:]:
        feature.type.isOptional = True
    for feature, source in zip(spec.description.output, nms.description.output, strict=True):
        feature.CopyFrom(source)
    spec.specificationVersion = max(net_spec.specificationVersion, 4)
    weights_dir = network.weights_dir if config.format == "mlprogram" else None
    return ct.models.MLModel(spec, weights_dir=weights_dir, skip_model_load=True)


def _boxes_per_photo(box_model: BoxModel) -> int:
    """1 for a one-box model; the cells of a ``"centres"`` one (each gives a box to suppression)."""
    outputs = box_model.model.outputs
    return 1 if len(outputs) == 2 else int(outputs[2].shape[1])


def _describe(mlmodel: Any, box_model: BoxModel, config: BoxExportConfig) -> None:
    pre = box_model.preprocessing
    height, width = pre.input_size
    labels = list(box_model.labels)
    mlmodel.input_description[INPUT_NAME] = toolkit.image_input_description(pre)
    mlmodel.input_description[IOU_THRESHOLD] = f"(optional) IoU threshold of suppression, default {config.iou_threshold}"
    mlmodel.input_description[CONFIDENCE_THRESHOLD] = (
        f"(optional) Boxes below this confidence are dropped, default {config.confidence_threshold}")
    mlmodel.output_description[CONFIDENCE] = "Confidence of each class for each box (boxes x classes)"
    mlmodel.output_description[COORDINATES] = "Boxes (boxes x 4): centre x, centre y, width, height, normalised"
    metadata = toolkit.boxstrap_metadata(
        preprocessing=pre, labels=labels, metrics=box_model.metrics,
        outputs={"confidence": CONFIDENCE, "coordinates": COORDINATES}, fmt=config.format, config=config,
        source_sha256=box_model.model_sha256, preview_type="objectDetector")
    one = _boxes_per_photo(box_model) == 1
    summary = config.short_description or (
        f"Finds {'one' if one else 'every'} {' or '.join(labels)} in a photo: "
        f"{'a box and its class' if one else 'a box and a class for each'} (boxstrap box model, {width}x{height} input).")
    toolkit.write_metadata(mlmodel, metadata, short_description=summary, author=config.author,
                           license=config.license, version=config.version)
