"""Photos per second of ``boxstrap localize``: here, and on a local Ray with 1 and 2 workers.

    python benchmarks/ray_throughput.py RUN [--photos 240] [--readme]

RUN is a finished pipeline run (``benchmarks/pipeline.py`` or ``boxstrap pipeline``): its
classifier (``RUN/train/model``, with the cell localizer it learned) boxes ``--photos`` of its
prepared photos, spread over the classes, copied into a folder per class. Each configuration is
its own ``boxstrap localize`` process (nothing else heavy should run beside it):

- here, TensorFlow on every core (the default), and on one thread;
- ``--ray`` (a local Ray started by the command) with 1 worker x 1 CPU, 2 workers x 1 CPU and
  1 worker x 2 CPUs.

For each: the classifier pass (the part ``--ray`` spreads; its time includes starting Ray and
the workers loading the model), the rest (boxes, files: on the driver), the whole command, and
whether its boxes equal the local run's (within a pixel). The Ray overhead per photo is
(1 worker x 1 CPU's pass - one thread's pass) / photos. Then the arithmetic for 50,000 photos on
N machines like this one: 50,000 / (N x the 2-worker pass rate) + 50,000 x the driver's seconds
per photo. ``--readme`` writes the tables into the README.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._common import write_readme_block

CONFIGS = (  # name, extra arguments, extra environment
    ("here, all cores", [], {}),
    ("here, 1 thread", [], {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}),
    ("Ray, 1 worker x 1 CPU", ["--ray", "--ray-workers", "1", "--ray-cpus-per-worker", "1"], {}),
    ("Ray, 2 workers x 1 CPU", ["--ray", "--ray-workers", "2", "--ray-cpus-per-worker", "1"], {}),
    ("Ray, 1 worker x 2 CPUs", ["--ray", "--ray-workers", "1", "--ray-cpus-per-worker", "2"], {}),
)
PASS = re.compile(r"classifier pass: (\d+) photos in ([\d.]+) s")
AFTER = re.compile(r"after the classifier pass: ([\d.]+) s")
TARGET = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished pipeline run folder")
    parser.add_argument("--photos", type=int, default=240, help="photos to box per configuration")
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = shutil.copytree(args.run / "train" / "model", tmp / "model")
        photos = _photo_folder(args.run / "prepare", tmp / "photos", args.photos)
        rows, boxes = [], {}
        for name, extra, env in CONFIGS:
            out = tmp / f"out-{len(rows)}"
            command = [sys.executable, "-m", "boxstrap.cli", "localize", str(model), str(photos), "--out", str(out),
                       "--no-overlays", *extra]
            start = time.perf_counter()
            done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
            whole = time.perf_counter() - start
            if done.returncode != 0:
                sys.exit(f"{name}: boxstrap localize failed:\n{done.stderr[-3000:]}")
            (n, passed), after = PASS.search(done.stderr).groups(), float(AFTER.search(done.stderr).group(1))
            boxes[name] = json.loads((out / "pseudo_boxes.json").read_text())
            rows.append({"name": name, "photos": int(n), "pass": float(passed), "after": after, "whole": whole})
            print(f"{name}: pass {float(passed):.0f} s, after {after:.0f} s, whole {whole:.0f} s", file=sys.stderr)
    reference = boxes[CONFIGS[0][0]]
    table = _table(rows, {name: _same(reference, b) for name, b in boxes.items()})
    arithmetic = _arithmetic(rows)
    print(table + "\n\n" + arithmetic)
    if args.readme:
        write_readme_block("ray-throughput", table + "\n\n" + arithmetic)


def _photo_folder(prepared: Path, out: Path, count: int) -> Path:
    """``count`` prepared photos, every k-th of each class, copied into ``out/<class>/``."""
    manifest = json.loads((prepared / "manifest.json").read_text())
    records = manifest["records"]
    step = max(1, len(records) // count)
    for record in records[::step][:count]:
        target = out / record["label"] / Path(record["path"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(prepared / record["path"], target)
    return out


def _same(reference: list[dict], other: list[dict]) -> str:
    """"yes" when both runs boxed the same photos in the same order, each box within a pixel."""
    if [a["file"] for a in reference] != [a["file"] for a in other]:
        return "no (other photos or order)"
    worst = 0.0
    for a, b in zip(reference, other, strict=True):
        pa, pb = (np.asarray(x["boxes"], float).reshape(-1, 4) for x in (a, b))
        if pa.shape != pb.shape or a["label"] != b["label"]:
            return f"no ({a['file']}: other boxes or class)"
        if pa.size:
            worst = max(worst, float(np.abs(pa - pb).max()))
    return "yes" if worst <= 1.0 else f"no (up to {worst:.0f} px)"


def _table(rows: list[dict], same: dict[str, str]) -> str:
    lines = ["| configuration | photos | classifier pass s | pass photos/s | rest (driver) s | whole s | "
             "whole photos/s | boxes equal the local run's |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['photos']} | {r['pass']:.0f} | {r['photos'] / r['pass']:.2f} | "
                     f"{r['after']:.0f} | {r['whole']:.0f} | {r['photos'] / r['whole']:.2f} | {same[r['name']]} |")
    return "\n".join(lines)


def _arithmetic(rows: list[dict]) -> str:
    by = {r["name"]: r for r in rows}
    one_thread, ray_one, ray_two = by[CONFIGS[1][0]], by[CONFIGS[2][0]], by[CONFIGS[3][0]]
    n = ray_one["photos"]
    overhead = (ray_one["pass"] - one_thread["pass"]) / n
    rate = ray_two["photos"] / ray_two["pass"]  # per machine of 2 cores, start-up included
    driver = by[CONFIGS[0][0]]["after"] / by[CONFIGS[0][0]]["photos"]
    lines = [f"Ray overhead: {overhead * 1000:.0f} ms per photo over {n} photos (1 worker x 1 CPU against one "
             f"thread here; it includes starting Ray and loading the model, spread over the photos).",
             f"50,000 photos: pass rate {rate:.2f} photos/s per 2-core machine (2 workers), driver "
             f"{driver * 1000:.0f} ms per photo (boxes and files, serial):", "",
             "| machines (2 cores each) | classifier pass | driver | total |", "|---|---|---|---|"]
    for machines in (1, 4, 16, 64):
        passed = TARGET / (machines * rate)
        lines.append(f"| {machines} | {passed / 3600:.1f} h | {TARGET * driver / 3600:.1f} h | "
                     f"{(passed + TARGET * driver) / 3600:.1f} h |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
