"""Checks of an exported model's spec against the saved preprocessing and labels, before running it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifier.export_metadata import LABELS, PREPROCESSING
from datasets.preprocessing import Preprocessing
from verify.model_info import SPEC_VERSION_TO_TARGET, ModelInfo
from verify.verify_config import VerifyConfig

__all__ = ["CheckResult", "static_checks"]


@dataclass(frozen=True)
class CheckResult:
    """One static check: its name, "pass"/"fail"/"warn", what was expected and found, and why."""

    name: str
    status: str
    expected: Any
    found: Any
    message: str

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def static_checks(
    info: ModelInfo, preprocessing: Preprocessing, labels: Sequence[str], config: VerifyConfig
) -> list[CheckResult]:
    """Check a Core ML model's spec against the model directory it was exported from.

    Checks: input name, input size, colour layout, bias and scale (against ``preprocessing``),
    class labels and their order (against ``labels``), output names, boxstrap metadata,
    deployment target and file size.

    Parameters
    ----------
    info : ModelInfo
    preprocessing : Preprocessing
        The saved preprocessing of the Keras model.
    labels : sequence of str
        The saved class labels, in output order.
    config : VerifyConfig

    Returns
    -------
    list of CheckResult
        In the order above; ``[r for r in results if r.failed]`` are the failures.
    """
    labels = tuple(labels)
    results: list[CheckResult] = []

    def add(name: str, ok: bool, expected: Any, found: Any, message: str, warn: bool = False) -> None:
        results.append(CheckResult(name, "pass" if ok else ("warn" if warn else "fail"), expected, found,
                                   "ok" if ok else message))

    inputs = {i.name: i for i in info.image_inputs}
    image = inputs.get(config.input_name)
    add("input_name", image is not None, config.input_name, sorted(inputs) or list(info.input_names),
        f"no image input named {config.input_name!r}; image inputs: {sorted(inputs)}")
    if image is None and len(info.image_inputs) == 1:
        image = info.image_inputs[0]
    if image is not None:
        size = (image.height, image.width)
        add("input_size", size == preprocessing.input_size, list(preprocessing.input_size), list(size),
            f"image input is {size[0]}x{size[1]} (HxW), the Keras model's preprocessing resizes to "
            f"{preprocessing.input_size[0]}x{preprocessing.input_size[1]}")
        add("color_layout", image.color_layout == preprocessing.color_order, preprocessing.color_order,
            image.color_layout, f"image input colour layout is {image.color_layout}, the Keras model was trained on "
            f"{preprocessing.color_order}: colour channels are swapped")
        bias_ok = bool(np.allclose(image.bias, preprocessing.bias, rtol=0, atol=config.bias_atol))
        add("bias", bias_ok, list(preprocessing.bias), list(image.bias), _bias_message(image.bias, preprocessing.bias))
        scale_ok = bool(np.isclose(image.scale, preprocessing.scale, rtol=config.scale_rtol, atol=0))
        add("scale", scale_ok, preprocessing.scale, image.scale,
            f"image scale is {image.scale}, the saved preprocessing has {preprocessing.scale}")

    found_labels = list(info.labels) if info.labels is not None else None
    add("class_labels", found_labels == list(labels), list(labels), found_labels, _labels_message(found_labels, labels))

    outputs = list(info.output_names)
    outputs_ok = (info.predicted_feature == config.class_label_output and info.probabilities_output in outputs
                  and config.class_label_output in outputs)
    if config.heatmap_output is not None and config.heatmap_output not in outputs:
        outputs_ok = False
    expected_outputs = [config.class_label_output, "<probabilities dict>"] + (
        [config.heatmap_output] if config.heatmap_output else [])
    add("output_names", outputs_ok, expected_outputs, outputs,
        f"expected a classifier with label output {config.class_label_output!r} and a probabilities dictionary"
        + (f" and heatmap output {config.heatmap_output!r}" if config.heatmap_output else "")
        + f"; the model outputs {outputs} (label output {info.predicted_feature!r})")

    saved = info.metadata_json(PREPROCESSING)
    if saved is None:
        add("metadata_preprocessing", False, preprocessing.to_dict(), None,
            f"no {PREPROCESSING!r} metadata in the model", warn=True)
    else:
        try:
            same = Preprocessing.from_dict(saved) == preprocessing
        except (TypeError, ValueError):
            same = False
        add("metadata_preprocessing", same, preprocessing.to_dict(), saved,
            f"metadata {PREPROCESSING!r} differs from the model directory's preprocessing.json")
    saved_labels = info.metadata_json(LABELS)
    if saved_labels is None:
        add("metadata_labels", False, list(labels), None, f"no {LABELS!r} metadata in the model", warn=True)
    else:
        add("metadata_labels", list(saved_labels) == list(labels), list(labels), saved_labels,
            f"metadata {LABELS!r} differs from the model directory's labels.json")

    target_ok = True
    if config.deployment_target is not None:
        allowed = _spec_version(config.deployment_target)
        target_ok = allowed is not None and info.spec_version <= allowed
    add("deployment_target", target_ok, config.deployment_target, info.deployment_target,
        f"the model needs {info.deployment_target} (spec {info.spec_version}); it must run on {config.deployment_target}")

    size_mb = info.file_size / 1e6
    add("file_size", size_mb <= config.max_file_size_mb, f"<= {config.max_file_size_mb} MB", f"{size_mb:.1f} MB",
        f"the model is {size_mb:.1f} MB, more than max_file_size_mb={config.max_file_size_mb}")
    return results


def _spec_version(target: str) -> int | None:
    def key(name: str) -> tuple[int, ...]:
        return tuple(int(p) for p in name[3:].split("."))

    try:
        wanted = key(target)
    except ValueError:
        return None
    versions = [v for v, name in SPEC_VERSION_TO_TARGET.items() if key(name) <= wanted]
    return max(versions) if versions else None


def _bias_message(found: Sequence[float], expected: Sequence[float]) -> str:
    found_a, expected_a = np.asarray(found), np.asarray(expected)
    if np.allclose(found_a, 0) and not np.allclose(expected_a, 0):
        return f"image bias is missing (0, 0, 0); the saved preprocessing adds {list(expected)}"
    if np.allclose(found_a, 2 * expected_a, atol=1e-3):
        return f"image bias {list(found)} is twice the saved bias {list(expected)}: bias applied twice"
    if np.allclose(found_a, expected_a[::-1], atol=1e-3):
        return f"image bias {list(found)} is the saved bias {list(expected)} in reversed channel order"
    return f"image bias {list(found)} differs from the saved preprocessing's {list(expected)}"


def _labels_message(found: list[str] | None, expected: Sequence[str]) -> str:
    expected = list(expected)
    if found is None:
        return "the model is not a classifier: it has no class labels"
    if found == expected[::-1]:
        return f"class labels are in reversed order: {found}, saved labels are {expected}"
    if sorted(found) == sorted(expected):
        return f"class labels are in a different order: {found}, saved labels are {expected}"
    return f"class labels {found} differ from the saved labels {expected}"
