"""Run everything in one go: prepare the photos, train the classifier, export it to Core ML and
verify the export, bootstrap pseudo boxes, train the box model, export and verify it, and write a
summary (RUN/summary.md and RUN/summary.html). Rerunning resumes: unchanged stages are skipped.

With --demo (or no SRC) it first renders the built-in synthetic block photos into RUN/demo-data
and runs on those."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from boxstrap.commands._ray import add_ray_arguments, ray_options
from classifier.train_config import SHIP_CHOICES, TrainConfig, with_backbone
from localize.pseudo_boxes import METHODS, LocalizeConfig

__all__ = ["HELP", "NAME", "add_arguments", "run"]

NAME = "pipeline"
HELP = "photos in, verified Core ML classifier and detector out (all stages, resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", nargs="?", help="photos: a folder per class (or training/ valid/ test/ with a "
                                               "folder per class inside); omit with --demo")
    parser.add_argument("--out", required=True, help="run folder (created; rerun to resume)")
    parser.add_argument("--demo", action="store_true", help="run on the built-in synthetic photos")
    from classifier.backbones.registry import BACKBONES, DEFAULT_BACKBONE

    parser.add_argument("--backbone", choices=sorted(BACKBONES), help=f"(default {DEFAULT_BACKBONE})")
    parser.add_argument("--weights", help="backbone start: one of the backbone's weight choices (its offline "
                                          "default when omitted) or a weights file")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"),
                        help="network input, multiples of the backbone's size step (default from TrainConfig)")
    parser.add_argument("--train-config", type=Path,
                        help="a train_config.json for the train stage, as `boxstrap train --config` takes "
                             "(e.g. with fine_tune_from); --weights, --input-size and --ship override it")
    parser.add_argument("--ship", choices=SHIP_CHOICES,
                        help="the classifier shipped: 'all' is trained again on train + valid + test for the "
                             "epochs the split run kept, 'split' is the split run's, trained on train only "
                             f"(default {TrainConfig().ship}); overrides --train-config")
    parser.add_argument("--method", choices=METHODS,
                        help=f"pseudo-box method (default {LocalizeConfig().method})")
    parser.add_argument("--ground-truth", help="boxes file to score boxes against (default: SRC/boxes.json or "
                                               "SRC/valid_boxes.json when present)")
    parser.add_argument("--force", nargs="+", default=(), metavar="STAGE",
                        help="rerun these stages (and the ones after them) even if unchanged")
    add_ray_arguments(parser)


def build_config(args: argparse.Namespace):
    """The PipelineConfig: defaults, then --train-config, then the flags (later wins)."""
    from dataclasses import replace

    from boxstrap.pipeline import PipelineConfig
    from groundwork.config import load_config

    config = PipelineConfig()
    if args.train_config:
        config = replace(config, train=load_config(TrainConfig, args.train_config))
    if getattr(args, "backbone", None):
        # Another backbone: its own default weights, widths and context, unless given.
        config = replace(config, train=with_backbone(config.train, args.backbone))
    if args.weights or args.input_size or args.ship:
        config = replace(config, train=replace(config.train, **{k: v for k, v in (
            ("weights", args.weights), ("input_size", tuple(args.input_size) if args.input_size else None),
            ("ship", args.ship)) if v}))
    if args.method:
        config = replace(config, localize=replace(config.localize, method=args.method))
    if args.ground_truth:
        config = replace(config, ground_truth=args.ground_truth)
    return config


def run(args: argparse.Namespace) -> int:
    from boxstrap.pipeline import run_pipeline

    run_dir = Path(args.out)
    if args.demo or args.src is None:
        from datasets.synthetic import DemoDataConfig, write_demo_data

        src = run_dir / "demo-data"
        if not (src / "boxes.json").is_file():
            write_demo_data(src, DemoDataConfig())
    else:
        src = Path(args.src)
    config = build_config(args)
    start = time.perf_counter()
    results = run_pipeline(src, run_dir, config, force=tuple(args.force), ray=ray_options(args),
                           on_stage=_print_stage)
    numbers = {name: r.numbers for name, r in results.items()}
    print(f"\npipeline finished in {time.perf_counter() - start:.0f} s; run folder {run_dir.resolve()}")
    for fmt, path in numbers["export"]["files"].items():
        print(f"  classifier ({fmt}): {path}")
    print(f"  detector: {numbers['boxes-export']['file']}")
    print(f"  summary: {run_dir.resolve() / 'summary.md'} and summary.html")
    print(f"  log: {run_dir.resolve() / 'log.txt'} (every step; `boxstrap -v pipeline` shows it here too)")
    return 0


def _print_stage(stage: str, event: str, seconds: float | None) -> None:
    """One line as a stage starts and one as it ends (or is skipped, unchanged)."""
    if event == "run":
        print(f"== {stage}: running", flush=True)
    elif event == "done":
        print(f"== {stage}: done in {seconds:.0f} s", flush=True)
    else:
        print(f"== {stage}: unchanged, skipped", flush=True)
