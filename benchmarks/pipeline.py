"""Benchmark the whole ``boxstrap pipeline`` on the real block photos, a column per backbone.

Each backbone's pipeline runs as ``boxstrap pipeline PHOTOS --backbone NAME`` in its own process
(its peak memory is its own) on the same photos and the same split, then one plain VGG16
forward pass over the photos at the same input size is timed (the unit the targets are written
in; it stays VGG16 whatever backbone is measured). The table: per-stage wall time, the whole
run against that forward pass, peak memory, test accuracy, Core ML parity, pseudo-box and
box-model CorLoc against the hand-checked boxes, and the exported model sizes. ``--readme``
writes it into README.md between its ``<!-- results -->`` markers: the README's results table
is this output, never typed by hand.

Usage::

    python benchmarks/pipeline.py [--photos DIR] [--run DIR] [--backbone NAME ...] [--readme]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import PHOTOS, forward_pass, write_readme_block

BOXSTRAP = str(Path(sys.executable).with_name("boxstrap"))
STAGES = ("prepare", "train", "export", "verify", "localize", "boxes", "boxes-export", "boxes-verify")


def main() -> int:
    from classifier.backbones.registry import BACKBONES, DEFAULT_BACKBONE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="photos: a folder per class (default %(default)s)")
    parser.add_argument("--run", type=Path, default=Path("/tmp/boxstrap-bench/pipeline"),
                        help="folder of the runs (one per backbone)")
    parser.add_argument("--backbone", nargs="+", choices=sorted(BACKBONES),
                        default=[DEFAULT_BACKBONE, *sorted(set(BACKBONES) - {DEFAULT_BACKBONE})],
                        help="backbones to run, a column each (default: all, the default first)")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    parser.add_argument("--tabulate-only", action="store_true",
                        help="run nothing: tabulate the runs already in --run (the whole-pipeline time is then "
                             "the sum of the stage times)")
    args = parser.parse_args()

    from boxstrap.pipeline import PipelineConfig
    from datasets.manifest import load_manifest

    columns = {}
    for backbone in args.backbone:
        run = args.run / backbone
        start = time.perf_counter()
        if not args.tabulate_only:
            subprocess.run([BOXSTRAP, "pipeline", str(args.photos), "--out", str(run), "--backbone", backbone,
                            "--force", "prepare"], check=True)
        columns[backbone] = {stage: json.loads((run / stage / "stage.json").read_text()) for stage in STAGES
                             if (run / stage / "stage.json").is_file()}  # all of them, unless a run was cut short
        columns[backbone]["wall"] = {"seconds": sum(s["seconds"] for s in columns[backbone].values())
                                     if args.tabulate_only else time.perf_counter() - start}
    input_size = PipelineConfig().train.input_size
    manifest = load_manifest(args.run / args.backbone[0] / "prepare")
    forward, count = forward_pass(manifest, input_size)
    table = format_table(columns, forward, count, args.photos.name, input_size)
    print(table)
    if args.readme:
        write_readme_block("results", table)
    return 0


def format_table(columns: dict[str, dict], forward: float, count: int, photos: str, input_size) -> str:
    """A Markdown table: a row per measure, a column per backbone.

    ``columns``: per backbone, each stage's ``stage.json`` and ``"wall"``: ``{"seconds": ...}``.
    """
    rows: dict[str, dict[str, str]] = {}

    def put(measure: str, backbone: str, value: str) -> None:
        rows.setdefault(measure, {})[backbone] = value

    for backbone, stages in columns.items():
        stages = dict(stages)
        total = stages.pop("wall")["seconds"]  # the command's wall time: imports and summary included
        n = {stage: s["numbers"] for stage, s in stages.items()}
        for stage, s in stages.items():  # its time and its share of the whole pipeline
            put(f"stage {stage}", backbone, f"{s['seconds']:.0f} s ({s['seconds'] / total:.0%})")
        put("whole pipeline", backbone, f"{total:.0f} s")
        put("pipeline / one VGG16 forward pass", backbone, f"{total / forward:.1f}x")
        put("training / one VGG16 forward pass", backbone, f"{stages['train']['seconds'] / forward:.2f}x")
        if "localize" in stages:
            put("localize / one VGG16 forward pass", backbone, f"{stages['localize']['seconds'] / forward:.2f}x")
        put("peak memory (training; whole run)", backbone,
            f"{n['train']['peak_rss_mb'] / 1024:.1f} GB; "
            f"{max(s.get('peak_rss_mb', 0) for s in n.values()) / 1024:.1f} GB")
        put("test accuracy (split run)", backbone, _fmt(n["train"].get("test", {}).get("accuracy")))
        put("valid accuracy (split run)", backbone, _fmt(n["train"].get("valid", {}).get("accuracy")))
        for stage, name in (("verify", "classifier"), ("boxes-verify", "detector")):
            for e in n.get(stage, {}).get("exports", []):
                put(f"parity {name} {Path(e['path']).suffix} ({e.get('precision')})", backbone,
                    f"top-1 {_fmt(e.get('top1_agreement'))}, max abs diff {_g(e.get('max_abs_diff'))}"
                    + (f", min box IoU {_fmt(e.get('min_box_iou'))}" if e.get("min_box_iou") is not None else ""))
        for stage, key, name in (("localize", "scores", "pseudo boxes"),
                                 ("boxes", "split_scores", "pseudo boxes, refined by the box model"),
                                 ("boxes", "scores", "box model")):
            s = n.get(stage, {}).get(key)
            if s:
                held = " held out" if (s.get("localizer") or key == "split_scores"
                                       or s.get("scored", "").startswith(tuple("0123456789"))) else ""
                put(f"{name} CorLoc / mean IoU / mAP@0.5", backbone,
                    f"{_fmt(s['corloc'])} / {_fmt(s['mean_iou'])} / {_fmt(s['map50'])} ({s['n_scored']} photos{held})")
        for fmt, size in n["export"]["sizes_mb"].items():
            put(f"classifier {fmt} size", backbone, f"{size} MB")
        if "boxes-export" in n:
            put("detector size", backbone, f"{n['boxes-export']['size_mb']} MB")
        missing = [stage for stage in STAGES if stage not in stages]
        if missing:
            put("not finished", backbone, ", ".join(missing))
    names = list(columns)
    lines = [f"Block photos ({photos}): {count} at {input_size[0]}x{input_size[1]}; one plain VGG16 forward pass "
             f"over them {forward:.0f} s ({forward / count * 1000:.0f} ms/photo).", "",
             "| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {measure} | " + " | ".join(values.get(b, "") for b in names) + " |" for measure, values in rows.items()]
    return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _g(value) -> str:
    return "n/a" if value is None else f"{value:.2g}"


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
