"""Prepare photos for training: upright, small, metadata-free copies, capture groups and a split.

SRC is a folder per class (SRC/<class>/*.jpg|png|heic), split here (seeded, stratified, whole
capture groups per split), or an existing SRC/training|train/<class>/, SRC/valid/<class>/
(+ optional SRC/test/<class>/) layout, kept as given (leakage reported) unless --resplit.
SRC is never modified. Rerunning the same command resumes an interrupted run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["HELP", "NAME", "TENSORFLOW", "add_arguments", "run"]

NAME = "prepare"
HELP = "ingest photos per class: EXIF-rotate, strip metadata, resize, group bursts, split"
TENSORFLOW = False  # the command never imports it (boxstrap.cli)


def _optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, help="folder with one folder per class (or training/valid[/test])")
    parser.add_argument("--out", type=Path, required=True, help="output folder for images and manifest.json")
    parser.add_argument("--config", type=Path, help="a prepare_config.json to start from (flags override it)")
    parser.add_argument("--max-side", type=int, help="longest side of the prepared images (default 640)")
    parser.add_argument("--valid", type=float, help="valid fraction per class for a new split (default 0.15)")
    parser.add_argument("--test", type=float, help="test fraction per class for a new split (default 0.15)")
    parser.add_argument("--seed", type=int, help="seed of the split (default 0)")
    parser.add_argument("--phash-threshold", type=int,
                        help="largest pHash distance of near duplicates, 0-64 (default 6)")
    parser.add_argument("--burst-seconds", default=argparse.SUPPRESS, type=_optional_float,
                        help="photos of a class this close in EXIF time are a burst; 'none' to disable (default 2)")
    parser.add_argument("--burst-gap", default=argparse.SUPPRESS, type=_optional_int,
                        help="photos of a class this close in file number are a burst; 'none' to disable (default 2)")
    parser.add_argument("--burst-max-distance", default=argparse.SUPPRESS, type=_optional_int,
                        help="a burst link also needs a pHash distance <= this; 'none': no check (default 16)")
    parser.add_argument("--resplit", action="store_true", default=None,
                        help="split a given training/valid/test layout anew")
    parser.add_argument("--strict", action="store_true", default=None,
                        help="stop at the first unreadable image instead of skipping it")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="replace a different earlier run in --out")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from datasets.ingest import prepare
    from datasets.prepare_config import PrepareConfig
    from groundwork.config import load_config
    from groundwork.progress import progress_bar

    flags = {
        "max_side": args.max_side, "valid": args.valid, "test": args.test, "seed": args.seed,
        "phash_threshold": args.phash_threshold, "resplit": args.resplit, "strict": args.strict,
        "overwrite": args.overwrite,
    }
    flags = {k: v for k, v in flags.items() if v is not None}
    # Burst flags are absent unless given (SUPPRESS), so that "none" can switch a rule off.
    flags.update({k: getattr(args, k) for k in ("burst_seconds", "burst_gap", "burst_max_distance") if hasattr(args, k)})
    if args.config is not None:
        base = load_config(PrepareConfig, args.config)
        config = dataclasses.replace(base, src=args.src, out=args.out, **flags)
    else:
        config = PrepareConfig(src=args.src, out=args.out, **flags)

    bar = progress_bar(unit="img", desc="prepare", leave=False)

    def progress(done: int, total: int, path: Path) -> None:
        bar.total = total
        bar.set_postfix_str(path.name, refresh=False)
        bar.update(done - bar.n)  # redraws at most every 0.1 s

    try:
        manifest = prepare(config, progress=progress)
    finally:
        bar.close()
    _print_summary(manifest)
    return 0


def _print_summary(manifest) -> None:
    groups = manifest.groups
    print(f"{len(manifest.records)} images in {len(manifest.labels)} classes, "
          f"{groups.get('count')} capture groups (largest {groups.get('largest', [])[:5]}), "
          f"split {manifest.settings.get('split')}")
    splits = ("train", "valid", "test")
    width = max(len(label) for label in manifest.labels)
    print(f"  {'class':<{width}}  " + "  ".join(f"{s:>6}" for s in splits))
    for label, counts in groups.get("split_counts", {}).items():
        print(f"  {label:<{width}}  " + "  ".join(f"{counts[s]:>6}" for s in splits))
    print("  groups per split: " + ", ".join(f"{s} {n}" for s, n in groups.get("groups_per_split", {}).items())
          + f"; groups in two splits: {groups.get('groups_in_two_splits')}")
    for split, leak in groups.get("leakage", {}).items():
        print(f"  leakage: {leak['share_group_with_train']} of {leak['images']} {split} images share a capture "
              f"group with a training image ({leak['near_duplicate_of_train']} are near duplicates of one); "
              "use --resplit for a leak-free split")
    for conflict in manifest.conflicts:
        a, b = conflict["images"]
        print(f"  label conflict ({conflict['kind']}, distance {conflict['distance']}): "
              f"{a['source']} [{a['label']}] and {b['source']} [{b['label']}]")
    if manifest.skipped:
        print(f"  skipped {len(manifest.skipped)} files (re-export or remove them; --strict makes them an error):")
        for entry in manifest.skipped:
            print(f"    {entry['source']}: {entry['reason']}")
    print(f"wrote {len(manifest.records)} images to {manifest.root / 'images'} "
          f"and the manifest to {manifest.root / 'manifest.json'}")
