"""Read back what a boxstrap export stored in a Core ML model's metadata.

Every boxstrap export (:func:`classifier.export.export_coreml`,
:func:`detector.box_export.export_box_model`) carries, in its ``user_defined_metadata``, written
by :func:`classifier.coreml_toolkit.boxstrap_metadata` (values are JSON text):

==============================  ==========================================================
``boxstrap.preprocessing``      Preprocessing dict (input_size, color_order, bias, scale)
``boxstrap.labels``             class labels in output order
``boxstrap.input_size``         [height, width]
``boxstrap.metrics``            the training metrics (``metrics.json``)
``boxstrap.outputs``            output names: label, probabilities, class_map (or null)
``boxstrap.format``             "mlprogram" or "neuralnetwork"
``boxstrap.export_config``      the ExportConfig as a dict
``boxstrap.source_model_sha256``  SHA-256 of the ``model.keras`` it was exported from
``boxstrap.version``            boxstrap version (plain text)
==============================  ==========================================================

plus Core ML's own author, license, version and short description. ``verify`` checks the
exported file's spec against these.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["LABELS", "PREPROCESSING", "read_export_metadata"]

#: The metadata keys verify reads back too.
PREPROCESSING = "boxstrap.preprocessing"
LABELS = "boxstrap.labels"
INPUT_SIZE = "boxstrap.input_size"
METRICS = "boxstrap.metrics"
OUTPUTS = "boxstrap.outputs"
FORMAT = "boxstrap.format"
EXPORT_CONFIG = "boxstrap.export_config"
SOURCE_SHA256 = "boxstrap.source_model_sha256"
VERSION = "boxstrap.version"
_JSON_KEYS = (PREPROCESSING, LABELS, INPUT_SIZE, METRICS, OUTPUTS, EXPORT_CONFIG)


def read_export_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read a boxstrap ``.mlpackage`` / ``.mlmodel``'s metadata (no model compilation; works on Linux).

    Parameters
    ----------
    path : str or PathLike
        An exported model.

    Returns
    -------
    dict
        ``preprocessing`` (dict), ``labels`` (list), ``input_size`` ([h, w]), ``metrics``,
        ``outputs``, ``format``, ``export_config``, ``source_model_sha256``,
        ``boxstrap_version``, ``author``, ``license``, ``version``, ``short_description``,
        and ``user_defined`` (all user-defined metadata as strings).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not a Core ML model, or not one boxstrap exported (no ``boxstrap.labels``), or a
        metadata value is not valid JSON.
    """
    import coremltools as ct

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path must be an exported .mlpackage or .mlmodel. Received: {str(path)!r} "
                                "(does not exist)")
    try:
        spec = ct.utils.load_spec(str(path))
    except Exception as error:  # coremltools raises plain Exceptions for unreadable files
        raise ValueError(f"{path} is not a readable Core ML model: {error}") from None
    described = spec.description.metadata
    user = dict(described.userDefined)
    if LABELS not in user:
        raise ValueError(f"{path}: no {LABELS!r} metadata; was it exported by `boxstrap export`?")
    parsed = {}
    for key in _JSON_KEYS:
        if key in user:
            try:
                parsed[key] = json.loads(user[key])
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: metadata {key!r} is not valid JSON: {error}") from None
    return {
        "preprocessing": parsed.get(PREPROCESSING),
        "labels": parsed.get(LABELS),
        "input_size": parsed.get(INPUT_SIZE),
        "metrics": parsed.get(METRICS),
        "outputs": parsed.get(OUTPUTS),
        "format": user.get(FORMAT),
        "export_config": parsed.get(EXPORT_CONFIG),
        "source_model_sha256": user.get(SOURCE_SHA256),
        "boxstrap_version": user.get(VERSION),
        "author": described.author,
        "license": described.license,
        "version": described.versionString,
        "short_description": described.shortDescription,
        "user_defined": user,
    }
