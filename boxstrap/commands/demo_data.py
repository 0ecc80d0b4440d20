"""Render synthetic photo-like scenes of the two Math-U-See blocks ("one": a green cube, "ten": a blue
rod of ten cubes) with exact ground-truth boxes: OUT/<class>/*.jpg, OUT/boxes.json and
OUT/demo_data_config.json. Use it to try the whole pipeline without photos of your own."""

from __future__ import annotations

import argparse
import re
import time

from datasets.synthetic import DemoDataConfig, write_demo_data

__all__ = ["HELP", "NAME", "TENSORFLOW", "add_arguments", "run"]

NAME = "demo-data"
HELP = "render synthetic block photos with exact boxes (a dataset to try boxstrap on)"
TENSORFLOW = False  # the command never imports it (boxstrap.cli)


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"size must be HEIGHTxWIDTH, e.g. 480x640. Received: {text!r}")
    return int(match.group(1)), int(match.group(2))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoDataConfig()
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--per-class", type=int, default=defaults.per_class,
                        help=f"scenes per class (default {defaults.per_class})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"random seed (default {defaults.seed})")
    parser.add_argument("--size", type=_size, default=defaults.size, metavar="HxW",
                        help="image size as HEIGHTxWIDTH (default {}x{})".format(*defaults.size))
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files of the same names that an earlier demo-data run did not write")
    parser.add_argument("--no-distractors", action="store_true",
                        help="do not draw random shapes of other colours on the backgrounds")
    parser.add_argument("--objects", type=int, default=defaults.objects,
                        help="most blocks per scene: scene i holds 1 + i %% OBJECTS blocks, each boxed "
                             f"(default {defaults.objects})")


def run(args: argparse.Namespace) -> int:
    config = DemoDataConfig(per_class=args.per_class, size=tuple(args.size), seed=args.seed,
                            distractors=not args.no_distractors, objects=args.objects)
    start = time.perf_counter()
    boxes = write_demo_data(args.out, config, overwrite=args.overwrite)
    elapsed = time.perf_counter() - start
    total = 2 * config.per_class
    print(f"wrote {total} images ({config.size[0]}x{config.size[1]}) in {elapsed:.1f} s "
          f"to {boxes.parent}/{{one,ten}}/, boxes to {boxes}, config to {boxes.parent / 'demo_data_config.json'}")
    return 0
