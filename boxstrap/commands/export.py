"""Export a trained model directory to Core ML.

Writes OUT/NAME.mlpackage (ML Program, iOS 15+, the default) and/or OUT/NAME.mlmodel
(NeuralNetwork, iOS 13+) plus OUT/export_config.json. The image input does the saved
preprocessing (colour order, bias, scale), the outputs are classLabel and classLabelProbs
(labels in the saved order) and, with --heatmap, class_map. The metadata carries the
preprocessing, labels, training metrics, boxstrap version and the SHA-256 of model.keras.
Settings: defaults, then --config FILE (an export_config.json), then flags.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["HELP", "NAME", "add_arguments", "run"]

NAME = "export"
HELP = "convert a trained model to Core ML (.mlpackage and/or .mlmodel)"


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, e.g. 224x224. Received: {text!r}")
    return int(parts[0]), int(parts[1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from classifier.coreml_toolkit import PRECISIONS, QUANTIZATIONS
    from classifier.export import EXPORT_FORMATS

    parser.add_argument("model_dir", type=Path, help="trained model directory (boxstrap train --out)")
    parser.add_argument("--out", type=Path, help="output folder (default MODEL_DIR/coreml)")
    parser.add_argument("--config", type=Path, help="an export_config.json to start from (flags override it)")
    parser.add_argument("--format", choices=EXPORT_FORMATS,
                        help="ML Program .mlpackage (default), NeuralNetwork .mlmodel (older iOS), or both")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="weight / ML Program compute precision (default float16)")
    parser.add_argument("--quantize", choices=[q for q in QUANTIZATIONS if q], help="8-bit weight quantization")
    parser.add_argument("--heatmap", action="store_true", default=None,
                        help="add the class_map output (with --quantize int8 only for --format neuralnetwork)")
    parser.add_argument("--name", help="file stem of the exports (default BoxstrapClassifier)")
    parser.add_argument("--input-size", type=_size, metavar="HxW",
                        help="export at another input size than trained (a size the backbone takes, e.g. multiples of "
                             "32); `boxstrap verify` compares it with the network rebuilt at that size")
    parser.add_argument("--author", help="metadata: author")
    parser.add_argument("--license", help="metadata: license")
    parser.add_argument("--version", dest="model_version", help="metadata: model version")
    parser.add_argument("--description", help="metadata: short description (default: generated)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing exports")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from classifier.export import ExportConfig, export_coreml
    from classifier.trained_model import load_trained_model
    from groundwork.config import load_config
    from groundwork.progress import progress_bar

    flags = {
        "format": args.format, "precision": args.precision, "quantize": args.quantize,
        "heatmap": args.heatmap, "name": args.name, "input_size": args.input_size, "author": args.author,
        "license": args.license, "version": args.model_version, "short_description": args.description,
    }
    flags = {k: v for k, v in flags.items() if v is not None}
    base = load_config(ExportConfig, args.config) if args.config is not None else ExportConfig()
    config = dataclasses.replace(base, **flags)
    out = args.out if args.out is not None else args.model_dir / "coreml"
    with progress_bar(total=2, desc="export", unit="step", leave=False) as bar:
        bar.set_postfix_str("loading model")
        trained = load_trained_model(args.model_dir)
        bar.update(1)
        bar.set_postfix_str(f"converting to {config.format}")
        result = export_coreml(trained, out, config, overwrite=args.overwrite)
        bar.update(1)
    for fmt, path in result.paths.items():
        size = f"{result.sizes[fmt] / 1e6:.1f} MB"
        if fmt in result.unquantized_sizes:
            size += f", {result.unquantized_sizes[fmt] / 1e6:.1f} MB before int8 quantization"
        print(f"wrote {fmt} to {path} ({size})")
    print(f"wrote the export config to {result.config_path}")
    return 0
