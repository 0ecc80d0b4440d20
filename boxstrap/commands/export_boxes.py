"""Export a box model to Core ML as an object detector Vision understands: the network followed by
Core ML's non-maximum suppression, outputs `confidence` and `coordinates`, preprocessing and
labels inside, so VNCoreMLRequest returns VNRecognizedObjectObservation."""

from __future__ import annotations

import argparse

from classifier.coreml_toolkit import FORMATS, PRECISIONS
from detector.box_export import BoxExportConfig

__all__ = ["HELP", "NAME", "add_arguments", "run"]

NAME = "export-boxes"
HELP = "export a box model to Core ML (a Vision object detector)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = BoxExportConfig()
    parser.add_argument("box_model", help="box model directory (from `boxstrap train-boxes`)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--format", choices=FORMATS, default=defaults.format, help="(default %(default)s)")
    parser.add_argument("--precision", choices=PRECISIONS, default=defaults.precision, help="(default %(default)s)")
    parser.add_argument("--name", default=defaults.name, help="file stem (default %(default)s)")
    parser.add_argument("--confidence-threshold", type=float, default=defaults.confidence_threshold,
                        help="default of the model's confidenceThreshold input (default %(default)s)")
    parser.add_argument("--author", default="")
    parser.add_argument("--license", default="")
    parser.add_argument("--version", default="")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export")


def run(args: argparse.Namespace) -> int:
    from detector.box_export import export_box_model
    from groundwork.files import disk_size

    config = BoxExportConfig(format=args.format, precision=args.precision, name=args.name,
                             confidence_threshold=args.confidence_threshold, author=args.author,
                             license=args.license, version=args.version)
    path = export_box_model(args.box_model, args.out, config, overwrite=args.overwrite)
    print(f"wrote {path} ({disk_size(path) / 1e6:.1f} MB); drag it into Xcode and use it with VNCoreMLRequest")
    return 0
