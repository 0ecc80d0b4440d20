"""Score predicted boxes against ground-truth boxes and print the metrics table.

PRED and GT may be in any annotation format boxstrap reads (Pascal VOC, COCO, YOLO, Create ML,
boxes JSON; guessed from the file unless given). Metrics: CorLoc and mean IoU of each image's
top box, BoxAcc at IoU 0.3/0.5/0.7 with any box, COCO mAP@0.5 and mAP@[.5:.95].
"""

from __future__ import annotations

import argparse

from groundwork.atomic import write_json

NAME = "evaluate-boxes"
HELP = "score predicted boxes against ground-truth boxes (CorLoc, IoU, BoxAcc, COCO mAP)"
FORMATS = ("voc", "coco", "yolo", "createml", "boxes-json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", metavar="PRED", help="predicted boxes: annotation file or folder")
    parser.add_argument("gt", metavar="GT", help="ground-truth boxes: annotation file or folder")
    parser.add_argument("--pred-format", choices=FORMATS, default=None, help="format of PRED (default: guessed)")
    parser.add_argument("--gt-format", choices=FORMATS, default=None, help="format of GT (default: guessed)")
    parser.add_argument("--output", metavar="JSON", default=None, help="also write the metrics to this JSON file")


def run(args: argparse.Namespace) -> int:
    from localize.evaluate import evaluate_box_files

    result = evaluate_box_files(args.pred, args.gt, pred_format=args.pred_format, gt_format=args.gt_format)
    rows = result.rows()
    width = max(len(name) for name, _ in rows)
    print(f"{'metric':<{width}}  value")
    print(f"{'-' * width}  -----")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if args.output:
        path = write_json(args.output, {"pred": str(args.pred), "gt": str(args.gt), **result.to_dict()})
        print(f"wrote metrics to {path}")
    return 0
