"""Parity of an exported box model (the Vision detector pipeline) with its Keras box model.

The export is a pipeline: the box network, then Core ML's non-maximum suppression
(:mod:`detector.box_export`). :func:`verify_box_model` runs it on the same pixels as the Keras box
model, with Core ML itself on macOS (the whole pipeline) or with the reference runtime elsewhere
(the network by :mod:`verify.reference_runtime`, then :func:`non_max_suppression`, Core ML's
suppression rule in numpy), and compares: class top-1 agreement and the probabilities' max
difference, the box coordinates' max difference (the same tolerance, the coordinates being
fractions of the image) and the box IoU, and whether suppression keeps the same boxes. Static
checks look at the spec first: image input, preprocessing and labels against the box model
directory, the outputs Vision needs (``confidence``, ``coordinates``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from classifier.model_dir import load_model_dir
from detector.box_model_dir import BOX_MODEL_LAYOUT
from groundwork.atomic import write_json, write_text
from groundwork.box_geometry import cxcywh_to_xyxy, matched_box_iou
from groundwork.config import config_to_dict, save_config
from groundwork.files import disk_size
from groundwork.paths import check_out_folder
from verify.backends import resolve_backend
from verify.model_info import load_spec, read_model_info
from verify.parity import compare_outputs, json_number, near_ties
from verify.reference_runtime import reference_runtime
from verify.static_checks import static_checks
from verify.verify import VerifyReport
from verify.verify_config import VerifyConfig
from verify.verify_images import load_verify_images

__all__ = ["non_max_suppression", "verify_box_model"]

log = logging.getLogger(__name__)

OUTPUTS = ("confidence", "coordinates")


def non_max_suppression(confidence: np.ndarray, coordinates: np.ndarray, *, iou_threshold: float,
                        confidence_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Core ML's class-agnostic non-maximum suppression (``pickTop.perClass = False``).

    Parameters
    ----------
    confidence : (N, C) ndarray
    coordinates : (N, 4) ndarray
        ``(cx, cy, w, h)``.

    Returns
    -------
    confidence : (K, C) ndarray, coordinates : (K, 4) ndarray
        The boxes kept, highest confidence first: a box is kept when its highest class
        confidence reaches ``confidence_threshold`` and it overlaps no kept box by more than
        ``iou_threshold``.
    """
    confidence = np.asarray(confidence, np.float64).reshape(-1, confidence.shape[-1])
    coordinates = np.asarray(coordinates, np.float64).reshape(-1, 4)
    best = confidence.max(axis=1)
    order = [i for i in np.argsort(-best, kind="stable") if best[i] >= confidence_threshold]
    boxes = cxcywh_to_xyxy(coordinates, dtype=np.float32).astype(np.float64)
    kept: list[int] = []
    for i in order:
        if not kept or np.all(
                matched_box_iou(np.repeat(boxes[i:i + 1], len(kept), 0), boxes[kept]) <= iou_threshold):
            kept.append(i)
    return confidence[kept], coordinates[kept]


def verify_box_model(box_dir: str | os.PathLike, export: str | os.PathLike, images: str | os.PathLike,
                     config: VerifyConfig | None = None, *, output_dir: str | os.PathLike | None = None
                     ) -> VerifyReport:
    """Check an exported detector against its Keras box model (see the module docstring).

    Raises
    ------
    FileNotFoundError
        If the box model directory (or its labels or preprocessing), the export or the images
        are missing.
    ValueError
        If the box model directory is not valid (see :func:`classifier.model_dir.load_model_dir`)
        or the export is not a boxstrap detector pipeline.
    """

    config = config or VerifyConfig()
    if output_dir is not None:
        check_out_folder(output_dir, what="--output")
    started = time.perf_counter()
    box_model = load_model_dir(box_dir, BOX_MODEL_LAYOUT)
    export = Path(export)
    if not export.exists():
        raise FileNotFoundError(f"export: no Core ML model at {export}.")
    pipeline, spec = load_spec(export)
    if spec.WhichOneof("Type") != "pipeline" or len(spec.pipeline.models) != 2 or \
            spec.pipeline.models[1].WhichOneof("Type") != "nonMaximumSuppression":
        raise ValueError(f"{export} is not a detector pipeline (network + non-maximum suppression) as "
                         "`boxstrap export-boxes` writes.")
    nms = spec.pipeline.models[1].nonMaximumSuppression
    data = load_verify_images(images, box_model.preprocessing, split=config.split, max_images=config.max_images)
    keras_probabilities, keras_boxes = (np.asarray(v, np.float64) for v in box_model.model.predict(
        box_model.preprocessing.apply(data.pixels), batch_size=config.batch_size, verbose=0))
    result: dict[str, Any] = {"path": str(export), "passed": False, "failures": []}
    with tempfile.TemporaryDirectory() as tmp:
        info = _network_info(pipeline, spec, Path(tmp))
        result.update(kind=info.kind, precision=info.precision, backend=resolve_backend(config.backend),
                      file_size_mb=round(disk_size(export) / 1e6, 2))
        info = dataclasses.replace(info, labels=tuple(nms.stringClassLabels.vector),
                                   metadata=dict(spec.description.metadata.userDefined), file_size=disk_size(export))
        checks = [c for c in static_checks(info, box_model.preprocessing, box_model.labels, config)
                  if c.name != "output_names"]
        outputs = [o.name for o in spec.description.output]
        checks.append(_output_check(outputs))
        result["static_checks"] = [vars(c) for c in checks]
        result["failures"] += [f"static check {c.name}: {c.message}" for c in checks if c.failed]
        confidence, coordinates, kept = _run_coreml(export, info, data.pixels, nms, config)
    tolerance = config.max_abs_diff(info.precision)
    # Boxes converted in float32, as the box model computes them.
    comparison = compare_outputs(keras_probabilities, confidence,
                                 reference_boxes=cxcywh_to_xyxy(keras_boxes, dtype=np.float32),
                                 candidate_boxes=cxcywh_to_xyxy(coordinates, dtype=np.float32))
    with np.errstate(invalid="ignore"):
        coordinates_diff = float(np.max(np.abs(keras_boxes - coordinates))) if len(coordinates) else 0.0
    if len(coordinates) and not np.all(np.isfinite(coordinates)):
        coordinates_diff = float("inf")
    keras_kept = keras_probabilities.max(axis=1) >= nms.confidenceThreshold
    tied = near_ties(keras_probabilities, confidence, comparison.disagreements, tolerance)
    counted = len(comparison.disagreements) - (len(tied) if config.near_ties_agree else 0)
    top1 = 1.0 - counted / len(data.names)
    failures = result["failures"]
    if top1 < config.min_top1_agreement:
        failures.append(f"top-1 agreement {top1:.4f} < {config.min_top1_agreement} ({counted} of "
                        f"{len(data.names)} images disagree, {len(tied)} near ties not counted)")
    if comparison.non_finite:
        failures.append(f"{len(comparison.non_finite)} of {len(data.names)} images give NaN or Inf confidences "
                        f"(first: {data.names[comparison.non_finite[0]]}): the export computes garbage")
    elif comparison.max_abs_diff > tolerance:
        failures.append(f"probabilities max abs diff {comparison.max_abs_diff:.3g} > {tolerance:g} ({info.precision})")
    if not coordinates_diff <= tolerance:  # NaN or Inf coordinates fail too
        failures.append(f"box coordinates max abs diff {coordinates_diff:.3g} > {tolerance:g} ({info.precision})")
    if not np.array_equal(keras_kept, kept):
        failures.append(f"suppression keeps a different set of boxes on {int(np.sum(keras_kept != kept))} images")
    result["parity"] = {
        "images": len(data.names), "top1_agreement": top1, "raw_top1_agreement": comparison.top1_agreement,
        "near_tie_images": [data.names[i] for i in tied],
        "max_abs_diff": json_number(comparison.max_abs_diff), "mean_abs_diff": json_number(comparison.mean_abs_diff),
        "non_finite_images": [data.names[i] for i in comparison.non_finite],
        "coordinates_max_abs_diff": json_number(coordinates_diff), "min_box_iou": json_number(comparison.min_box_iou),
        "mean_box_iou": json_number(float(np.mean(comparison.box_iou))) if comparison.box_iou is not None else None,
        "tolerance": tolerance, "kept_by_suppression": int(np.sum(kept)),
        "disagreeing_images": [data.names[i] for i in comparison.disagreements],
    }
    result["passed"] = not failures
    report = {"passed": result["passed"], "box_model": str(box_dir), "labels": list(box_model.labels),
              "images": {"source": str(images), "count": len(data.names)}, "config": config_to_dict(config),
              "seconds": round(time.perf_counter() - started, 2), "exports": [result]}
    out = Path(output_dir) if output_dir is not None else Path(box_dir) / "verify"
    table = _table(result)
    report_path, table_path = write_json(out / "verify_report.json", report), write_text(out / "verify_report.txt", table)
    save_config(config, out / "verify_config.json")
    log.info("wrote %s (%s)", report_path, "PASS" if result["passed"] else "FAIL")
    return VerifyReport(result["passed"], report, table, report_path, table_path)


def _network_info(pipeline, spec, tmp: Path):
    """The pipeline's network as a model of its own (saved under ``tmp``) for the reference runtime."""
    import coremltools as ct

    network = spec.pipeline.models[0]
    if network.WhichOneof("Type") == "mlProgram":
        path = tmp / "network.mlpackage"
        ct.models.MLModel(network, weights_dir=pipeline.weights_dir, skip_model_load=True).save(str(path))
    else:
        path = tmp / "network.mlmodel"
        ct.models.MLModel(network, skip_model_load=True).save(str(path))
    return read_model_info(path)


def _run_coreml(export: Path, info, pixels: np.ndarray, nms, config: VerifyConfig):
    """(confidence (N, C), coordinates (N, 4), kept (N,) bool): the network's outputs and suppression's verdict."""
    backend = resolve_backend(config.backend)
    confidence, coordinates, kept = [], [], []
    if backend == "coreml":  # pragma: no cover - macOS only
        import coremltools as ct
        from PIL import Image

        units = {"cpu": ct.ComputeUnit.CPU_ONLY, "all": ct.ComputeUnit.ALL}[config.compute_units]
        model = ct.models.MLModel(str(export), compute_units=units)
        for rgb in pixels:
            out = model.predict({"image": Image.fromarray(rgb),
                                 "confidenceThreshold": 0.0, "iouThreshold": float(nms.iouThreshold)})
            confidence.append(np.asarray(out["confidence"]).reshape(-1)[: len(nms.stringClassLabels.vector)])
            coordinates.append(np.asarray(out["coordinates"]).reshape(-1)[:4])
            kept.append(float(np.max(confidence[-1])) >= nms.confidenceThreshold)
        return np.stack(confidence), np.stack(coordinates), np.array(kept)
    runtime = reference_runtime(info)
    for rgb in pixels:
        outputs = runtime.run(rgb).outputs
        raw_conf = np.asarray(outputs["raw_confidence"], np.float64).reshape(1, -1)
        raw_coords = np.asarray(outputs["raw_coordinates"], np.float64).reshape(1, 4)
        conf, _ = non_max_suppression(raw_conf, raw_coords, iou_threshold=nms.iouThreshold,
                                      confidence_threshold=nms.confidenceThreshold)
        confidence.append(raw_conf[0])
        coordinates.append(raw_coords[0])
        kept.append(len(conf) == 1)
    return np.stack(confidence), np.stack(coordinates), np.array(kept)


def _output_check(outputs: list[str]):
    from verify.static_checks import CheckResult

    ok = outputs == list(OUTPUTS)
    return CheckResult("output_names", "pass" if ok else "fail", list(OUTPUTS), outputs,
                       "ok" if ok else f"Vision reads detectors with outputs {list(OUTPUTS)}; the model has {outputs}")


def _table(result: dict[str, Any]) -> str:
    parity = result.get("parity", {})
    lines = [f"{Path(result['path']).name}: {'PASS' if result['passed'] else 'FAIL'} ({result.get('precision')}, "
             f"{result.get('backend')} backend)"]
    for key in ("images", "top1_agreement", "max_abs_diff", "coordinates_max_abs_diff", "min_box_iou",
                "mean_box_iou", "tolerance", "kept_by_suppression"):
        if key in parity:
            value = parity[key]
            lines.append(f"  {key:26s} {value:.4g}" if isinstance(value, float) else f"  {key:26s} {value}")
    lines += [f"  FAIL: {f}" for f in result["failures"]]
    return "\n".join(lines) + "\n"
