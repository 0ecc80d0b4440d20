"""Benchmark the whole ``boxstrap pipeline`` on the real block photos; print one table.

Per-stage wall time, the whole run against one plain VGG16 forward pass over the same photos at
the same input size (measured in the same process, so both see the same CPU), peak memory, test
accuracy, Core ML parity, pseudo-box and box-model CorLoc against the hand-checked boxes, and
the exported model sizes. ``--readme`` writes the table into README.md between its
``<!-- results -->`` markers: the README's results table is this output, never typed by hand.

Usage::

    python benchmarks/pipeline.py [--photos DIR] [--run DIR] [--readme]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sys
import time
from pathlib import Path

from _common import PHOTOS, forward_pass, print_table

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="photos: a folder per class (default %(default)s)")
    parser.add_argument("--run", type=Path, default=Path("/tmp/boxstrap-bench/pipeline"), help="run folder")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()

    from boxstrap.pipeline import PipelineConfig, run_pipeline
    from datasets.manifest import load_manifest

    config = PipelineConfig()
    start = time.perf_counter()
    results = run_pipeline(args.photos, args.run, config, force=("prepare",))
    total = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    manifest = load_manifest(args.run / "prepare")
    forward, count = forward_pass(manifest, config.train.input_size)
    n = {name: r.numbers for name, r in results.items()}

    rows = [("photos", f"{count} ({args.photos.name}), {config.train.input_size[0]}x{config.train.input_size[1]} "
                       f"network input")]
    rows += [(f"stage {name}", f"{r.seconds:.0f} s") for name, r in results.items()]
    rows += [
        ("whole pipeline", f"{total:.0f} s"),
        ("one plain VGG16 forward pass over the photos", f"{forward:.0f} s ({forward / count * 1000:.0f} ms/photo)"),
        ("pipeline / forward pass", f"{total / forward:.1f}x"),
        ("training / forward pass", f"{results['train'].seconds / forward:.2f}x"),
        ("peak memory", f"{peak_gb:.1f} GB"),
        ("test accuracy", _fmt(n["train"].get("test", {}).get("accuracy"))),
    ]
    for stage, name in (("verify", "classifier"), ("boxes-verify", "detector")):
        for e in n[stage]["exports"]:
            rows.append((f"parity {name} {Path(e['path']).name} ({e.get('precision')})",
                         f"top-1 agreement {_fmt(e.get('top1_agreement'))}, max abs diff {_g(e.get('max_abs_diff'))}"
                         + (f", min box IoU {_fmt(e.get('min_box_iou'))}" if e.get("min_box_iou") is not None else "")))
    for stage, name in (("localize", "pseudo boxes"), ("boxes", "box model")):
        s = n[stage].get("scores")
        if s:
            rows.append((f"{name} CorLoc / mean IoU / mAP@0.5", f"{_fmt(s['corloc'])} / {_fmt(s['mean_iou'])} / "
                                                                f"{_fmt(s['map50'])} ({s['n_scored']} checked photos)"))
    for fmt, size in n["export"]["sizes_mb"].items():
        rows.append((f"classifier {fmt} size", f"{size} MB"))
    rows.append(("detector size", f"{n['boxes-export']['size_mb']} MB"))
    table = print_table(rows)
    if args.readme:
        text = README.read_text()
        block = f"<!-- results -->\n{table}\n<!-- /results -->"
        README.write_text(re.sub(r"<!-- results -->.*?<!-- /results -->", block, text, flags=re.S))
        print(f"wrote the table into {README}")
    return 0


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _g(value) -> str:
    return "n/a" if value is None else f"{value:.2g}"


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
