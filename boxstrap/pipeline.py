"""``boxstrap pipeline``: photos in, verified Core ML classifier and detector out, in one run folder.

Stages, each in its own folder of ``RUN`` with its config beside its outputs::

    RUN/prepare/      manifest.json, images/            datasets.ingest.prepare
    RUN/train/model/  the trained classifier            classifier.train.train
    RUN/export/       BoxstrapClassifier.mlpackage/.mlmodel   classifier.export.export_coreml
    RUN/verify/       verify_report.json/.txt           verify.verify.verify_model
    RUN/localize/     pseudo boxes, annotations, review localize.localize_photos.localize_photos
    RUN/boxes/model/  the box model                     detector.train_box_model.train_box_model
    RUN/boxes/        pseudo_boxes.json, annotations/: the pseudo boxes, groups split (or a box averaged) and scored by the box model
    RUN/boxes-export/ BoxstrapDetector.mlpackage        detector.box_export.export_box_model
    RUN/boxes-verify/ verify_report.json/.txt           verify.box_parity.verify_box_model
    RUN/summary.md, RUN/summary.html
    RUN/log.txt       the log of every run in this folder (each step, file written, epoch)

A stage records ``stage.json`` (its fingerprint, timing and numbers) when it finishes. A rerun
skips a stage whose fingerprint (its config, the fingerprints of the stages it reads, and for
``prepare`` the source files' names, sizes and times) is unchanged, and reruns it and everything
after it otherwise; an interrupted run resumes at the first unfinished stage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from classifier.export import ExportConfig
from classifier.train_config import TrainConfig
from datasets.prepare_config import PrepareConfig
from detector.box_export import BoxExportConfig
from detector.box_train_config import BoxTrainConfig
from groundwork.atomic import write_json
from groundwork.config import config_to_dict, save_config
from groundwork.paths import check_out_folder
from groundwork.photo_map import RayOptions
from groundwork.run_lock import run_lock
from localize.pseudo_boxes import LocalizeConfig
from verify.verify_config import VerifyConfig

__all__ = ["GROUND_TRUTH_NAMES", "PipelineConfig", "STAGES", "StageResult", "is_run_dir", "run_pipeline",
           "verify_classifier", "verify_detector"]

log = logging.getLogger(__name__)

#: The run's log (appended to by every run): each step, file written and epoch.
LOG_FILE = "log.txt"
STAGES = ("prepare", "train", "export", "verify", "localize", "boxes", "boxes-export", "boxes-verify")
GROUND_TRUTH_NAMES = ("boxes.json", "valid_boxes.json")


@dataclass(frozen=True)
class PipelineConfig:
    """Every stage's config, saved as ``RUN/pipeline_config.json``.

    ``prepare``'s ``src`` and ``out`` are set by the pipeline (the source folder and
    ``RUN/prepare``). ``ground_truth`` is a boxes file to score pseudo boxes and the box model
    against; ``"auto"`` looks for ``boxes.json`` or ``valid_boxes.json`` in the source folder.
    """

    prepare: PrepareConfig = field(default_factory=lambda: PrepareConfig(src=".", out=".", resplit=True))
    train: TrainConfig = TrainConfig()
    export: ExportConfig = ExportConfig(format="both")
    verify: VerifyConfig = VerifyConfig()
    localize: LocalizeConfig = LocalizeConfig()
    boxes: BoxTrainConfig = BoxTrainConfig()
    boxes_export: BoxExportConfig = BoxExportConfig()
    ground_truth: str | None = "auto"


@dataclass
class StageResult:
    """What one stage did: its numbers for the summary, seconds taken, and whether it was skipped."""

    name: str
    numbers: dict[str, Any]
    seconds: float
    skipped: bool = False


def run_pipeline(src: str | os.PathLike, run_dir: str | os.PathLike, config: PipelineConfig = PipelineConfig(),
                 *, force: tuple[str, ...] = (), on_stage: Callable[[str, str, float | None], None] | None = None,
                 ray: RayOptions | None = None) -> dict[str, StageResult]:
    """Run (or resume) every stage on the photos in ``src``; return each stage's result.

    Parameters
    ----------
    src : path
        A folder per class (or ``training/``, ``valid/`` ... with a folder per class inside).
    run_dir : path
        The run folder (created).
    config : PipelineConfig
    force : tuple of str
        Stages to rerun even when unchanged (and everything after them).
    on_stage : callable, optional
        Called with ``(stage, "run", None)`` as a stage starts, ``(stage, "done", seconds)`` as it
        ends, and ``(stage, "skip", seconds it took before)`` for an unchanged stage.
    ray : RayOptions, optional
        Run the photo passes (train's backbone features, localize's classifier pass) on Ray
        (:mod:`groundwork.photo_map`); the results are those of a local run.

    Raises
    ------
    ValueError
        If ``force`` names an unknown stage, or a stage fails (its error is passed on).
    groundwork.run_lock.RunLocked
        If another run is writing ``run_dir`` (its process id is named).
    """
    unknown = sorted(set(force) - set(STAGES))
    if unknown:
        raise ValueError(f"force must name stages of {STAGES}. Received: {unknown}")
    src, run = Path(src).resolve(), Path(run_dir).resolve()
    if not src.is_dir():
        raise FileNotFoundError(f"src must be a folder of photos (a folder per class). Received: {src}")
    check_out_folder(run)
    run.mkdir(parents=True, exist_ok=True)
    with run_lock(run, "boxstrap pipeline"), _log_file(run / LOG_FILE):
        return _run_pipeline(src, run, config, force, on_stage, ray)


@contextlib.contextmanager
def _log_file(path: Path):
    """Append the log (INFO and up; DEBUG when the root logger is set to it) to ``path`` while the
    run lasts: what the terminal leaves out (each file written, each epoch) is there. The root
    logger is let down to INFO for the run if it was set higher (its own handlers keep their levels)."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.setLevel(min(level, logging.INFO) if level else level)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def _run_pipeline(src: Path, run: Path, config: PipelineConfig, force: tuple[str, ...],
                  on_stage: Callable[[str, str, float | None], None] | None, ray: RayOptions | None) -> dict[str, StageResult]:
    config = replace(config, prepare=replace(config.prepare, src=src, out=run / "prepare"))
    save_config(config, run / "pipeline_config.json")
    ground_truth, reviewed = _with_reviewed(run, src, _ground_truth(src, config.ground_truth))
    context = {"src": src, "run": run, "config": config, "ground_truth": ground_truth, "ray": ray,
               "reviewed": reviewed}
    results: dict[str, StageResult] = {}
    upstream = _source_digest(src)
    rerun = False
    for stage in STAGES:
        stage_dir = run / stage
        fingerprint = _fingerprint(stage, _stage_config(config, stage), upstream, ground_truth)
        done = _read_stage(stage_dir)
        rerun = rerun or stage in force or done.get("fingerprint") != fingerprint
        if not rerun:
            if on_stage:
                on_stage(stage, "skip", done["seconds"])
            results[stage] = StageResult(stage, done["numbers"], done["seconds"], skipped=True)
        else:
            if on_stage:
                on_stage(stage, "run", None)
            (stage_dir / "stage.json").unlink(missing_ok=True)
            start = time.perf_counter()
            numbers = _RUNNERS[stage](context, stage_dir)
            seconds = round(time.perf_counter() - start, 1)
            numbers["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            write_json(stage_dir / "stage.json", {"fingerprint": fingerprint, "seconds": seconds, "numbers": numbers})
            results[stage] = StageResult(stage, numbers, seconds)
            log.info("stage %s done in %.1f s", stage, seconds)
            if on_stage:
                on_stage(stage, "done", seconds)
        upstream = fingerprint
    from boxstrap.summary import write_summary

    write_summary(run, results, config)
    return results


# --- the stages ---------------------------------------------------------------------------------
def _prepare(ctx: dict, out: Path) -> dict[str, Any]:
    from datasets.ingest import prepare

    manifest = prepare(replace(ctx["config"].prepare, overwrite=True))
    counts = {split: {label: sum(r.split == split and r.label == label for r in manifest.records)
                      for label in manifest.labels} for split in ("train", "valid", "test")}
    return {"images": len(manifest.records), "skipped": len(manifest.skipped), "labels": list(manifest.labels),
            "groups": manifest.groups.get("count"), "counts": counts}


def _train(ctx: dict, out: Path) -> dict[str, Any]:
    from classifier.train import train

    model_dir = train(ctx["run"] / "prepare", out / "model", ctx["config"].train, overwrite=True, ray=ctx["ray"])
    metrics = json.loads((model_dir / "metrics.json").read_text())
    shipped = {k: v for k, v in metrics.get("shipped_model", {}).items() if k != "history"}
    return {split: {k: metrics[split].get(k) for k in ("accuracy", "count", "accuracy_interval")}
            for split in ("valid", "test") if split in metrics} | {
        "model_dir": str(model_dir), "shipped_model": shipped, "backbone": ctx["config"].train.backbone,
        "weights": ctx["config"].train.weights, "input_size": list(ctx["config"].train.input_size)}


def _export(ctx: dict, out: Path) -> dict[str, Any]:
    from classifier.export import export_coreml

    _empty(out)
    result = export_coreml(ctx["run"] / "train" / "model", out, ctx["config"].export, overwrite=True)
    return {"files": {fmt: str(p) for fmt, p in result.paths.items()},
            "sizes_mb": {fmt: round(size / 1e6, 1) for fmt, size in result.sizes.items()}}


def _verify(ctx: dict, out: Path) -> dict[str, Any]:
    report = verify_classifier(ctx["run"], ctx["config"].verify)
    if not report.passed:
        raise ValueError(f"Core ML parity check failed; see {report.table_path}:\n{report.table}")
    return {"passed": report.passed, "exports": [_parity_numbers(e) for e in report.report["exports"]]}


def _localize(ctx: dict, out: Path) -> dict[str, Any]:
    from localize.learned import forget_learned, keep_learned
    from localize.localize_photos import localize_photos

    model_dir = ctx["run"] / "train" / "model"
    # What an earlier localize stage of this run learned is stale: this one learns (or not) anew.
    forget_learned(model_dir)
    result = localize_photos(model_dir, ctx["run"] / "prepare", out, ctx["config"].localize,
                             ground_truth=ctx["ground_truth"], overwrite=True, ray=ctx["ray"])
    for path in keep_learned(out, model_dir):
        log.info("kept %s with the shipped classifier: `boxstrap localize` boxes new photos with it", path)
    numbers = {"images": len(result.items), "with_box": sum(len(b) > 0 for b in result.pseudo.boxes),
               "flagged": sum(bool(n) for n in result.pseudo.notes), "scores": result.scores}
    if ctx["reviewed"] is not None:
        numbers["reviewed"] = ctx["reviewed"]
    return numbers


def _boxes(ctx: dict, out: Path) -> dict[str, Any]:
    from datasets.annotations import read_annotations, write_annotations
    from datasets.box_folder import HELD_OUT_BOXES
    from detector.train_box_model import HELD_OUT_SPLIT_BOXES, SPLIT_BOXES, train_box_model
    from localize.localize_photos import ANNOTATION_PATHS

    model_dir = train_box_model(ctx["run"] / "train" / "model", ctx["run"] / "localize" / "pseudo_boxes.json",
                                ctx["run"] / "prepare", out / "model", ctx["config"].boxes,
                                hand_boxes=ctx["ground_truth"], overwrite=True)
    metrics = json.loads((model_dir / "box_metrics.json").read_text())
    numbers = {"images": metrics["images"], "hand_boxes": metrics["hand_boxes"],
               "agreement_with_pseudo_boxes": metrics["agreement_with_boxes"],
               "rounds": [{k: v for k, v in r.items() if k != "history"} for r in metrics["rounds"]],
               "chosen_round": metrics["chosen_round"]}
    labels = json.loads((model_dir / "labels.json").read_text())
    for path in (out / p for p in ANNOTATION_PATHS.values()):  # an earlier run's split boxes
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    split = model_dir / SPLIT_BOXES
    if split.is_file():
        # The pseudo boxes with their groups split, in the files localize writes its own to.
        split_annotations = read_annotations(split, labels=labels)
        for fmt in ctx["config"].localize.formats:
            write_annotations(split_annotations, out / ANNOTATION_PATHS[fmt], fmt, labels=labels)
        numbers["split"] = metrics["split"]
    if ctx["ground_truth"] is not None:
        from datasets.evaluate import evaluate_annotations
        from groundwork.atomic import write_json

        gt_path = Path(ctx["ground_truth"])
        gt = read_annotations(gt_path, labels=labels)

        def held_out_scores(name: str) -> dict[str, Any]:
            return evaluate_annotations(read_annotations(model_dir / name, labels=labels), gt, pred_root=ctx["src"],
                                        gt_root=gt_path.parent, labels=labels).to_dict()

        if (model_dir / HELD_OUT_SPLIT_BOXES).is_file():
            # The hand-boxed photos' held-out pseudo boxes, split by box models that never saw their hand boxes.
            numbers["split_scores"] = held_out_scores(HELD_OUT_SPLIT_BOXES)
        if (model_dir / HELD_OUT_BOXES).is_file():
            # The hand-boxed photos boxed by box models that never saw their hand boxes, scored as detect scores.
            scores = held_out_scores(HELD_OUT_BOXES)
            scores["scored"] = metrics["held_out"]["scored"]
            (out / "predictions").mkdir(parents=True, exist_ok=True)
            write_json(out / "predictions" / "scores.json", scores)
        else:
            from detector.box_predictions import predict_box_annotations

            scores = predict_box_annotations(model_dir, ctx["run"] / "prepare", out / "predictions",
                                             ground_truth=ctx["ground_truth"])
            if metrics["hand_boxes"]:
                scores["scored"] = "in sample: the box model trained on these hand boxes"
        numbers["scores"] = scores
    return numbers


def _boxes_export(ctx: dict, out: Path) -> dict[str, Any]:
    from detector.box_export import export_box_model
    from groundwork.files import disk_size

    _empty(out)
    path = export_box_model(ctx["run"] / "boxes" / "model", out, ctx["config"].boxes_export, overwrite=True)
    return {"file": str(path), "size_mb": round(disk_size(path) / 1e6, 1)}


def _boxes_verify(ctx: dict, out: Path) -> dict[str, Any]:
    report = verify_detector(ctx["run"], ctx["config"].verify)
    if not report.passed:
        raise ValueError(f"Core ML parity check of the box model failed; see {report.table_path}:\n{report.table}")
    return {"passed": report.passed, "exports": [_parity_numbers(e) for e in report.report["exports"]]}


_RUNNERS = {"prepare": _prepare, "train": _train, "export": _export, "verify": _verify, "localize": _localize,
            "boxes": _boxes, "boxes-export": _boxes_export, "boxes-verify": _boxes_verify}


# --- verification of a run's exports (also `boxstrap verify RUN_DIR`, `tox -e verify`) -----------
def is_run_dir(path: str | os.PathLike) -> bool:
    """True for a folder written by :func:`run_pipeline`."""
    return (Path(path) / "pipeline_config.json").is_file()


def verify_classifier(run_dir: str | os.PathLike, config: VerifyConfig | None = None):
    """Parity of a run's classifier exports (``RUN/export``) with its Keras model; report in ``RUN/verify``."""
    from verify.verify import find_exports, verify_model

    run = Path(run_dir)
    return verify_model(run / "train" / "model", find_exports(run / "export"), images=run / "prepare",
                        config=config, output_dir=run / "verify")


def verify_detector(run_dir: str | os.PathLike, config: VerifyConfig | None = None):
    """Parity of a run's detector export (``RUN/boxes-export``) with its box model; report in ``RUN/boxes-verify``."""
    from verify.box_parity import verify_box_model

    run = Path(run_dir)
    exports = sorted(p for p in (run / "boxes-export").glob("*") if p.suffix in (".mlpackage", ".mlmodel"))
    if not exports:
        raise FileNotFoundError(f"No detector export in {run / 'boxes-export'}: has the pipeline finished?")
    return verify_box_model(run / "boxes" / "model", exports[0], images=run / "prepare", config=config,
                            output_dir=run / "boxes-verify")


# --- helpers ------------------------------------------------------------------------------------
def _parity_numbers(export: dict[str, Any]) -> dict[str, Any]:
    keep = ("path", "precision", "passed", "top1_agreement", "max_abs_diff", "mean_abs_diff", "min_box_iou",
            "mean_box_iou", "heatmap_max_diff")
    parity = export.get("parity", {})
    return {k: export.get(k, parity.get(k)) for k in keep if k in export or k in parity}


def _stage_config(config: PipelineConfig, stage: str) -> Any:
    attribute = {"prepare": "prepare", "train": "train", "export": "export", "verify": "verify",
                 "localize": "localize", "boxes": "boxes", "boxes-export": "boxes_export",
                 "boxes-verify": "verify"}[stage]
    value = getattr(config, attribute)
    return config_to_dict(value) if dataclasses.is_dataclass(value) else value


def _fingerprint(stage: str, stage_config: Any, upstream: str, ground_truth: Path | None) -> str:
    gt = None
    if ground_truth is not None and stage in ("localize", "boxes"):
        gt = hashlib.sha256(ground_truth.read_bytes()).hexdigest()
    text = json.dumps({"stage": stage, "config": stage_config, "upstream": upstream, "ground_truth": gt},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _source_digest(src: Path) -> str:
    """Names, sizes and modification times of every file under ``src`` (cheap: no file is read)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(src).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _read_stage(stage_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((stage_dir / "stage.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _with_reviewed(run: Path, src: Path, ground_truth: Path | None) -> tuple[Path | None, dict | None]:
    """The hand boxes the run learns from, and what the review changed (None without a review).

    Photos reviewed with ``boxstrap review`` (``RUN/review/corrections.json``) count as hand-boxed,
    replacing the same photo's boxes of the user's hand-boxes file; the two are merged into
    ``RUN/review/hand_boxes.json``, which the localize and boxes stages then read (and fingerprint).
    """
    from boxstrap.review_server import corrections_path, shown_boxes_path

    corrections = corrections_path(run)
    if not corrections.is_file():
        return ground_truth, None
    import numpy as np

    from datasets.annotations import ImageAnnotation, read_annotations, write_annotations
    from groundwork.box_geometry import box_iou

    folder = corrections.parent
    reviewed = read_annotations(corrections, "boxes-json")
    seen = {os.path.normpath(folder / a.image) for a in reviewed}
    merged = list(reviewed)
    if ground_truth is not None:
        for a in read_annotations(ground_truth):
            full = os.path.normpath(Path(ground_truth).parent / a.image)
            if full not in seen:
                merged.append(ImageAnnotation(os.path.relpath(full, folder), a.width, a.height, a.boxes, label=a.label))
    path = write_annotations(merged, folder / "hand_boxes.json", "boxes-json")
    # What the review changed, against the pseudo boxes it was shown (named relative to the photos).
    pseudo_path = shown_boxes_path(run)
    pseudo = ({os.path.normpath(src / a.image): a for a in read_annotations(pseudo_path, "boxes-json")}
              if pseudo_path.is_file() else {})
    kept, relabelled = 0, []
    for a in reviewed:
        before = pseudo.get(os.path.normpath(folder / a.image))
        if (before is not None and len(before.boxes) == len(a.boxes) and before.labels() == a.labels()
                and (not len(a.boxes) or np.all(np.diag(box_iou(before.xyxy(), a.xyxy())) >= 0.95))):
            kept += 1
        reviewed_as, shown_as = _photo_class(a), None if before is None else _photo_class(before)
        if None not in (reviewed_as, shown_as) and reviewed_as != shown_as:
            relabelled.append(Path(os.path.relpath(folder / a.image, src)).as_posix())
    numbers = {"photos": len(reviewed), "boxes": sum(len(a.boxes) for a in reviewed), "accepted_as_they_were": kept,
               "corrected": len(reviewed) - kept, "relabelled": len(relabelled), "hand_boxes": str(path)}
    log.info("%d photos reviewed in the browser (%d accepted as they were, %d corrected): learned from as hand "
             "boxes through %s", len(reviewed), kept, len(reviewed) - kept, path)
    if relabelled:
        log.warning("%d reviewed photo(s) were given another class than their folder's (%s): their boxes carry the "
                    "new class, but the classifier still learns each photo's folder. Move them into their class's "
                    "folder and rerun the pipeline to train on it.", len(relabelled), ", ".join(relabelled[:5])
                    + (", ..." if len(relabelled) > 5 else ""))
    return path, numbers


def _photo_class(annotation) -> str | None:
    """The class a photo was reviewed as: its own label, else its first box's."""
    return annotation.label or (annotation.boxes[0].label if annotation.boxes else None)


def _ground_truth(src: Path, setting: str | None) -> Path | None:
    if setting is None:
        return None
    if setting != "auto":
        path = Path(setting)
        if not path.is_file():
            raise FileNotFoundError(f"ground_truth: no boxes file at {path}.")
        return path.resolve()
    return next((src / name for name in GROUND_TRUTH_NAMES if (src / name).is_file()), None)


def _empty(folder: Path) -> None:
    """Remove an earlier stage output so only this run's files are left."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
