"""Photos per second of ``boxstrap localize``: here, and on a local Ray with 1 and 2 workers.

    python benchmarks/ray_throughput.py RUN [--photos 240] [--readme]

RUN is a finished pipeline run (``benchmarks/pipeline.py`` or ``boxstrap pipeline``): its
classifier (``RUN/train/model``, with the cell localizer it learned) boxes ``--photos`` of its
prepared photos, spread over the classes, copied into a folder per class. Each configuration is
its own ``boxstrap localize`` process (nothing else heavy should run beside it):

- here, TensorFlow on every core (the default), and on one thread;
- ``--ray`` (a local Ray started by the command) with 1 worker x 1 CPU, 2 workers x 1 CPU and
  1 worker x 2 CPUs.

For each: the classifier pass with the boxes (the part ``--ray`` spreads: with a localizer saved
beside the model every photo is boxed where its maps are made; its time includes starting Ray and
the workers loading the model), the rest (files, contact sheets: on the driver), the whole command, and
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
from _common import write_readme_block

CONFIGS = (  # name, extra arguments, extra environment
    ("here, all cores", [], {}),
    ("here, 1 thread", [], {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}),
    ("Ray, 1 worker x 1 CPU", ["--ray", "--ray-workers", "1", "--ray-cpus-per-worker", "1"], {}),
    ("Ray, 2 workers x 1 CPU", ["--ray", "--ray-workers", "2", "--ray-cpus-per-worker", "1"], {}),
    ("Ray, 1 worker x 2 CPUs", ["--ray", "--ray-workers", "1", "--ray-cpus-per-worker", "2"], {}),
)
PASS = re.compile(r"classifier pass(?: and boxes)?: (\d+) photos in ([\d.]+) s")
AFTER = re.compile(r"after the classifier pass: ([\d.]+) s")
TARGET = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished pipeline run folder")
    parser.add_argument("--photos", type=int, default=240, help="photos to box per configuration")
    parser.add_argument("--few", type=int, default=24, help="photos of the second, small run per configuration")
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = shutil.copytree(args.run / "train" / "model", tmp / "model")
        photos = _photo_folder(args.run / "prepare", tmp / "photos", args.photos)
        few = _photo_folder(args.run / "prepare", tmp / "few", args.few)
        rows, boxes = [], {}
        for name, extra, env in CONFIGS:
            row, boxes[name] = _run(name, extra, env, model, photos, tmp / f"out-{len(rows)}")
            small, _ = _run(name, extra, env, model, few, tmp / f"few-{len(rows)}")
            # Two sizes: seconds per photo once running, and the fixed start (Ray, workers, model).
            row["per_photo"] = (row["pass"] - small["pass"]) / (row["photos"] - small["photos"])
            row["start"] = small["pass"] - small["photos"] * row["per_photo"]
            rows.append(row)
    reference = boxes[CONFIGS[0][0]]
    table = _table(rows, {name: _same(reference, b) for name, b in boxes.items()})
    arithmetic = _arithmetic(rows)
    print(table + "\n\n" + arithmetic)
    if args.readme:
        write_readme_block("ray-throughput", table + "\n\n" + arithmetic)


def _run(name: str, extra: list[str], env: dict[str, str], model: Path, photos: Path, out: Path):
    command = [sys.executable, "-m", "boxstrap.cli", "localize", str(model), str(photos), "--out", str(out),
               "--no-overlays", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    whole = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{name}: boxstrap localize failed:\n{done.stderr[-3000:]}")
    (n, passed), after = PASS.search(done.stderr).groups(), float(AFTER.search(done.stderr).group(1))
    print(f"{name}, {n} photos: pass {float(passed):.0f} s, after {after:.0f} s, whole {whole:.0f} s", file=sys.stderr)
    return ({"name": name, "photos": int(n), "pass": float(passed), "after": after, "whole": whole},
            json.loads((out / "pseudo_boxes.json").read_text()))


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
    lines = ["| configuration | photos | pass + boxes s | start s | ms per photo, running | photos/s, running | "
             "rest (driver) s | whole s | boxes equal the local run's |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['photos']} | {r['pass']:.0f} | {r['start']:.0f} | {r['per_photo'] * 1000:.0f} | "
                     f"{1 / r['per_photo']:.2f} | {r['after']:.0f} | {r['whole']:.0f} | {same[r['name']]} |")
    return "\n".join(lines)


def _arithmetic(rows: list[dict]) -> str:
    by = {r["name"]: r for r in rows}
    here, one_thread, ray_one, ray_two = (by[c[0]] for c in CONFIGS[:4])
    overhead = ray_one["per_photo"] - one_thread["per_photo"]
    rate = 1 / ray_two["per_photo"]  # per machine of 2 cores, once running
    driver = here["after"] / here["photos"]
    lines = [f"Ray overhead: {overhead * 1000:.0f} ms per photo once running (1 worker x 1 CPU against one thread "
             f"here), and {ray_one['start'] - one_thread['start']:.0f} s more to start (Ray, its worker, the model).",
             f"50,000 photos on N machines of 2 cores (2 workers each, {rate:.2f} photos/s per machine once "
             f"running; start {ray_two['start']:.0f} s) and a driver writing the files at {driver * 1000:.0f} ms "
             "per photo:", "",
             "| machines (2 cores each) | pass + boxes | driver (files) | total |", "|---|---|---|---|"]
    for machines in (1, 4, 16, 64):
        passed = TARGET / (machines * rate) + ray_two["start"]
        lines.append(f"| {machines} | {passed / 3600:.1f} h | {TARGET * driver / 3600:.1f} h | "
                     f"{(passed + TARGET * driver) / 3600:.1f} h |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
