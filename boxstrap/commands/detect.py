"""Run a trained box model (`boxstrap train-boxes`, or a pipeline's RUN/boxes/model) on new photos:
one box and class per photo, written as Pascal VOC, COCO, YOLO, Create ML and boxes JSON, with
review overlays and contact sheets (lowest confidence first), as `localize` writes its pseudo
boxes. With --ground-truth, also scores them. Images that cannot be read are named on stderr,
skipped and listed in OUT/skipped.json; the exit status is then 1."""

from __future__ import annotations

import argparse
import sys
import time

from localize.detect_images import DetectConfig

NAME = "detect"
HELP = "box new photos with a trained box model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DetectConfig()
    parser.add_argument("box_model", help="box model directory (from `boxstrap train-boxes` or RUN/boxes/model)")
    parser.add_argument("images", help="a prepared dataset, a folder (of class folders or photos), or an image file")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--min-confidence", type=float, default=defaults.min_confidence,
                        help="flag photos whose class probability is below this (default %(default)s)")
    parser.add_argument("--no-overlays", action="store_true", help="skip the per-image overlay PNGs")
    parser.add_argument("--ground-truth", help="hand-checked boxes (any annotation format) to score against")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier detections in --out")


def run(args: argparse.Namespace) -> int:
    from localize.detect_images import ANNOTATION_PATHS, detect_images

    config = DetectConfig(overlays=not args.no_overlays, min_confidence=args.min_confidence)
    start = time.perf_counter()
    result = detect_images(args.box_model, args.images, args.out, config, ground_truth=args.ground_truth,
                           overwrite=args.overwrite)
    out = result.out_dir
    flagged = sum(p.max() < config.min_confidence for p in result.probabilities)
    print(f"boxed {len(result.items)} photos in {time.perf_counter() - start:.1f} s, {flagged} flagged for review")
    if result.scores:
        s = result.scores
        print(f"scores vs {args.ground_truth}: CorLoc {s['corloc']:.3f}, mean IoU {s['mean_iou']:.3f}, "
              f"mAP@0.5 {s['map50']:.3f} (all in {out / 'scores.json'})")
    for fmt in config.formats:
        print(f"  {fmt:10s} {out / ANNOTATION_PATHS[fmt]}")
    print(f"  review     {out / 'contact_sheets'}/ (lowest confidence first), {out / 'review.json'}"
          + (f", {out / 'overlays'}/" if config.overlays else ""))
    if result.skipped:
        for entry in result.skipped:
            print(f"boxstrap detect: {entry['reason']}; skipped", file=sys.stderr)
        print(f"boxstrap detect: {len(result.skipped)} of {len(result.items) + len(result.skipped)} images "
              f"could not be read (listed in {out / 'skipped.json'})", file=sys.stderr)
        return 1
    return 0
