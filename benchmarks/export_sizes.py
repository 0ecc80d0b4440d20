"""Size on disk of each Core ML export of the VGG16 class-map classifier.

Builds the real network (classifier.model.build_classifier, VGG16 widths) at the given input
size, saves it as a model directory in a temporary folder, and exports it as ML Program FP32,
FP16 and FP16+int8, and NeuralNetwork FP32, FP16 and int8. Weights are random by default
(the size does not depend on their values); ``--weights hed-vgg16`` uses the real ones.

    python benchmarks/export_sizes.py [--input-size 224x224] [--weights none|hed-vgg16]

Prints one row per export: size in MB, ratio to the ML Program FP32 export, conversion time.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VARIANTS = [  # (label, format, precision, quantize)
    ("ML Program FP32", "mlprogram", "float32", None),
    ("ML Program FP16", "mlprogram", "float16", None),
    ("ML Program FP16 + int8 weights", "mlprogram", "float16", "int8"),
    ("NeuralNetwork FP32", "neuralnetwork", "float32", None),
    ("NeuralNetwork FP16 weights", "neuralnetwork", "float16", None),
    ("NeuralNetwork int8 weights", "neuralnetwork", "float32", "int8"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-size", default="224x224", help="HEIGHTxWIDTH (default 224x224)")
    parser.add_argument("--weights", default="none", help="'none' (random) or 'hed-vgg16'")
    parser.add_argument("--classes", type=int, default=2)
    args = parser.parse_args()
    height, width = (int(v) for v in args.input_size.lower().split("x"))
    logging.basicConfig(level=logging.WARNING)

    import json

    from classifier.backbones.vgg16 import vgg16_preprocessing
    from classifier.export import ExportConfig, export_coreml
    from classifier.model import build_classifier
    from classifier.trained_model import load_trained_model

    with tempfile.TemporaryDirectory(prefix="export_sizes.") as tmp:
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        model = build_classifier(args.classes, (height, width), weights=args.weights)
        model.save(model_dir / "model.keras")
        vgg16_preprocessing((height, width)).save(model_dir)
        (model_dir / "labels.json").write_text(json.dumps([f"class{i}" for i in range(args.classes)]))
        keras_mb = (model_dir / "model.keras").stat().st_size / 1e6
        trained = load_trained_model(model_dir)
        rows = []
        for label, fmt, precision, quantize in VARIANTS:
            config = ExportConfig(format=fmt, precision=precision, quantize=quantize,
                                  name=f"{fmt}_{precision}_{quantize}")
            start = time.perf_counter()
            result = export_coreml(trained, Path(tmp) / "out", config)
            seconds = time.perf_counter() - start
            rows.append((label, result.sizes[fmt], result.unquantized_sizes.get(fmt), seconds))
        print(f"\nVGG16 class-map classifier, {args.classes} classes, {height}x{width} input, "
              f"{trained.model.count_params():,} parameters, model.keras {keras_mb:.1f} MB, weights {args.weights}\n")
        reference = rows[0][1]
        print("| export | size (MB) | vs ML Program FP32 | before int8 (MB) | export time (s) |")
        print("|---|---:|---:|---:|---:|")
        for label, size, before, seconds in rows:
            before_text = f"{before / 1e6:.1f}" if before else ""
            print(f"| {label} | {size / 1e6:.1f} | {size / reference:.2f} | {before_text} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
