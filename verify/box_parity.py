"""Parity of an exported box model (the Vision detector pipeline) with its Keras box model.

The export is a pipeline: the box network, then Core ML's non-maximum suppression
(:mod:`detector.box_export`). :func:`verify_box_model` runs it on the same pixels as the Keras box
model, with Core ML itself on macOS (the whole pipeline) or with the reference runtime elsewhere
(the network by :mod:`verify.reference_runtime`, then
:func:`detector.box_decode.non_max_suppression`, Core ML's suppression rule in numpy), and
compares box by box: the photo's class (top-1 agreement), every box's confidences and
coordinates (max difference, the same tolerance: both are fractions), whether suppression keeps
as many boxes on each photo, and the IoU of each kept box with its Keras counterpart (matched by
overlap). Static
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
from detector.box_decode import non_max_suppression
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

__all__ = ["verify_box_model"]

log = logging.getLogger(__name__)

OUTPUTS = ("confidence", "coordinates")


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
    keras_raw = _keras_raw(box_model.model.predict(box_model.preprocessing.apply(data.pixels),
                                                   batch_size=config.batch_size, verbose=0))
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
        coreml_raw, coreml_kept = _run_coreml(export, info, data.pixels, nms, config)
    tolerance = config.max_abs_diff(info.precision)
    thresholds = {"iou_threshold": nms.iouThreshold, "confidence_threshold": nms.confidenceThreshold}
    keras_kept = [non_max_suppression(c, b, **thresholds, return_index=True) for c, b in zip(*keras_raw, strict=True)]
    # The photo's class: the classes' confidences summed over its boxes (for a one-box model, its
    # probabilities; for a "centres" one, its probabilities times the sum of the centre scores).
    keras_classes = _class_scores(keras_raw[0])
    coreml_classes = (_class_scores(coreml_raw[0]) if coreml_raw is not None
                      else np.stack([_class_scores(c[None])[0] for c, _ in coreml_kept]))
    comparison = compare_outputs(keras_classes, coreml_classes)
    with np.errstate(invalid="ignore"):
        if coreml_raw is not None:
            # Box by box: the same cell's box on both sides, for every cell either side keeps (the
            # cells suppression drops never reach an app).
            confidence_diff = float(np.max(np.abs(keras_raw[0] - coreml_raw[0])))
            box_iou, coordinates_diff, different, tie_images = [], 0.0, [], []
            for i, (k, c) in enumerate(zip(keras_kept, coreml_kept, strict=True)):
                cells = np.union1d(k[2], c[2]).astype(np.int64)
                if len(cells):
                    coordinates_diff = max(coordinates_diff, float(np.max(np.abs(keras_raw[1][i, cells]
                                                                                 - coreml_raw[1][i, cells]))))
                    box_iou.append(matched_box_iou(cxcywh_to_xyxy(keras_raw[1][i, cells], dtype=np.float32),
                                                   cxcywh_to_xyxy(np.nan_to_num(coreml_raw[1][i, cells]),
                                                                  dtype=np.float32)))
                if set(k[2].tolist()) != set(c[2].tolist()):
                    explained = _near_tie_cells(keras_raw[0][i], keras_raw[1][i], k[2], c[2], tolerance, thresholds,
                                                coreml_raw[1][i])
                    (tie_images if explained else different).append(i)
            box_iou = np.concatenate(box_iou) if box_iou else np.zeros(0)
            finite = np.all(np.isfinite(coreml_raw[1]))
        else:  # pragma: no cover - macOS only: suppression's output, matched box by box
            matched = [_match_kept(k[:2], c[:2]) for k, c in zip(keras_kept, coreml_kept, strict=True)]
            box_iou = np.concatenate([m[0] for m in matched]) if matched else np.zeros(0)
            confidence_diff = max([m[1] for m in matched], default=0.0)
            coordinates_diff = max([m[2] for m in matched], default=0.0)
            finite = all(np.all(np.isfinite(c[1])) for c in coreml_kept)
            different = [i for i, (k, c) in enumerate(zip(keras_kept, coreml_kept, strict=True))
                         if len(k[0]) != len(c[0])]
            tie_images = []
    if not finite:
        coordinates_diff = float("inf")
    tied = near_ties(keras_classes, coreml_classes, comparison.disagreements, tolerance)
    counted = len(comparison.disagreements) - (len(tied) if config.near_ties_agree else 0)
    top1 = 1.0 - counted / len(data.names)
    failures = result["failures"]
    if top1 < config.min_top1_agreement:
        failures.append(f"top-1 agreement {top1:.4f} < {config.min_top1_agreement} ({counted} of "
                        f"{len(data.names)} images disagree, {len(tied)} near ties not counted)")
    if comparison.non_finite or not np.isfinite(confidence_diff):
        first = comparison.non_finite[0] if comparison.non_finite else 0
        failures.append(f"{max(len(comparison.non_finite), 1)} of {len(data.names)} images give NaN or Inf "
                        f"confidences (first: {data.names[first]}): the export computes garbage")
    elif confidence_diff > tolerance:
        failures.append(f"confidence max abs diff {confidence_diff:.3g} > {tolerance:g} ({info.precision})")
    if not coordinates_diff <= tolerance:  # NaN or Inf coordinates fail too
        failures.append(f"box coordinates max abs diff {coordinates_diff:.3g} > {tolerance:g} ({info.precision})")
    if different:
        failures.append(f"suppression keeps other boxes on {len(different)} images, not explained by near "
                        f"ties (first: {data.names[different[0]]})")
    kept_boxes = [len(c[0]) for c in coreml_kept]
    result["parity"] = {
        "images": len(data.names), "top1_agreement": top1, "raw_top1_agreement": comparison.top1_agreement,
        "near_tie_images": [data.names[i] for i in tied],
        "max_abs_diff": json_number(confidence_diff), "mean_abs_diff": json_number(comparison.mean_abs_diff),
        "non_finite_images": [data.names[i] for i in comparison.non_finite],
        "coordinates_max_abs_diff": json_number(coordinates_diff),
        "min_box_iou": json_number(float(box_iou.min())) if box_iou.size else None,
        "mean_box_iou": json_number(float(box_iou.mean())) if box_iou.size else None,
        "tolerance": tolerance, "kept_by_suppression": int(sum(kept_boxes)),
        "images_with_several_boxes": int(sum(k > 1 for k in kept_boxes)),
        "different_kept_boxes": [data.names[i] for i in different],
        "near_tie_box_images": [data.names[i] for i in tie_images],
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


def _keras_raw(outputs) -> tuple[np.ndarray, np.ndarray]:
    """The Keras box model's outputs as the exported network's: confidence (N, K, C) and
    coordinates (N, K, 4); K = 1 for a one-box model."""
    outputs = [np.asarray(v, np.float64) for v in outputs]
    if len(outputs) == 2:
        return outputs[0][:, None], outputs[1][:, None]
    return outputs[1], outputs[2]


def _class_scores(confidence: np.ndarray) -> np.ndarray:
    """(N, K, C) confidences -> (N, C): summed over the boxes and normalised to sum to 1."""
    total = np.asarray(confidence, np.float64).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / total.sum(axis=1, keepdims=True)


def _near_tie_cells(confidence: np.ndarray, coordinates: np.ndarray, keras_index: np.ndarray,
                    coreml_index: np.ndarray, tolerance: float, thresholds: dict,
                    coreml_coordinates: np.ndarray | None = None) -> bool:
    """Whether every cell kept on one side only is a near tie, which outputs that each stay within
    ``tolerance`` can swap, or follows from one.

    A near tie: the cell's Keras confidence within ``2 * tolerance`` of the confidence threshold
    or of a kept cell (either side's) overlapping it beyond the IoU threshold, or its IoU with a
    kept cell within 0.01 of the IoU threshold (or on either side of it in the two outputs'
    coordinates). Following from one: suppression is greedy, so a swapped cell changes what it
    suppresses; a cell kept on one side only is explained too when it overlaps, beyond the IoU
    threshold less 0.01, an explained cell kept on the other side only whose confidence is not
    below its own by more than ``2 * tolerance`` (the cell that suppressed it there)."""
    best = np.asarray(confidence, np.float64).max(axis=1)
    kept = np.union1d(keras_index, coreml_index).astype(np.int64)
    sides = [cxcywh_to_xyxy(np.asarray(coordinates, np.float64), dtype=np.float32)]
    if coreml_coordinates is not None:
        sides.append(cxcywh_to_xyxy(np.nan_to_num(np.asarray(coreml_coordinates, np.float64)), dtype=np.float32))
    limit = thresholds["iou_threshold"]
    swapped = np.setxor1d(keras_index, coreml_index).astype(np.int64).tolist()
    keras_only = set(np.setdiff1d(keras_index, coreml_index).astype(np.int64).tolist())

    def ious_with(d: int, cells: np.ndarray) -> np.ndarray:  # (sides, cells): cell d's IoU with each
        return np.stack([matched_box_iou(np.repeat(b[d:d + 1], len(cells), 0), b[cells]) for b in sides])

    explained = {}
    for d in swapped:
        if abs(best[d] - thresholds["confidence_threshold"]) <= 2 * tolerance:
            explained[d] = True
            continue
        others = kept[kept != d]
        ious = ious_with(d, others)
        close_call = (np.abs(ious - limit) <= 0.01).any(axis=0) | ((ious > limit).any(axis=0) & (ious <= limit).any(axis=0))
        tie = (ious[0] > limit) & (np.abs(best[others] - best[d]) <= 2 * tolerance)
        explained[d] = bool(np.any(close_call | tie))
    # The knock-on effects, in confidence order: a swapped cell's suppressor comes before it.
    for d in sorted(swapped, key=lambda c: -best[c]):
        if explained[d]:
            continue
        causes = np.array([s for s in swapped if explained[s] and (s in keras_only) != (d in keras_only)
                           and best[s] >= best[d] - 2 * tolerance], np.int64)
        if len(causes):
            explained[d] = bool(np.any(ious_with(d, causes) > limit - 0.01))
    return all(explained.values())


def _match_kept(keras: tuple[np.ndarray, np.ndarray], coreml: tuple[np.ndarray, np.ndarray]
                ) -> tuple[np.ndarray, float, float]:
    """One image's boxes kept by suppression, Keras against Core ML, each matched to the other's
    box it overlaps most (greedily, best first): (IoU per matched pair, confidence and
    coordinates max abs diff over the pairs)."""
    (k_conf, k_box), (c_conf, c_box) = keras, coreml
    if not len(k_box) or not len(c_box):
        return np.zeros(0), 0.0, 0.0
    from groundwork.box_geometry import box_iou

    ious = box_iou(cxcywh_to_xyxy(k_box, dtype=np.float32).astype(np.float64),
                   cxcywh_to_xyxy(np.nan_to_num(c_box), dtype=np.float32).astype(np.float64))
    pairs, used = [], set()
    for i in range(len(k_box)):
        order = [j for j in np.argsort(-ious[i], kind="stable") if j not in used]
        if order:
            used.add(order[0])
            pairs.append((i, order[0]))
    iou = np.array([ious[i, j] for i, j in pairs])
    conf = max(float(np.max(np.abs(k_conf[i] - c_conf[j]))) for i, j in pairs)
    coords = max(float(np.max(np.abs(k_box[i] - c_box[j]))) for i, j in pairs)
    return iou, conf, coords


def _run_coreml(export: Path, info, pixels: np.ndarray, nms, config: VerifyConfig):
    """The export on every photo: ``(raw, kept)``. ``raw`` is the network's (confidence (N, K, C),
    coordinates (N, K, 4)) where the backend can give it (None from Core ML itself, which only
    gives the pipeline's output); ``kept`` per photo (confidence (k, C), coordinates (k, 4)[, the
    kept cells' indices where ``raw`` is given]), the boxes suppression keeps at the export's own
    thresholds."""
    backend = resolve_backend(config.backend)
    classes = len(nms.stringClassLabels.vector)
    if backend == "coreml":  # pragma: no cover - macOS only
        import coremltools as ct
        from PIL import Image

        units = {"cpu": ct.ComputeUnit.CPU_ONLY, "all": ct.ComputeUnit.ALL}[config.compute_units]
        model = ct.models.MLModel(str(export), compute_units=units)
        kept = []
        for rgb in pixels:
            out = model.predict({"image": Image.fromarray(rgb), "confidenceThreshold": float(nms.confidenceThreshold),
                                 "iouThreshold": float(nms.iouThreshold)})
            kept.append((np.asarray(out["confidence"], np.float64).reshape(-1, classes),
                         np.asarray(out["coordinates"], np.float64).reshape(-1, 4)))
        return None, kept
    runtime = reference_runtime(info)
    confidence, coordinates, kept = [], [], []
    for rgb in pixels:
        outputs = runtime.run(rgb).outputs
        raw_conf = np.asarray(outputs["raw_confidence"], np.float64).reshape(-1, classes)
        raw_coords = np.asarray(outputs["raw_coordinates"], np.float64).reshape(-1, 4)
        confidence.append(raw_conf)
        coordinates.append(raw_coords)
        kept.append(non_max_suppression(raw_conf, raw_coords, iou_threshold=nms.iouThreshold,
                                        confidence_threshold=nms.confidenceThreshold, return_index=True))
    return (np.stack(confidence), np.stack(coordinates)), kept


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
