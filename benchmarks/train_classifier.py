"""Benchmark ``boxstrap train`` on the real block photos against one plain VGG16 forward pass.

Prints, from one run (so both see the same CPU load):

- the time of one forward pass of the plain Keras VGG16 conv base (``include_top=False``) over
  every image of the prepared dataset at the training input size,
- the wall time of ``boxstrap train`` (a subprocess: imports, features, both phases, writing
  the model folder) and its ratio to the forward pass,
- the training's peak memory (``getrusage(RUSAGE_CHILDREN).ru_maxrss``),
- valid/test accuracy from ``metrics.json``,
- a CorLoc sanity check of the class maps on the valid/test photos that have hand-checked boxes
  (``valid_boxes.json``; held out only with ``--ship split``, the saved model is otherwise refitted
  on every photo): the predicted class's map, upsampled to the photo, thresholded at a
  fraction of its range; the largest component's box is a hit when IoU >= 0.5.

Usage::

    python benchmarks/train_classifier.py [--data DIR] [--manifest DIR] [--out DIR] [-- TRAIN FLAGS...]

Without ``--manifest`` the photos are prepared first (``boxstrap prepare DATA --resplit``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import PHOTOS as DATA
from _common import forward_pass

BOXSTRAP = str(Path(sys.executable).with_name("boxstrap"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="photos with class folders and valid_boxes.json")
    parser.add_argument("--manifest", type=Path, help="a prepared dataset (default: prepare --data into --work)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/boxstrap-bench"), help="scratch folder")
    parser.add_argument("--out", type=Path, help="model folder (default WORK/model)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size of the forward pass")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="skip the forward pass and training; evaluate the model in --out")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="flags passed on to boxstrap train (after --)")
    args = parser.parse_args()
    train_args = [a for a in args.train_args if a != "--"]
    out = args.out or args.work / "model"
    manifest_dir = args.manifest or args.work / "prepared"
    if not (manifest_dir / "manifest.json").is_file():
        subprocess.run([BOXSTRAP, "prepare", str(args.data), "--out", str(manifest_dir), "--resplit"], check=True)

    from classifier.train_config import TrainConfig
    from datasets.manifest import load_manifest

    manifest = load_manifest(manifest_dir)
    input_size = _input_size(train_args) or TrainConfig().input_size
    rows = []
    count = sum(len(manifest.split(s)) for s in ("train", "valid", "test"))
    if not args.evaluate_only:
        forward_seconds, count = forward_pass(manifest, input_size, args.batch_size)
        start = time.perf_counter()
        subprocess.run([BOXSTRAP, "train", str(manifest_dir), "--out", str(out), "--overwrite", *train_args],
                       check=True)
        train_seconds = time.perf_counter() - start
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
        rows += [
            ("plain VGG16 forward pass", f"{forward_seconds:.1f} s ({forward_seconds / count * 1000:.0f} ms/image)"),
            ("boxstrap train (whole run)", f"{train_seconds:.1f} s"),
            ("ratio train / forward", f"{train_seconds / forward_seconds:.2f} (target <= 3)"),
            ("peak memory of training", f"{peak_gb:.2f} GB (target < 6)"),
        ]
    metrics = json.loads((out / "metrics.json").read_text())
    corloc = class_map_corloc(out, manifest, args.data)
    rows = [
        ("images", f"{count} at {input_size[0]}x{input_size[1]} (train/valid/test "
                   f"{len(manifest.split('train'))}/{len(manifest.split('valid'))}/{len(manifest.split('test'))})"),
        *rows,
        ("epochs head / fine-tune", f"{metrics['epochs']['head']} / {metrics['epochs']['fine_tune']}"),
        ("valid accuracy", _fmt(metrics.get("valid", {}).get("accuracy"))),
        ("test accuracy", _fmt(metrics.get("test", {}).get("accuracy")) + " (target >= 0.99)"),
        ("test confusion (rows true)", str(metrics.get("test", {}).get("confusion_matrix"))),
    ]
    # The model saved is refitted on every split unless --ship split: then these photos were not held out.
    held_out = metrics.get("shipped_model", {}).get("trained_on", ["train"]) == ["train"]
    photos = "held-out boxed photos" if held_out else "boxed valid/test photos, their labels trained on"
    for name, (overall, per_class, n) in corloc.items():
        detail = ", ".join(f"{k} {_fmt(v)}" for k, v in per_class.items())
        rows.append((name, f"{_fmt(overall)} ({detail}; {n} {photos})"))
    width = max(len(k) for k, _ in rows)
    print(f"\n{'measure':<{width}} | value\n{'-' * width}-|------")
    for key, value in rows:
        print(f"{key:<{width}} | {value}")
    return 0


def class_map_corloc(model_dir: Path, manifest, data: Path, fractions=(0.2, 0.3, 0.5)):
    """{measure: (share, {label: share}, n)} over held-out records with boxes in valid_boxes.json.

    Measures: the pointing game (the map's peak falls in the true box) and CorLoc at each
    fraction, the map first clipped at 0 and divided by its maximum ("of max"), or min-max
    scaled when the maximum is not positive.
    """
    import keras
    from PIL import Image

    import classifier.pooling  # noqa: F401 - registers the pooling layer for loading
    from datasets.preprocessing import Preprocessing
    from datasets.tf_input import read_rgb
    from groundwork.box_geometry import box_iou

    boxes = {str((data / b["file"]).resolve()): b for b in json.loads((data / "valid_boxes.json").read_text())}
    records = [r for s in ("valid", "test") for r in manifest.split(s) if str(Path(r.source).resolve()) in boxes]
    if not records:
        return {}
    model = keras.saving.load_model(model_dir / "model.keras", safe_mode=True)
    preprocessing = Preprocessing.load(model_dir)
    labels = json.loads((model_dir / "labels.json").read_text())
    x = preprocessing.apply(np.stack([read_rgb(manifest.image_path(r), preprocessing) for r in records]))
    probabilities, class_maps = model.predict(x, verbose=0)
    result = {}
    for fraction in (None, *fractions):
        hits: dict[str, list[bool]] = {}
        for record, p, maps in zip(records, probabilities, class_maps, strict=True):
            truth = boxes[str(Path(record.source).resolve())]
            c = int(p.argmax())
            heat = maps[..., c]
            if heat.max() > 0:
                heat = np.maximum(heat, 0) / heat.max()
            else:
                heat = (heat - heat.min()) / (heat.max() - heat.min() + 1e-12)
            heat = np.asarray(Image.fromarray(heat.astype(np.float32)).resize(
                (truth["width"], truth["height"]), Image.Resampling.BILINEAR))
            if fraction is None:
                y, x = np.unravel_index(heat.argmax(), heat.shape)
                hit = any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in truth["boxes"])
            else:
                box = largest_component_box(heat >= fraction)
                # valid_boxes.json holds inclusive pixels: one past the last column/row as edges.
                truth_edges = np.asarray(truth["boxes"], np.float64).reshape(-1, 4) + [0, 0, 1, 1]
                hit = box is not None and box_iou([box], truth_edges).max() >= 0.5
            hits.setdefault(record.label, []).append(bool(hit) and labels[c] == record.label)
        everything = [h for v in hits.values() for h in v]
        name = "pointing game (peak in box)" if fraction is None else f"CorLoc @ {fraction:.1f} of max"
        result[name] = (float(np.mean(everything)), {k: float(np.mean(v)) for k, v in sorted(hits.items())},
                        len(everything))
    return result


def largest_component_box(mask: np.ndarray):
    """(xmin, ymin, xmax, ymax) edges (``xmax`` one past the last column) of the largest
    8-connected component, or None."""
    from skimage.measure import label

    labelled = label(mask, connectivity=2)
    if labelled.max() == 0:
        return None
    biggest = np.bincount(labelled.ravel())[1:].argmax() + 1
    ys, xs = np.nonzero(labelled == biggest)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def _input_size(train_args):
    if "--input-size" in train_args:
        i = train_args.index("--input-size")
        return int(train_args[i + 1]), int(train_args[i + 2])
    return None


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
