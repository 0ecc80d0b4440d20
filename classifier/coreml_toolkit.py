"""The Core ML machinery both exporters share: the classifier's and the box model's.

:mod:`classifier.export` and :mod:`detector.box_export` build different models (a classifier, a
Vision object-detector pipeline) from the same parts, kept here once:

- the tables: single :data:`FORMATS` and their :data:`EXTENSIONS`, :data:`PRECISIONS`,
  :data:`QUANTIZATIONS`, the image input's name :data:`INPUT_NAME`;
- the two-step conversion: :func:`convert_to_mil` turns the Keras model into a MIL program whose
  image input does the saved preprocessing; the exporter renames and picks the program's
  outputs; :func:`convert_from_mil` converts the program to the format and precision asked for;
- precision and quantization. An ML Program computes in FP16 (``precision="float16"``, weights
  stored FP16) or FP32. A NeuralNetwork stores FP32 weights, or FP16 weights with
  ``precision="float16"`` (:func:`quantize_neuralnetwork_weights` with 16 bits); the device picks
  its compute precision. :func:`quantize_int8` stores 8-bit linear weights
  (``linear_quantize_weights`` for ML Program, 8-bit ``quantize_weights`` for NeuralNetwork;
  both edit the spec in Python and run on Linux). An int8 ML Program needs iOS 16 (its
  ``constexpr_affine_dequantize`` ops; spec version 7); the NeuralNetwork stays iOS 13;
- boxstrap's metadata: :func:`boxstrap_metadata` builds the ``user_defined_metadata`` that
  :func:`classifier.export_metadata.read_export_metadata` reads back, :func:`write_metadata`
  stores it with Core ML's own description fields, :func:`image_input_description` describes
  the image input;
- files: :func:`staging_folder` and :func:`save_into_place` write a model to a hidden temporary
  folder beside its target and rename it into place (:func:`move_into_place`), so a failed
  export leaves nothing behind and a reader never sees half a package;
- :func:`quiet_coremltools`, which holds back coremltools' progress bars and warnings.

coremltools is imported only inside the functions that convert: the tables and the pure helpers
load without it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import groundwork
from classifier import export_metadata as meta
from classifier.trained_model import INPUT_NAME  # the Keras input's name is the export's
from datasets.preprocessing import Preprocessing
from groundwork.config import config_to_dict

__all__ = ["FORMATS", "PRECISIONS", "QUANTIZATIONS"]

FORMATS = ("mlprogram", "neuralnetwork")
"""The single Core ML formats: ML Program (iOS 15+) and NeuralNetwork (iOS 13+)."""
EXTENSIONS = {"mlprogram": ".mlpackage", "neuralnetwork": ".mlmodel"}
"""File extension of each format (an ``.mlpackage`` is a folder)."""
PRECISIONS = ("float16", "float32")
"""Weight (and ML Program compute) precisions."""
QUANTIZATIONS = (None, "int8")
"""Weight quantizations: none, or 8-bit linear."""
QUANTIZE_MIN_ELEMENTS = 2048
"""Weights with fewer elements than this stay float under int8 quantization (coremltools' default)."""
PREVIEW_TYPE_KEY = "com.apple.coreml.model.preview.type"
"""Metadata key Xcode reads to pick its preview."""
PREVIEW_TYPES = ("imageClassifier", "objectDetector")
"""Xcode previews of boxstrap's exports."""

_T = TypeVar("_T")


def check_choice(argument: str, value: _T, choices: Sequence[Any]) -> _T:
    """Return ``value`` if it is one of ``choices``.

    Parameters
    ----------
    argument : str
        Name of the argument, for the error message.
    value : object
    choices : sequence

    Returns
    -------
    object
        ``value``, unchanged.

    Raises
    ------
    ValueError
        If ``value`` is not in ``choices``, naming the argument, the choices and the value.

    Examples
    --------
    >>> check_choice("format", "mlprogram", FORMATS)
    'mlprogram'
    """
    if value not in choices:
        raise ValueError(f"{argument} must be one of {tuple(choices)}. Received: {value!r}")
    return value


def check_file_stem(name: str) -> str:
    """Return ``name`` if it can name an export file (no folder separators, not hidden).

    Parameters
    ----------
    name : str
        File stem, e.g. ``"BoxstrapClassifier"``.

    Returns
    -------
    str
        ``name``, unchanged.

    Raises
    ------
    ValueError
        If ``name`` is not a non-empty string, contains ``/`` or ``\\``, or starts with a dot;
        naming the value received.
    """
    if not isinstance(name, str) or not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"name must be a plain file stem. Received: {name!r}")
    return name


# --- conversion --------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_coremltools() -> Iterator[None]:
    """Hold back coremltools' progress bars and warnings (shown if the block raises).

    coremltools' logger is set to ERROR and stderr is captured for the duration of the block;
    if the block raises, what was captured is written to stderr before the error propagates.
    On Linux, importing coremltools logs "Failed to load _MLModelProxy" (no Core ML here): import
    it inside this block.
    """
    ct_log = logging.getLogger("coremltools")
    level = ct_log.level
    ct_log.setLevel(logging.ERROR)
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            yield
    except BaseException:
        sys.stderr.write(held.getvalue())
        raise
    finally:
        ct_log.setLevel(level)


def convert_to_mil(keras_model: Any, pre: Preprocessing, fmt: str, precision: str) -> tuple[Any, dict[str, Any]]:
    """First step of the two-step conversion shared by the classifier and detector exports.

    The Keras model becomes a MIL program whose image input (named :data:`INPUT_NAME`) carries
    the saved preprocessing: colour order, per-channel bias and scale. The caller renames and
    picks the program's outputs, then finishes with :func:`convert_from_mil`.

    Parameters
    ----------
    keras_model : keras.Model
        Takes (1, H, W, 3) float32 images, (H, W) = ``pre.input_size``.
    pre : Preprocessing
        Input size, colour order, bias and scale of the image input.
    fmt : {"mlprogram", "neuralnetwork"}
    precision : {"float16", "float32"}
        ML Program compute precision (a NeuralNetwork is converted in float32; its weights are
        stored in ``precision`` by :func:`convert_from_mil`).

    Returns
    -------
    program : coremltools MIL program
    options : dict
        Keyword arguments of the second conversion (deployment target and, for an ML Program,
        the same compute precision: the second step would otherwise add FP16 casts by default).

    Raises
    ------
    ValueError
        If ``fmt`` or ``precision`` is not one of the choices.
    """
    check_choice("fmt", fmt, FORMATS)
    check_choice("precision", precision, PRECISIONS)
    with quiet_coremltools():
        import coremltools as ct

    height, width = pre.input_size
    image = ct.ImageType(name=INPUT_NAME, shape=(1, height, width, 3), scale=pre.scale, bias=list(pre.bias),
                         color_layout=ct.colorlayout.BGR if pre.color_order == "BGR" else ct.colorlayout.RGB)
    if fmt == "mlprogram":
        compute = ct.precision.FLOAT16 if precision == "float16" else ct.precision.FLOAT32
        options = {"minimum_deployment_target": ct.target.iOS15, "compute_precision": compute}
        first = options
    else:
        options = {"minimum_deployment_target": ct.target.iOS13}
        first = {**options, "compute_precision": ct.precision.FLOAT32}
    with quiet_coremltools():
        program = ct.convert(keras_model, inputs=[image], convert_to="milinternal", **first)
    return program, options


def convert_from_mil(program: Any, fmt: str, options: Mapping[str, Any], *, precision: str,
                     quantize: str | None = None, classifier_config: Any = None) -> Any:
    """Second step of the conversion: the MIL program as a Core ML model of ``fmt``.

    Parameters
    ----------
    program : coremltools MIL program
        From :func:`convert_to_mil`, its outputs renamed and picked.
    fmt : {"mlprogram", "neuralnetwork"}
    options : mapping
        The ``options`` :func:`convert_to_mil` returned.
    precision : {"float16", "float32"}
        As given to :func:`convert_to_mil`. A NeuralNetwork's weights are stored FP16 with
        ``"float16"`` unless ``quantize`` is set (they are then quantized by :func:`quantize_int8`).
    quantize : {None, "int8"}
    classifier_config : coremltools.ClassifierConfig or None
        Makes the model a classifier.

    Returns
    -------
    coremltools.models.MLModel

    Raises
    ------
    ValueError
        If ``fmt``, ``precision`` or ``quantize`` is not one of the choices.
    """
    check_choice("fmt", fmt, FORMATS)
    check_choice("precision", precision, PRECISIONS)
    check_choice("quantize", quantize, QUANTIZATIONS)
    with quiet_coremltools():
        import coremltools as ct

        converted = ct.convert(program, convert_to=fmt, classifier_config=classifier_config, **options)
    if fmt == "neuralnetwork" and precision == "float16" and not quantize:
        converted = quantize_neuralnetwork_weights(converted, 16)
    return converted


def quantize_int8(mlmodel: Any, fmt: str) -> Any:
    """``mlmodel`` with its weights stored as 8-bit linear (symmetric) integers.

    Weights with fewer than :data:`QUANTIZE_MIN_ELEMENTS` elements stay float.

    Parameters
    ----------
    mlmodel : coremltools.models.MLModel
    fmt : {"mlprogram", "neuralnetwork"}
        The model's format.

    Returns
    -------
    coremltools.models.MLModel
        A new model (an int8 ML Program needs iOS 16).

    Raises
    ------
    ValueError
        If ``fmt`` is not one of :data:`FORMATS`.
    """
    check_choice("fmt", fmt, FORMATS)
    if fmt == "neuralnetwork":
        return quantize_neuralnetwork_weights(mlmodel, 8)
    import coremltools as ct

    op_config = ct.optimize.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8",
                                                          weight_threshold=QUANTIZE_MIN_ELEMENTS)
    with quiet_coremltools():
        return ct.optimize.coreml.linear_quantize_weights(
            mlmodel, config=ct.optimize.coreml.OptimizationConfig(global_config=op_config))


def quantize_neuralnetwork_weights(mlmodel: Any, nbits: int) -> Any:
    """A NeuralNetwork model with its weights quantized to ``nbits``.

    Parameters
    ----------
    mlmodel : coremltools.models.MLModel
        A NeuralNetwork (``.mlmodel``) model.
    nbits : {16, 8}
        16: FP16 weights; 8: linear int8 weights.

    Returns
    -------
    coremltools.models.MLModel

    Raises
    ------
    ValueError
        If ``nbits`` is not 16 or 8.
    """
    check_choice("nbits", nbits, (16, 8))
    from coremltools.models.neural_network import quantization_utils

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Quantizing using ..."
        return quantization_utils.quantize_weights(mlmodel, nbits=nbits)


# --- metadata ----------------------------------------------------------------------------------
def image_input_description(pre: Preprocessing) -> str:
    """The description of the image input: its size and the preprocessing Core ML applies.

    Parameters
    ----------
    pre : Preprocessing

    Returns
    -------
    str

    Examples
    --------
    >>> image_input_description(Preprocessing(input_size=(32, 64), color_order="RGB", bias=(0, 0, 0), scale=0.5))
    'Photo, scaled to 64x32; Core ML applies the preprocessing (RGB, scale 0.5, bias [0.0, 0.0, 0.0]).'
    """
    height, width = pre.input_size
    return (f"Photo, scaled to {width}x{height}; Core ML applies the preprocessing ({pre.color_order}, "
            f"scale {pre.scale:g}, bias {list(pre.bias)}).")


def boxstrap_metadata(*, preprocessing: Preprocessing, labels: Sequence[str], metrics: Any,
                      outputs: Mapping[str, str | None], fmt: str, config: Any, source_sha256: str,
                      preview_type: str) -> dict[str, str]:
    """The ``user_defined_metadata`` of a boxstrap export (see :mod:`classifier.export_metadata`).

    Parameters
    ----------
    preprocessing : Preprocessing
        The image input's; its ``input_size`` is also stored on its own.
    labels : sequence of str
        Class labels in output order.
    metrics : dict or None
        The training metrics.
    outputs : mapping
        The export's output names by role (e.g. ``{"label": "classLabel", ...}``).
    fmt : {"mlprogram", "neuralnetwork"}
    config : dataclass
        The export config (stored as a dict).
    source_sha256 : str
        SHA-256 of the Keras file exported.
    preview_type : {"imageClassifier", "objectDetector"}
        Xcode's preview.

    Returns
    -------
    dict of str to str
        Metadata keys to their values, JSON text except the plain-text format, SHA-256, version
        and preview type.

    Raises
    ------
    ValueError
        If ``fmt`` or ``preview_type`` is not one of the choices.
    """
    check_choice("fmt", fmt, FORMATS)
    check_choice("preview_type", preview_type, PREVIEW_TYPES)
    height, width = preprocessing.input_size
    values = {
        meta.PREPROCESSING: preprocessing.to_dict(),
        meta.LABELS: list(labels),
        meta.INPUT_SIZE: [height, width],
        meta.METRICS: metrics,
        meta.OUTPUTS: dict(outputs),
        meta.FORMAT: fmt,
        meta.EXPORT_CONFIG: config_to_dict(config),
        meta.SOURCE_SHA256: source_sha256,
        meta.VERSION: groundwork.__version__,
    }
    metadata = {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}
    metadata[PREVIEW_TYPE_KEY] = preview_type
    return metadata


def write_metadata(mlmodel: Any, metadata: Mapping[str, str], *, short_description: str, author: str = "",
                   license: str = "", version: str = "") -> None:
    """Store ``metadata`` and Core ML's description fields in ``mlmodel`` (in place).

    Parameters
    ----------
    mlmodel : coremltools.models.MLModel
    metadata : mapping of str to str
        User-defined metadata, e.g. from :func:`boxstrap_metadata`, written in its order.
    short_description, author, license, version : str
        Core ML's own metadata fields.

    Raises
    ------
    TypeError
        If a metadata key or value is not a string.
    """
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata keys and values must be str. Received: {key!r}: {value!r}")
    mlmodel.short_description = short_description
    mlmodel.author = author
    mlmodel.license = license
    mlmodel.version = version
    for key, value in metadata.items():
        mlmodel.user_defined_metadata[key] = value


# --- files -------------------------------------------------------------------------------------
@contextlib.contextmanager
def staging_folder(target: str | os.PathLike) -> Iterator[Path]:
    """A hidden temporary folder beside ``target``, removed with what is left in it on exit.

    Staging beside the target keeps the final rename on one file system (atomic).

    Parameters
    ----------
    target : str or PathLike
        The export's final path; its folder must exist.

    Yields
    ------
    Path
        ``.{target name}.*.part`` in the target's folder.
    """
    target = Path(target)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", suffix=".part", dir=target.parent) as tmp:
        yield Path(tmp)


def save_into_place(mlmodel: Any, target: str | os.PathLike, staging: str | os.PathLike) -> Path:
    """Save ``mlmodel`` into ``staging`` and rename it to ``target`` (see :func:`move_into_place`).

    Parameters
    ----------
    mlmodel : coremltools.models.MLModel
    target : str or PathLike
        ``.mlpackage`` or ``.mlmodel`` path; an existing one is replaced.
    staging : str or PathLike
        A folder on the target's file system (:func:`staging_folder`).

    Returns
    -------
    Path
        ``target``.
    """
    target, staging = Path(target), Path(staging)
    staged = staging / target.name
    mlmodel.save(str(staged))
    move_into_place(staged, target, staging)
    return target


def move_into_place(staged: Path, target: Path, tmp: Path) -> None:
    """Rename ``staged`` to ``target``, replacing it.

    A staged folder (``.mlpackage``) replacing an existing target: the target is first moved
    aside into ``tmp`` (one rename), then ``staged`` renamed into place, then the old one
    removed, so the target path never holds half of either. A staged file replaces the target
    in one rename (an existing folder there is removed first).

    Parameters
    ----------
    staged : Path
        A file or folder on the target's file system.
    target : Path
    tmp : Path
        A folder on the same file system, for the old target while it is replaced.

    Raises
    ------
    FileNotFoundError
        If ``staged`` does not exist.
    """
    staged, target, tmp = Path(staged), Path(target), Path(tmp)
    if not staged.exists():
        raise FileNotFoundError(f"staged must be the file or folder to move into place. Received: {str(staged)!r} "
                                "(does not exist)")
    if staged.is_dir() and target.exists():
        aside = tmp / f"old-{target.name}"
        os.replace(target, aside)
        os.replace(staged, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(staged, target)
