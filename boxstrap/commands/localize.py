"""Bootstrap bounding boxes from the classifier's class heatmaps: one box per photo, written as
Pascal VOC, COCO, YOLO, Create ML and boxes JSON (open them in CVAT, Label Studio, Roboflow or
Create ML to correct them), with review overlays and contact sheets (lowest confidence first).
With --ground-truth, also scores them (CorLoc, IoU, BoxAcc, COCO mAP). Images that cannot be
read are named on stderr, skipped and listed in OUT/skipped.json; the exit status is then 1."""

from __future__ import annotations

import argparse
import time

from boxstrap.commands._ray import add_ray_arguments, ray_options
from localize.pseudo_boxes import METHODS, LocalizeConfig

__all__ = ["HELP", "NAME", "add_arguments", "run"]

NAME = "localize"
HELP = "pseudo bounding boxes from class heatmaps, with review pictures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = LocalizeConfig()
    parser.add_argument("model", help="trained model directory (from `boxstrap train`)")
    parser.add_argument("images", help="a prepared dataset, a folder per class, or an image file")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--method", choices=METHODS, default=defaults.method,
                        help=f"how a heatmap becomes a box (default {defaults.method})")
    parser.add_argument("--threshold", type=float, default=None,
                        help="fixed threshold as a fraction of the map's range (default: what was learned from "
                             "hand boxes, saved with the model or learned now from --ground-truth; with no box "
                             "ever seen, half way from each map's median to its peak)")
    parser.add_argument("--min-confidence", type=float, default=defaults.min_confidence,
                        help="flag images whose class probability is below this (default %(default)s)")
    parser.add_argument("--scales", type=float, nargs="+", default=defaults.scales,
                        help="input scales whose class maps are averaged (default %(default)s)")
    parser.add_argument("--no-flip", action="store_true", help="do not average in the mirrored photo's maps")
    parser.add_argument("--no-overlays", action="store_true", help="skip the per-image overlay PNGs")
    parser.add_argument("--ground-truth", help="hand-checked boxes (any annotation format; as few as 10): a cell "
                             "localizer is learned from them and saved with the model, and the photos they box are "
                             "scored by localizers fitted without their capture group (k-fold)")
    parser.add_argument("--folds", type=int, default=defaults.folds,
                        help="folds over capture groups for scoring the learned localizer (default %(default)s)")
    parser.add_argument("--no-learn", action="store_true",
                        help="do not learn a localizer from --ground-truth; only calibrate the class maps' "
                             "threshold on it (scored 2-fold)")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="with --no-learn: score against --ground-truth but do not calibrate on it")
    parser.add_argument("--keep-learned", action="store_true",
                        help="with --ground-truth: also put what was learned (the cell localizer or the "
                             "calibrated threshold) beside MODEL, so that `boxstrap localize MODEL` boxes new "
                             "photos the same way (without it, MODEL is only read)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier result in --out")
    add_ray_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from boxstrap.commands._report import print_scores, print_written, report_skipped
    from localize.learned import LEARNED_FILES, keep_learned
    from localize.localize_photos import ANNOTATION_PATHS, localize_photos

    config = LocalizeConfig(method=args.method, threshold=args.threshold, min_confidence=args.min_confidence,
                            overlays=not args.no_overlays, scales=tuple(args.scales), flip=not args.no_flip,
                            calibrate=not args.no_calibrate, learn=not args.no_learn, folds=args.folds)
    start = time.perf_counter()
    result = localize_photos(args.model, args.images, args.out, config, ground_truth=args.ground_truth,
                             overwrite=args.overwrite, ray=ray_options(args))
    out = result.out_dir
    learned = [out / name for name in LEARNED_FILES if (out / name).is_file()]
    if learned and args.keep_learned:
        for path in keep_learned(out, args.model):
            print(f"learned from the hand boxes, kept with the model: {path} (`boxstrap localize` uses it on new "
                  "photos)")
    elif learned:
        print(f"learned from the hand boxes: {', '.join(map(str, learned))} (pass --keep-learned to keep it with "
              "the model for new photos)")
    flagged = sum(bool(n) for n in result.pseudo.notes)
    with_box = sum(len(b) > 0 for b in result.pseudo.boxes)
    print(f"localised {len(result.items)} images in {time.perf_counter() - start:.1f} s: {with_box} with a box, "
          f"{flagged} flagged for review")
    if result.scores:
        s = result.scores
        print_scores(s, args.ground_truth, out)
        t = s["threshold"]
        value = "per map" if t["value"] is None else f"{t['value']:.2f}"
        print(f"  threshold {value} ({t['method']}"
              + (f" on {t['n_images']} boxed images; scored at {t['held_out']}, 2-fold" if "held_out" in t else "")
              + ")")
        if "localizer" in s:
            print(f"  learned from {s['localizer']['hand_boxes']} hand boxes; {s['localizer']['scored']}")
    print_written(out, config.formats, ANNOTATION_PATHS, overlays=config.overlays)
    return report_skipped(NAME, result.skipped, len(result.items), out)
