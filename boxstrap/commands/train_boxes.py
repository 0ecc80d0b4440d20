"""Train the box model (the classifier plus a box head, PSOL-style) on pseudo boxes from
`boxstrap localize`, or on the same file after you corrected it in an annotation tool."""

from __future__ import annotations

import argparse

from boxstrap.commands._ray import add_ray_arguments, ray_options
from detector.box_train_config import BoxTrainConfig

__all__ = ["HELP", "NAME", "add_arguments", "run"]

NAME = "train-boxes"
HELP = "train a box model on pseudo (or corrected) boxes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = BoxTrainConfig()
    parser.add_argument("model", help="trained classifier directory (from `boxstrap train`)")
    parser.add_argument("boxes", help="boxes in any annotation format, e.g. LOCALIZE_OUT/pseudo_boxes.json")
    parser.add_argument("images", help="the images the boxes name (prepared dataset or folder)")
    parser.add_argument("--out", required=True, help="box model directory to write")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="(default %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="(default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="(default %(default)s)")
    parser.add_argument("--hand-boxes", help="hand-checked boxes (any annotation format): they replace the pseudo "
                             "boxes of their photos and count --hand-weight times; with the k-fold record "
                             "`localize --ground-truth` wrote beside BOXES, the box model is scored on them "
                             "out of fold")
    parser.add_argument("--hand-weight", type=int, default=defaults.hand_weight, help="(default %(default)s)")
    parser.add_argument("--rounds", type=int, default=defaults.rounds,
                        help="with hand boxes, box models trained in turn, each after the first on the pseudo "
                             "boxes refined by the one before, the last shipped (default %(default)s; labels only: "
                             "one)")
    parser.add_argument("--paste-photos", type=int, default=defaults.paste_photos,
                        help="sets of scenes composed from the photos by copy-paste to learn from too (default "
                             "%(default)s: measured, not adopted; benchmarks/NOTES.md, \"Copy-paste of pixels\")")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing box model directory")
    add_ray_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from detector.train_box_model import train_box_model

    config = BoxTrainConfig(epochs=args.epochs, learning_rate=args.learning_rate, seed=args.seed,
                            hand_weight=args.hand_weight, rounds=args.rounds, paste_photos=args.paste_photos)
    path = train_box_model(args.model, args.boxes, args.images, args.out, config, hand_boxes=args.hand_boxes,
                           overwrite=args.overwrite, ray=ray_options(args))
    print(f"wrote the box model to {path} (box_model.keras, box_train_config.json, box_metrics.json)")
    held = json.loads((path / "box_metrics.json").read_text()).get("held_out")
    if held:
        print(f"held-out hand boxes ({held['images']}): CorLoc {held['corloc']:.3f}, mean IoU {held['mean_iou']:.3f} "
              f"({held['scored']})")
    return 0
