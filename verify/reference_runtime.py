"""The project's own runtime of the Core ML spec in numpy: pick the NeuralNetwork or ML Program one."""

from __future__ import annotations

import os

from verify.mil_runtime import MilRuntime
from verify.model_info import ModelInfo, read_model_info
from verify.nn_runtime import NeuralNetworkRuntime

__all__ = ["reference_runtime"]


def reference_runtime(
    model: str | os.PathLike | ModelInfo, *, emulate_fp16: bool = True
) -> NeuralNetworkRuntime | MilRuntime:
    """Return the reference runtime for a saved Core ML model.

    Parameters
    ----------
    model : path to a ``.mlmodel``/``.mlpackage``, or its :class:`~verify.model_info.ModelInfo`
    emulate_fp16 : bool
        ML Program only: round to float16 after each fp16 op (see :class:`~verify.mil_runtime.MilRuntime`).

    Returns
    -------
    NeuralNetworkRuntime or MilRuntime
        Both have ``run(rgb, *, keep_intermediates=False) -> RuntimeResult``.

    Raises
    ------
    FileNotFoundError, ValueError
        From :func:`~verify.model_info.read_model_info`.
    UnsupportedOperationError
        If the model holds a layer/op the runtime does not implement (named in the message).

    Examples
    --------
    >>> runtime = reference_runtime("model.mlpackage")  # doctest: +SKIP
    >>> runtime.run(rgb_uint8).outputs["classLabel"]  # doctest: +SKIP
    'ten'
    """
    info = model if isinstance(model, ModelInfo) else read_model_info(model)
    if info.kind == "neuralnetwork":
        return NeuralNetworkRuntime(info)
    return MilRuntime(info, emulate_fp16=emulate_fp16)
