"""What a saved Core ML model says about itself, read from its spec (no prediction needed).

Both kinds boxstrap exports are read: a ``.mlmodel`` NeuralNetwork (classifier), whose image
preprocessing is the spec's ``scaler``, and a ``.mlpackage`` ML Program, whose preprocessing is
the ``mul``/``add`` ops coremltools puts right after the image input (``image__scaled__``,
``image__biased__``). The colour order is the image input's ``colorSpace`` in both.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.files import disk_size

__all__ = ["ImageInput", "ModelInfo", "SPEC_VERSION_TO_TARGET", "load_spec", "neural_network", "read_model_info"]

log = logging.getLogger(__name__)

# Core ML specification version -> the oldest OS that runs it.
SPEC_VERSION_TO_TARGET = {
    1: "iOS11", 2: "iOS11.2", 3: "iOS12", 4: "iOS13", 5: "iOS14", 6: "iOS15", 7: "iOS16", 8: "iOS17", 9: "iOS18",
}
_COLOR_SPACES = {10: "GRAYSCALE", 20: "RGB", 30: "BGR", 40: "GRAYSCALE_FLOAT16"}


@dataclass(frozen=True)
class ImageInput:
    """The image input of a Core ML model and the preprocessing Core ML applies to it.

    ``bias`` is per network channel, in ``color_layout`` order (like
    :class:`datasets.preprocessing.Preprocessing`): ``x[c] = scale * pixel[c] + bias[c]``.
    """

    name: str
    height: int
    width: int
    color_layout: str
    bias: tuple[float, float, float]
    scale: float


@dataclass(frozen=True)
class ModelInfo:
    """Static facts of a saved Core ML model.

    Attributes
    ----------
    path : Path
    kind : {"neuralnetwork", "mlprogram"}
    spec : the protobuf ``Model``
    image_inputs : image inputs, in spec order
    input_names, output_names : feature names
    labels : class labels in the classifier's output order, or None if not a classifier
    predicted_feature, probabilities_output : classifier output names (or None)
    precision : "FP32" or "FP16" (ML Program: fp16 ops; NeuralNetwork: fp16 weights)
    spec_version : int, and ``deployment_target`` the oldest OS it runs on
    file_size : bytes on disk (a package's total)
    metadata : user-defined metadata
    """

    path: Path
    kind: str
    spec: Any = field(repr=False)
    image_inputs: tuple[ImageInput, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    labels: tuple[str, ...] | None
    predicted_feature: str | None
    probabilities_output: str | None
    precision: str
    spec_version: int
    deployment_target: str
    file_size: int
    metadata: dict[str, str]
    program: Any = field(default=None, repr=False)

    def metadata_json(self, key: str) -> Any:
        """Parse user-defined metadata ``key`` as JSON; None if absent.

        Raises
        ------
        ValueError
            If the value is not valid JSON.
        """
        if key not in self.metadata:
            return None
        try:
            return json.loads(self.metadata[key])
        except json.JSONDecodeError as error:
            raise ValueError(f"{self.path}: metadata {key!r} is not valid JSON: {error}") from None


def read_model_info(path: str | os.PathLike) -> ModelInfo:
    """Read a ``.mlmodel`` or ``.mlpackage`` and return its :class:`ModelInfo`.

    An ML Program is loaded as a MIL program with its weights (``ModelInfo.program``), which
    the reference runtime executes.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is neither a NeuralNetwork nor an ML Program model.
    """

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No Core ML model at {path} (expected a .mlmodel file or .mlpackage folder).")
    mlmodel, spec = load_spec(path)
    kind_field = spec.WhichOneof("Type")
    damaged = f"{path}: a damaged or incomplete Core ML model, coremltools cannot read it"
    program = None
    if kind_field in ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor"):
        kind = "neuralnetwork"
    elif kind_field == "mlProgram":
        kind = "mlprogram"
        from coremltools.converters.mil.frontend.milproto.load import load as load_milproto

        try:
            program = load_milproto(spec, specification_version=spec.specificationVersion,
                                    file_weights_dir=mlmodel.weights_dir)
        except Exception as error:  # noqa: BLE001 - truncated or missing weights end here
            raise ValueError(f"{damaged}: its program or weights ({mlmodel.weights_dir}) do not load "
                             f"({type(error).__name__}: {error}). Export it again.") from None
    else:
        raise ValueError(f"{path}: model type {kind_field!r} is not supported; expected a NeuralNetwork or ML Program.")

    description = spec.description
    labels = _labels(spec, kind, program)
    precision = _precision(spec, kind, program)
    info = ModelInfo(
        path=path,
        kind=kind,
        spec=spec,
        image_inputs=tuple(_image_inputs(spec, kind, program)),
        input_names=tuple(f.name for f in description.input),
        output_names=tuple(f.name for f in description.output),
        labels=labels,
        predicted_feature=description.predictedFeatureName or None,
        probabilities_output=description.predictedProbabilitiesName or None,
        precision=precision,
        spec_version=int(spec.specificationVersion),
        deployment_target=SPEC_VERSION_TO_TARGET.get(int(spec.specificationVersion), f"spec{spec.specificationVersion}"),
        file_size=disk_size(path),
        metadata=dict(description.metadata.userDefined),
        program=program,
    )
    log.debug("read %s: %s, %s, spec %d", path, kind, precision, info.spec_version)
    return info


def load_spec(path: str | os.PathLike) -> tuple[Any, Any]:
    """``(MLModel, spec)`` of a Core ML file without compiling it; a damaged file is a clear error.

    Raises
    ------
    ValueError
        Naming the file and what is wrong: a missing part of an ``.mlpackage``, an empty file, or
        what coremltools could not read (protobuf errors, a missing weights file).
    """
    import coremltools as ct

    path = Path(path)
    _check_package(path)
    try:  # coremltools' own errors (protobuf, RuntimeError on a missing weights file) name no cause
        mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
        return mlmodel, mlmodel.get_spec()
    except Exception as error:  # noqa: BLE001 - any failure of the reader on untrusted bytes is this
        raise ValueError(f"{path}: a damaged or incomplete Core ML model, coremltools cannot read it "
                         f"({type(error).__name__}: {error}). Export it again.") from None


def _check_package(path: Path) -> None:
    """The files an ``.mlpackage`` must hold, named when missing (coremltools' errors do not)."""
    if path.suffix != ".mlpackage":
        if path.is_dir():
            raise ValueError(f"{path} is a folder but not an .mlpackage; expected a .mlmodel file or .mlpackage.")
        if path.stat().st_size == 0:
            raise ValueError(f"{path} is empty (0 bytes): a damaged or incomplete export. Export it again.")
        return
    data = path / "Data" / "com.apple.CoreML"
    for required in (path / "Manifest.json", data / "model.mlmodel"):
        if not required.is_file():
            raise ValueError(f"{path}: a damaged or incomplete .mlpackage: {required.relative_to(path)} is missing. "
                             "Export it again.")


def _color_layout(feature: Any) -> str:
    value = feature.type.imageType.colorSpace
    return _COLOR_SPACES.get(value, str(value))


def _image_inputs(spec: Any, kind: str, program: Any) -> list[ImageInput]:
    found = []
    for feature in spec.description.input:
        if feature.type.WhichOneof("Type") != "imageType":
            continue
        image_type = feature.type.imageType
        if kind == "neuralnetwork":
            bias, scale = _nn_scaler(spec, feature.name, _color_layout(feature))
        else:
            bias, scale = _mil_scaler(program, feature.name)
        found.append(ImageInput(feature.name, int(image_type.height), int(image_type.width),
                                _color_layout(feature), bias, scale))
    return found


def neural_network(spec: Any) -> Any:
    """The NeuralNetwork message of a NeuralNetwork(-classifier/-regressor) spec."""
    return getattr(spec, spec.WhichOneof("Type"))


def _nn_scaler(spec: Any, name: str, layout: str) -> tuple[tuple[float, float, float], float]:
    for pre in neural_network(spec).preprocessing:
        if pre.featureName in (name, "") and pre.WhichOneof("preprocessor") == "scaler":
            s = pre.scaler
            rgb = (s.redBias, s.greenBias, s.blueBias)
            bias = rgb[::-1] if layout == "BGR" else rgb
            # An unset proto3 float reads 0; Core ML then scales by 1.
            return tuple(float(b) for b in bias), float(s.channelScale) if s.channelScale else 1.0
    return (0.0, 0.0, 0.0), 1.0


def _mil_scaler(program: Any, name: str) -> tuple[tuple[float, float, float], float]:
    """Scale and bias from the ``mul``/``add`` coremltools inserts after an image input."""
    bias = np.zeros(3, np.float32)
    scale = 1.0
    current = name
    for op in program.functions["main"].operations:
        if op.op_type not in ("mul", "add") or not op.name.startswith(f"{name}__"):
            continue
        x, y = op.inputs["x"], op.inputs["y"]
        if x.name != current or y.val is None:
            continue
        value = np.asarray(y.val, np.float32)
        if op.op_type == "mul":
            scale = float(value.reshape(-1)[0])
        else:
            bias = value.reshape(-1) * np.ones(3, np.float32)
        current = op.outputs[0].name
    return tuple(float(b) for b in bias), scale


def _labels(spec: Any, kind: str, program: Any) -> tuple[str, ...] | None:
    if kind == "neuralnetwork":
        nn = neural_network(spec)
        which = nn.WhichOneof("ClassLabels") if spec.WhichOneof("Type") == "neuralNetworkClassifier" else None
        if which == "stringClassLabels":
            return tuple(nn.stringClassLabels.vector)
        if which == "int64ClassLabels":
            return tuple(str(v) for v in nn.int64ClassLabels.vector)
        return None
    for op in program.functions["main"].operations:
        if op.op_type == "classify":
            return tuple(str(c) for c in op.inputs["classes"].val)
    return None


def _precision(spec: Any, kind: str, program: Any) -> str:
    """"INT8" for quantized weights, else "FP16" for fp16 compute (ML Program) or weights (NN), else "FP32"."""
    if kind == "mlprogram":
        from coremltools.converters.mil.mil import types

        operations = list(program.functions["main"].operations)
        if any(op.op_type.startswith("constexpr_") and op.op_type != "constexpr_cast" for op in operations):
            return "INT8"
        for op in operations:
            if op.op_type != "const" and any(getattr(v, "dtype", None) == types.fp16 for v in op.outputs):
                return "FP16"
        return "FP32"
    found = "FP32"
    for layer in neural_network(spec).layers:
        params = getattr(layer, layer.WhichOneof("layer"))
        weights = getattr(params, "weights", None)
        if weights is None or not hasattr(weights, "float16Value"):
            continue
        if weights.HasField("quantization"):
            return "INT8"
        if len(weights.float16Value):
            found = "FP16"
    return found
