"""Check exported Core ML models against their Keras model: static checks of the spec, then parity
on the same images (top-1 agreement, max/mean abs diff of the probabilities, heatmap), with the
first diverging layer on a failure. Exit status 0 when everything holds, 1 otherwise.

Given a `boxstrap pipeline` run folder instead of a model directory, it checks both of the run's
exports, the classifier and the detector, on the run's prepared photos. Given a box model
directory (`boxstrap train-boxes`), it checks the detector export named with --coreml (`boxstrap
export-boxes`): every box, matched, and its confidences."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

__all__ = ["HELP", "NAME", "add_arguments", "run"]

NAME = "verify"
HELP = "check exported Core ML models against the Keras model (static checks + parity)"

# flag dest -> VerifyConfig field
_FIELDS = {
    "backend": "backend",
    "compute_units": "compute_units",
    "fp32_tol": "fp32_max_abs_diff",
    "fp16_tol": "fp16_max_abs_diff",
    "int8_tol": "int8_max_abs_diff",
    "min_top1": "min_top1_agreement",
    "max_images": "max_images",
    "split": "split",
    "deployment_target": "deployment_target",
    "max_file_size_mb": "max_file_size_mb",
    "heatmap_output": "heatmap_output",
    "batch_size": "batch_size",
    "check_layers": "check_layers",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", type=Path,
                        help="trained model directory (model.keras, preprocessing.json, labels.json), "
                             "a box model directory (box_model.keras; with --coreml DETECTOR), "
                             "or a `boxstrap pipeline` run folder")
    parser.add_argument("--images", type=Path, metavar="DIR_OR_DATASET",
                        help="folder of images, or a prepared dataset folder (see --split), or DIR:SPLIT "
                             "(required unless MODEL_DIR is a run folder)")
    parser.add_argument("--coreml", action="append", type=Path, metavar="PATH",
                        help="a .mlpackage/.mlmodel to check (repeatable; default: those in MODEL_DIR)")
    parser.add_argument("--config", type=Path, metavar="JSON", help="a saved VerifyConfig; flags override it")
    parser.add_argument("--output", type=Path, metavar="DIR", help="report folder (default MODEL_DIR/verify)")
    parser.add_argument("--backend", choices=("auto", "reference", "coreml"),
                        help="coreml: Core ML itself (macOS); reference: the numpy runtime; auto (default)")
    parser.add_argument("--compute-units", choices=("cpu", "all"), help="Core ML backend: CPU only (default) or all")
    parser.add_argument("--fp32-tol", type=float, metavar="X", help="max abs probability diff, FP32 (default 1e-4)")
    parser.add_argument("--fp16-tol", type=float, metavar="X", help="max abs probability diff, FP16 (default 1e-2)")
    parser.add_argument("--int8-tol", type=float, metavar="X", help="max abs probability diff, INT8 (default 5e-2)")
    parser.add_argument("--min-top1", type=float, metavar="X", help="required top-1 agreement (default 1.0)")
    parser.add_argument("--max-images", type=int, metavar="N", help="check at most N images")
    parser.add_argument("--split", help="split of a prepared dataset (default valid)")
    parser.add_argument("--deployment-target", metavar="iOSNN", help="oldest OS the model must run on, e.g. iOS15")
    parser.add_argument("--max-file-size-mb", type=float, metavar="MB", help="largest acceptable model size")
    parser.add_argument("--heatmap-output", metavar="NAME", help="Core ML output holding the class maps")
    parser.add_argument("--batch-size", type=int, metavar="N", help="Keras batch size")
    parser.add_argument("--no-layer-check", dest="check_layers", action="store_false", default=None,
                        help="reference backend: skip comparing every layer on one image")


def run(args: argparse.Namespace) -> int:
    from groundwork.config import load_config
    from groundwork.progress import progress_bar
    from verify.verify import verify_model
    from verify.verify_config import VerifyConfig

    config = load_config(VerifyConfig, args.config) if args.config else VerifyConfig()
    overrides = {field: getattr(args, dest) for dest, field in _FIELDS.items() if getattr(args, dest) is not None}
    config = dataclasses.replace(config, **overrides)
    from boxstrap.pipeline import is_run_dir, verify_classifier, verify_detector

    if is_run_dir(args.model_dir):
        reports = [verify_classifier(args.model_dir, config), verify_detector(args.model_dir, config)]
        for report in reports:
            print(report.table, end="")
            print(f"wrote the verify report to {report.report_path} and {report.table_path}\n")
        return 0 if all(r.passed for r in reports) else 1
    if args.images is None:
        raise ValueError("--images is required unless MODEL_DIR is a `boxstrap pipeline` run folder.")
    from detector.box_model_dir import BOX_MODEL_LAYOUT

    if (args.model_dir / BOX_MODEL_LAYOUT.model_filename).is_file():
        from verify.box_parity import verify_box_model

        if not args.coreml or len(args.coreml) != 1:
            raise ValueError(f"{args.model_dir} is a box model directory: name its one detector export with "
                             "--coreml PATH (the .mlpackage `boxstrap export-boxes` wrote).")
        result = verify_box_model(args.model_dir, args.coreml[0], args.images, config, output_dir=args.output)
    else:
        result = verify_model(
            args.model_dir, args.coreml, args.images, config, output_dir=args.output,
            progress=lambda items: progress_bar(items, desc="verify", unit="image", leave=False),
        )
    print(result.table, end="")
    print(f"wrote the verify report to {result.report_path} and {result.table_path}")
    return 0 if result.passed else 1
