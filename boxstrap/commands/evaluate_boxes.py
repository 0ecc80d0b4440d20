"""Score predicted boxes against ground-truth boxes and print the metrics table.

PRED and GT may be in any annotation format boxstrap reads (Pascal VOC, COCO, YOLO, Create ML,
boxes JSON; guessed from the file unless given). Metrics: CorLoc and mean IoU of each image's
top box, BoxAcc at IoU 0.3/0.5/0.7 with any box, recall over all boxes and extra boxes, COCO
mAP@0.5 and mAP@[.5:.95], and the AUROC of the scores for a right box (IoU >= 0.5).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from datasets.annotations import FORMATS
from groundwork.atomic import write_json

__all__ = ["HELP", "NAME", "TENSORFLOW", "add_arguments", "run"]

NAME = "evaluate-boxes"
HELP = "score predicted boxes against ground-truth boxes (CorLoc, IoU, BoxAcc, recall, COCO mAP, score AUROC)"
TENSORFLOW = False  # the command never imports it (boxstrap.cli)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", metavar="PRED", help="predicted boxes: annotation file or folder")
    parser.add_argument("gt", metavar="GT", help="ground-truth boxes: annotation file or folder")
    parser.add_argument("--pred-format", choices=FORMATS, default=None, help="format of PRED (default: guessed)")
    parser.add_argument("--gt-format", choices=FORMATS, default=None, help="format of GT (default: guessed)")
    parser.add_argument("--output", metavar="JSON", default=None, help="also write the metrics to this JSON file")


def check_output(output: str, inputs: tuple[str, ...]) -> Path:
    """``--output`` as a path, refused when it would replace an input or a file it did not write.

    Raises
    ------
    IsADirectoryError, FileExistsError
        Naming the path and what is there.
    """
    out = Path(output)
    if out.is_dir():
        raise IsADirectoryError(f"--output {out} is a folder; give the path of a .json file to write.")
    for given in inputs:
        source = Path(given).resolve()
        if out.resolve() == source or out.resolve().is_relative_to(source):
            raise FileExistsError(f"--output {out} is the input {given}: it would be replaced by the metrics. "
                                  "Choose another path.")
    if out.exists():
        try:
            earlier = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            earlier = None
        if not (isinstance(earlier, dict) and {"pred", "gt", "corloc"} <= set(earlier)):
            raise FileExistsError(f"--output {out} exists and is not a metrics file of evaluate-boxes; it is left "
                                  "as it is. Choose another path.")
    return out


def run(args: argparse.Namespace) -> int:
    from datasets.evaluate import evaluate_box_files

    output = check_output(args.output, (args.pred, args.gt)) if args.output else None  # before any work
    result = evaluate_box_files(args.pred, args.gt, pred_format=args.pred_format, gt_format=args.gt_format)
    rows = result.rows()
    width = max(len(name) for name, _ in rows)
    print(f"{'metric':<{width}}  value")
    print(f"{'-' * width}  -----")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if output is not None:
        path = write_json(output, {"pred": str(args.pred), "gt": str(args.gt), **result.to_dict()})
        print(f"wrote metrics to {path}")
    return 0
