"""``verify_model``: check exported Core ML models against the Keras model they came from.

One call does the whole parity check of ``boxstrap verify``: static checks of each export's
spec against the model directory's preprocessing and labels, then Keras and Core ML on the
same decoded pixels, compared by :func:`verify.parity.compare_outputs` against the tolerances
of the export's precision. On a failure the report says where: the static check that failed,
the first layer that diverges (reference backend) and a suspected cause. An export made at another
input size than trained (``boxstrap export --input-size``, as its metadata says) is compared with
the network rebuilt at that size (:meth:`classifier.trained_model.TrainedModel.at_input_size`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from classifier.export_metadata import PREPROCESSING
from classifier.trained_model import TrainedModel, load_trained_model
from datasets.preprocessing import Preprocessing
from groundwork.atomic import write_json, write_text
from groundwork.config import config_to_dict, save_config
from groundwork.paths import check_out_folder
from verify.backends import ReferenceBackend, make_backend, resolve_backend
from verify.divergence import keras_layer_outputs, locate_divergence, suspect_preprocessing
from verify.model_info import ModelInfo, read_model_info
from verify.parity import compare_outputs, json_number, near_ties
from verify.report_table import report_table
from verify.static_checks import static_checks
from verify.verify_config import VerifyConfig
from verify.verify_images import VerifyImages, load_verify_images

__all__ = ["VerifyReport", "find_exports", "verify_model"]

log = logging.getLogger(__name__)

REPORT_FILENAME = "verify_report.json"
TABLE_FILENAME = "verify_report.txt"
CONFIG_FILENAME = "verify_config.json"


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify_model`: ``passed`` (all exports), the report dict and where it was written."""

    passed: bool
    report: dict[str, Any]
    table: str
    report_path: Path
    table_path: Path


def find_exports(model_dir: str | os.PathLike) -> list[Path]:
    """``.mlpackage`` and ``.mlmodel`` files in ``model_dir`` and its direct subfolders, sorted."""
    root = Path(model_dir)
    found = [p for pattern in ("*.mlpackage", "*.mlmodel", "*/*.mlpackage", "*/*.mlmodel") for p in root.glob(pattern)]
    return sorted(set(found))


def verify_model(
    model_dir: str | os.PathLike,
    exports: Sequence[str | os.PathLike] | None = None,
    images: str | os.PathLike | None = None,
    config: VerifyConfig | None = None,
    *,
    output_dir: str | os.PathLike | None = None,
    progress: Callable[[Any], Any] | None = None,
) -> VerifyReport:
    """Check exported Core ML models against the Keras model of ``model_dir``.

    Parameters
    ----------
    model_dir : path
        A trained model directory (``model.keras``, ``preprocessing.json``, ``labels.json``).
    exports : sequence of paths, optional
        ``.mlpackage``/``.mlmodel`` files; default: those found in ``model_dir`` (:func:`find_exports`).
    images : path
        A folder of images or a prepared dataset folder (then ``config.split`` is used).
    config : VerifyConfig, optional
    output_dir : path, optional
        Where ``verify_report.json``, ``verify_report.txt`` and ``verify_config.json`` go;
        default ``MODEL_DIR/verify``.
    progress : callable, optional
        Wraps the per-image loop (e.g. ``tqdm``).

    Returns
    -------
    VerifyReport
        ``passed`` is True only when every static check and every parity check holds.

    Raises
    ------
    FileNotFoundError
        If ``model_dir``, an export or the images are missing, or no export is found.
    ValueError
        If ``images`` is None or the config is invalid.
    """
    config = config or VerifyConfig()
    if not isinstance(config, VerifyConfig):
        raise TypeError(f"config must be a VerifyConfig. Received: {type(config).__name__}")
    if output_dir is not None:
        check_out_folder(output_dir, what="--output")
    if images is None:
        raise ValueError("images must be a folder of images or a prepared dataset folder. Received: None")
    started = time.perf_counter()
    loaded = load_trained_model(model_dir)
    export_paths = [Path(p) for p in exports] if exports else find_exports(loaded.directory)
    if not export_paths:
        raise FileNotFoundError(f"No .mlpackage or .mlmodel in {loaded.directory}; pass the exports explicitly.")
    for path in export_paths:
        if not path.exists():
            raise FileNotFoundError(f"exports: no Core ML model at {path}.")
    data = load_verify_images(images, loaded.preprocessing, split=config.split, max_images=config.max_images)
    sides = {loaded.preprocessing.input_size: _KerasSide(loaded, data, *_keras_predict(loaded, data.pixels,
                                                                                       config.batch_size))}

    def keras_side(size: tuple[int, int]) -> _KerasSide:
        # An export made at another input size (`boxstrap export --input-size`) is compared with the
        # network rebuilt at that size (it is fully convolutional), on the same photos resized to it.
        if size not in sides:
            sized = loaded.at_input_size(size)
            sized_data = load_verify_images(images, sized.preprocessing, split=config.split,
                                            max_images=config.max_images)
            sides[size] = _KerasSide(sized, sized_data, *_keras_predict(sized, sized_data.pixels, config.batch_size))
        return sides[size]

    results = [_verify_export(path, loaded, keras_side, config, progress) for path in export_paths]
    passed = all(r["passed"] for r in results)
    report = {
        "passed": passed,
        "model_dir": str(loaded.directory),
        "labels": list(loaded.labels),
        "preprocessing": loaded.preprocessing.to_dict(),
        "images": {"source": str(images), "count": len(data.names), "skipped": list(data.skipped)},
        "config": config_to_dict(config),
        "seconds": round(time.perf_counter() - started, 2),
        "exports": results,
    }
    out = Path(output_dir) if output_dir is not None else loaded.directory / "verify"
    table = report_table(report)
    report_path = write_json(out / REPORT_FILENAME, report)
    table_path = write_text(out / TABLE_FILENAME, table)
    save_config(config, out / CONFIG_FILENAME)
    log.info("wrote %s and %s (%s)", report_path, table_path, "PASS" if passed else "FAIL")
    return VerifyReport(passed, report, table, report_path, table_path)


def _keras_predict(loaded: TrainedModel, pixels: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    x = loaded.preprocessing.apply(pixels)
    raw = loaded.model.predict(x, batch_size=batch_size, verbose=0)
    return _split_keras_outputs(loaded.model, raw)


def _split_keras_outputs(model: Any, raw: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if isinstance(raw, dict):
        named = {k: np.asarray(v) for k, v in raw.items()}
    elif isinstance(raw, list | tuple):
        named = {n: np.asarray(v) for n, v in zip(model.output_names, raw, strict=True)}
    else:
        named = {model.output_names[0]: np.asarray(raw)}
    probabilities = named.get("probabilities")
    if probabilities is None:
        probabilities = next((v for v in named.values() if v.ndim == 2), None)
    if probabilities is None:
        raise ValueError(f"The Keras model has no (N, C) probabilities output. Outputs: "
                         f"{ {k: v.shape for k, v in named.items()} }")
    heatmap = named.get("class_map")
    if heatmap is None:
        heatmap = next((v for v in named.values() if v.ndim == 4), None)
    return probabilities, heatmap


def _probabilities(outputs: dict[str, Any], info: ModelInfo, labels: Sequence[str]) -> np.ndarray:
    name = info.probabilities_output
    if name and isinstance(outputs.get(name), dict):
        table = outputs[name]
        missing = [label for label in labels if label not in table]
        if missing:
            raise ValueError(f"the Core ML probabilities are for classes {sorted(table)}, "
                             f"the saved labels are {list(labels)}: cannot compare")
        return np.asarray([table[label] for label in labels], np.float64)
    if "probabilities" in outputs:
        return np.asarray(outputs["probabilities"], np.float64).reshape(-1)
    raise ValueError(f"the Core ML model has no probabilities output: outputs {sorted(outputs)}")


def _heatmap(outputs: dict[str, Any], info: ModelInfo, config: VerifyConfig, like: np.ndarray) -> np.ndarray | None:
    names = [config.heatmap_output] if config.heatmap_output else [
        n for n in info.output_names if n not in (info.predicted_feature, info.probabilities_output)]
    for name in names:
        value = outputs.get(name)
        if not isinstance(value, np.ndarray) or value.ndim < 3:
            continue
        value = value.reshape(value.shape[-3:])
        if value.shape == like.shape:
            return value
        if value.transpose(1, 2, 0).shape == like.shape:
            return value.transpose(1, 2, 0)
    return None


@dataclass(frozen=True)
class _KerasSide:
    """What an export is compared with: the Keras model at the export's input size, the photos
    resized for it, and its outputs on them."""

    loaded: TrainedModel
    data: VerifyImages
    probabilities: np.ndarray
    heatmaps: np.ndarray | None


def _verify_export(
    path: Path,
    trained: TrainedModel,
    keras_side: Callable[[tuple[int, int]], _KerasSide],
    config: VerifyConfig,
    progress: Callable[[Any], Any] | None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"path": str(path), "passed": False, "failures": []}
    failures: list[str] = result["failures"]
    try:
        info = read_model_info(path)
    except (ValueError, OSError) as error:
        failures.append(f"cannot read the model: {error}")
        return result
    result.update(kind=info.kind, precision=info.precision, deployment_target=info.deployment_target,
                  file_size_mb=round(info.file_size / 1e6, 2), backend=resolve_backend(config.backend))
    image = info.image_inputs[0] if info.image_inputs else None
    size = None if image is None else (image.height, image.width)
    side = None
    why_not = "the model's image input size differs from the saved preprocessing's, so it cannot be fed the same pixels"
    if size == trained.preprocessing.input_size or (size is not None and _exported_at(info, trained, size)):
        try:
            side = keras_side(size)
        except ValueError as error:  # a size the network cannot be rebuilt at
            why_not = f"the Keras model cannot be rebuilt at the model's input size {size[0]}x{size[1]}: {error}"
    loaded = side.loaded if side is not None else trained
    if loaded is not trained:
        result["input_size"] = list(loaded.preprocessing.input_size)
    checks = static_checks(info, loaded.preprocessing, loaded.labels, config)
    result["static_checks"] = [vars(c) for c in checks]
    failures += [f"static check {c.name}: {c.message}" for c in checks if c.failed]
    if side is None:
        failures.append(f"parity not run: {why_not}")
        return result
    data, keras_probabilities, keras_heatmaps = side.data, side.probabilities, side.heatmaps
    try:
        backend = make_backend(config.backend, info, compute_units=config.compute_units)
        result["backend"] = backend.name
        parity = _parity(backend, info, loaded, data, keras_probabilities, keras_heatmaps, config, progress)
    except ValueError as error:  # UnsupportedOperationError included
        failures.append(f"parity not run: {error}")
        return result
    result["parity"] = parity
    failures += parity.pop("failures")
    result["passed"] = not failures
    return result


def _exported_at(info: ModelInfo, trained: TrainedModel, size: tuple[int, int]) -> bool:
    """Whether the export says it was made from ``trained``'s preprocessing at ``size`` (``boxstrap
    export --input-size``): its preprocessing metadata is the model directory's but for the size."""
    try:  # the metadata the static check of the preprocessing reads
        saved = Preprocessing.from_dict(info.metadata_json(PREPROCESSING))
    except (TypeError, ValueError, AttributeError):  # none, or not a preprocessing
        return False
    return saved == replace(trained.preprocessing, input_size=size)


def _parity(backend, info, loaded, data, keras_probabilities, keras_heatmaps, config, progress) -> dict[str, Any]:
    labels = loaded.labels
    indices = range(len(data.names))
    started = time.perf_counter()
    probabilities, heatmaps = [], []
    for i in progress(indices) if progress else indices:
        outputs = backend.run(data.pixels[i]).outputs
        probabilities.append(_probabilities(outputs, info, labels))
        if keras_heatmaps is not None:
            heatmaps.append(_heatmap(outputs, info, config, keras_heatmaps[i]))
    seconds = time.perf_counter() - started
    coreml = np.stack(probabilities)
    comparison = compare_outputs(keras_probabilities, coreml)
    tolerance = config.max_abs_diff(info.precision)
    tied = near_ties(keras_probabilities, coreml, comparison.disagreements, tolerance)
    counted = len(comparison.disagreements) - (len(tied) if config.near_ties_agree else 0)
    top1 = 1.0 - counted / len(data.names)
    failures = []
    if top1 < config.min_top1_agreement:
        failures.append(f"top-1 agreement {top1:.4f} < {config.min_top1_agreement} "
                        f"({counted} of {len(data.names)} images disagree"
                        + (f", {len(tied)} near ties not counted)" if tied and config.near_ties_agree else ")"))
    if comparison.non_finite:
        failures.append(f"{len(comparison.non_finite)} of {len(data.names)} images give NaN or Inf probabilities "
                        f"(first: {data.names[comparison.non_finite[0]]}): the export computes garbage")
    elif comparison.max_abs_diff > tolerance:
        failures.append(f"probabilities max abs diff {comparison.max_abs_diff:.3g} > {tolerance:g} "
                        f"({info.precision} tolerance)")
    heatmap_report = None
    if heatmaps and all(h is not None for h in heatmaps):
        heat = compare_outputs(keras_heatmaps, np.stack(heatmaps))
        scale = max(float(np.max(np.abs(keras_heatmaps))), 1e-6)
        heatmap_report = {"max_abs_diff": json_number(heat.max_abs_diff), "mean_abs_diff": json_number(heat.mean_abs_diff),
                          "relative_max_diff": json_number(heat.max_abs_diff / scale),
                          "rtol": config.heatmap_rtol(info.precision),
                          "per_image_max_abs_diff": [json_number(v) for v in heat.per_sample_max_abs_diff]}
        if heat.max_abs_diff / scale > config.heatmap_rtol(info.precision):
            failures.append(f"heatmap relative max diff {heat.max_abs_diff / scale:.3g} > "
                            f"{config.heatmap_rtol(info.precision):g}")
    per_image = [
        {"file": name, "keras_label": labels[int(np.argmax(keras_probabilities[i]))],
         "coreml_label": labels[int(np.argmax(coreml[i]))],
         "max_abs_diff": json_number(comparison.per_sample_max_abs_diff[i]),
         "agree": i not in comparison.disagreements, "near_tie": i in tied}
        for i, name in enumerate(data.names)
    ]
    report: dict[str, Any] = {
        "images": len(data.names),
        "top1_agreement": top1,
        "top1_agreement_raw": comparison.top1_agreement,
        "near_tie_images": [data.names[i] for i in tied],
        "max_abs_diff": json_number(comparison.max_abs_diff),
        "mean_abs_diff": json_number(comparison.mean_abs_diff),
        "non_finite_images": [data.names[i] for i in comparison.non_finite],
        "tolerance": {"max_abs_diff": tolerance, "min_top1_agreement": config.min_top1_agreement},
        "heatmap": heatmap_report,
        "disagreeing_images": [data.names[i] for i in comparison.disagreements],
        "seconds_per_image": seconds / len(data.names),
        "per_image": per_image,
        "divergence": None,
        "suspected_cause": None,
        "failures": failures,
    }
    outputs_failed = bool(failures)
    # On an output failure look at the worst image; otherwise check the layers on the first one.
    index = int(np.argmax(comparison.per_sample_max_abs_diff)) if outputs_failed else 0
    if outputs_failed:
        report["suspected_cause"] = suspect_preprocessing(
            lambda batch: _split_keras_outputs(loaded.model, loaded.model.predict(batch, verbose=0))[0],
            data.pixels, loaded.preprocessing, keras_probabilities, coreml,
            atol=min(tolerance, comparison.max_abs_diff / 10) if not comparison.non_finite else tolerance)
    if config.check_layers and backend.has_intermediates:
        x = loaded.preprocessing.apply(data.pixels[index:index + 1])
        # The layers are compared on the program run in float32 with its stored weights: rounding
        # every intermediate to fp16 (the output check above) drifts through a deep network by more
        # than any per-layer tolerance that still catches a wrong weight or op, and is judged on
        # the outputs; an export fault shows in the float32 run all the same.
        runner = ReferenceBackend(info, emulate_fp16=False) if info.kind == "mlprogram" else backend
        intermediates = runner.run(data.pixels[index], keep_intermediates=True).intermediates
        divergence = locate_divergence(keras_layer_outputs(loaded.model, x), intermediates,
                                       rtol=config.layer_rtol(info.precision))
        if divergence is not None:
            divergence["image"] = data.names[index]
            if not outputs_failed:
                folded = f" (folded with {divergence['folded_with']!r})" if divergence.get("folded_with") else ""
                failures.append(
                    f"layer parity: Keras layer {divergence['keras_layer']!r}{folded} diverges from Core ML op "
                    f"{divergence['coreml_op']!r} (relative diff {divergence['relative_diff']:.3g} > "
                    f"{divergence['rtol']:g}) although the outputs agree within tolerance on these images")
        report["divergence"] = divergence
        report["failures_located"] = divergence is not None if outputs_failed else None
    return report
