"""Which layer of EfficientNet-Lite0 the class-map head should read: a table, one row per tap.

For each candidate tap the benchmark registers a variant of the ``efficientnet-lite0`` spec
ending at that layer, trains the classifier on it with the default recipe (``TrainConfig``,
``ship="split"`` so the accuracy is measured on photos the model never saw), and prints test and
valid accuracy, the class maps' pointing game and CorLoc on the held-out photos with
hand-checked boxes (the same check as ``benchmarks/train_classifier.py``), the feature grid and
the training time. Candidates:

- ``block10_add``: the last stride-16 block output (112 channels);
- ``block11_expand_relu``: the 672-channel expansion of the first stride-32 block, still at
  stride 16 (the shipped tap);
- ``top_relu``: the network's own last layer (1280 channels, stride 32).

Usage::

    python benchmarks/backbone_taps.py [--data DIR] [--manifest DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import PHOTOS as DATA
from train_classifier import class_map_corloc

BOXSTRAP = str(Path(sys.executable).with_name("boxstrap"))
TAPS = (("block10_add", 16), ("block11_expand_relu", 16), ("top_relu", 32))


def register(tap: str, stride: int) -> str:
    """Register a variant of the efficientnet-lite0 spec whose feature layer is ``tap``; its name."""
    from classifier.backbones import efficientnet_lite, registry

    spec = efficientnet_lite.EFFICIENTNET_LITE0
    name = f"{spec.name}@{tap}"
    registry.BACKBONES[name] = dataclasses.replace(
        spec, name=name, build=functools.partial(efficientnet_lite.build_efficientnet_lite, last_layer=tap),
        feature_layer=tap, feature_stride=stride, size_multiple=stride, boundaries=(tap,),
        multilevel_taps=((tap, 1),), fine_tune_cuts={})
    return name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="photos with class folders and valid_boxes.json")
    parser.add_argument("--manifest", type=Path, help="a prepared dataset (default: prepare --data into --work)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/boxstrap-taps"), help="scratch folder")
    args = parser.parse_args()
    manifest_dir = args.manifest or args.work / "prepared"
    if not (manifest_dir / "manifest.json").is_file():
        subprocess.run([BOXSTRAP, "prepare", str(args.data), "--out", str(manifest_dir), "--resplit"], check=True)

    from classifier.train import train
    from classifier.train_config import TrainConfig
    from datasets.manifest import load_manifest

    manifest = load_manifest(manifest_dir)
    rows = []
    for tap, stride in TAPS:
        config = TrainConfig(backbone=register(tap, stride))
        if "ship" in {f.name for f in dataclasses.fields(TrainConfig)}:
            config = dataclasses.replace(config, ship="split")
        out = args.work / f"model-{tap}"
        start = time.perf_counter()
        train(manifest_dir, out, config, overwrite=True, verbose=0)
        seconds = time.perf_counter() - start
        metrics = json.loads((out / "metrics.json").read_text())
        corloc = class_map_corloc(out, manifest, args.data)
        h, w = config.input_size
        rows.append((tap, f"{h // stride}x{w // stride}", f"{metrics['test']['accuracy']:.3f}",
                     f"{metrics['valid']['accuracy']:.3f}",
                     *(f"{corloc[k][0]:.3f}" for k in ("pointing game (peak in box)", "CorLoc @ 0.2 of max",
                                                       "CorLoc @ 0.5 of max")),
                     f"{seconds:.0f} s"))
        print(rows[-1], flush=True)
    header = ("tap", "grid", "test acc", "valid acc", "pointing", "CorLoc@0.2", "CorLoc@0.5", "train time")
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
