"""Run a trained box model (`boxstrap train-boxes`, or a pipeline's RUN/boxes/model) on new photos:
every object it finds (one box per photo for a one-box head) and each photo's class, written as Pascal VOC, COCO, YOLO, Create ML and boxes JSON, with
review overlays and contact sheets (lowest confidence first), as `localize` writes its pseudo
boxes. With --ground-truth, also scores them. Images that cannot be read are named on stderr,
skipped and listed in OUT/skipped.json; the exit status is then 1."""

from __future__ import annotations

import argparse
import time

from boxstrap.commands._ray import add_ray_arguments, ray_options
from detector.detect_photos import DetectConfig

__all__ = ["HELP", "NAME", "add_arguments", "run"]

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
    add_ray_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from boxstrap.commands._report import print_scores, print_written, report_skipped
    from detector.detect_photos import ANNOTATION_PATHS, detect_photos

    config = DetectConfig(overlays=not args.no_overlays, min_confidence=args.min_confidence)
    start = time.perf_counter()
    result = detect_photos(args.box_model, args.images, args.out, config, ground_truth=args.ground_truth,
                           overwrite=args.overwrite, ray=ray_options(args))
    out = result.out_dir
    flagged = sum(bool(note) for note in result.notes)
    print(f"boxed {len(result.items)} photos in {time.perf_counter() - start:.1f} s, {flagged} flagged for review")
    if result.scores:
        print_scores(result.scores, args.ground_truth, out)
    print_written(out, config.formats, ANNOTATION_PATHS, overlays=config.overlays)
    return report_skipped(NAME, result.skipped, len(result.items), out)
