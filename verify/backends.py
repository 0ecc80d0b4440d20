"""Where a Core ML model runs during verification: Core ML itself (macOS) or the reference runtime."""

from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np

from verify.model_info import ModelInfo
from verify.reference_runtime import reference_runtime
from verify.runtime_result import RuntimeResult

__all__ = ["CoreMLBackend", "ReferenceBackend", "make_backend", "resolve_backend"]

log = logging.getLogger(__name__)


class CoreMLBackend:
    """Core ML through ``coremltools.models.MLModel.predict`` (macOS only), fed PIL images.

    Parameters
    ----------
    info : ModelInfo
    compute_units : {"cpu", "all"}
        CPU only, or all compute units (GPU and Neural Engine where present).

    Raises
    ------
    RuntimeError
        Off macOS, where the Core ML framework does not exist.
    """

    name = "coreml"
    has_intermediates = False

    def __init__(self, info: ModelInfo, *, compute_units: str = "cpu") -> None:
        if sys.platform != "darwin":
            raise RuntimeError(f"The coreml backend needs macOS (Core ML); this is {sys.platform}. "
                               "Use backend='reference' or 'auto'.")
        import coremltools as ct

        units = {"cpu": ct.ComputeUnit.CPU_ONLY, "all": ct.ComputeUnit.ALL}
        if compute_units not in units:
            raise ValueError(f"compute_units must be 'cpu' or 'all'. Received: {compute_units!r}")
        self.info = info
        self.compute_units = compute_units
        self._model = ct.models.MLModel(str(info.path), compute_units=units[compute_units])
        self._input = info.image_inputs[0].name

    def run(self, rgb: np.ndarray, *, keep_intermediates: bool = False) -> RuntimeResult:
        """Predict on one ``(H, W, 3)`` uint8 RGB image at the model's input size."""
        from PIL import Image

        outputs: dict[str, Any] = self._model.predict({self._input: Image.fromarray(np.asarray(rgb, np.uint8))})
        return RuntimeResult({k: (np.asarray(v) if isinstance(v, list) else v) for k, v in outputs.items()})


class ReferenceBackend:
    """The numpy reference runtime of the spec (any OS); records intermediate values on request."""

    name = "reference"
    has_intermediates = True

    def __init__(self, info: ModelInfo, *, emulate_fp16: bool = True) -> None:
        self.info = info
        self._runtime = reference_runtime(info, emulate_fp16=emulate_fp16)

    def run(self, rgb: np.ndarray, *, keep_intermediates: bool = False) -> RuntimeResult:
        """Predict on one ``(H, W, 3)`` uint8 RGB image at the model's input size."""
        return self._runtime.run(rgb, keep_intermediates=keep_intermediates)


def resolve_backend(name: str) -> str:
    """Turn "auto" into "coreml" on macOS and "reference" elsewhere; check other names.

    Raises
    ------
    ValueError
        For an unknown name, or "coreml" off macOS.
    """
    if name == "auto":
        return "coreml" if sys.platform == "darwin" else "reference"
    if name == "coreml" and sys.platform != "darwin":
        raise ValueError(f"backend='coreml' needs macOS; this is {sys.platform}. Use 'reference' or 'auto'.")
    if name not in ("coreml", "reference"):
        raise ValueError(f"backend must be 'auto', 'coreml' or 'reference'. Received: {name!r}")
    return name


def make_backend(name: str, info: ModelInfo, *, compute_units: str = "cpu") -> CoreMLBackend | ReferenceBackend:
    """Return the backend ``name`` ("auto", "coreml" or "reference") for the model ``info``.

    Raises
    ------
    ValueError
        See :func:`resolve_backend`.
    UnsupportedOperationError
        The reference runtime meets a layer/op it does not implement.
    """
    resolved = resolve_backend(name)
    if resolved == "coreml":
        return CoreMLBackend(info, compute_units=compute_units)
    return ReferenceBackend(info)
