"""Images per second of ``boxstrap prepare`` on real photos, with per-phase timings.

    python benchmarks/prepare_throughput.py [SRC] [--runs 3] [--max-side 640]

Prints the median of ``--runs`` fresh runs (``--resplit``, into a temporary folder), one resumed
run (same config, everything already written), and the phases of one pass measured separately.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from datasets.groups import capture_groups, parse_phash
from datasets.images import IMAGE_SUFFIXES, read_image
from datasets.ingest import prepare
from datasets.prepare_config import PrepareConfig
from datasets.split import split_groups
from groundwork.atomic import write_bytes

DEFAULT_SRC = Path(__file__).resolve().parents[2] / "shared" / "data" / "blocks"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="?", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-side", type=int, default=640)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "prepared"
        fresh = []
        for _ in range(args.runs):
            config = PrepareConfig(src=args.src, out=out, max_side=args.max_side, resplit=True, overwrite=True)
            started = time.perf_counter()
            manifest = prepare(config)
            fresh.append(time.perf_counter() - started)
        n = len(manifest.records)
        started = time.perf_counter()
        prepare(PrepareConfig(src=args.src, out=out, max_side=args.max_side, resplit=True))
        resumed = time.perf_counter() - started
        phases = _phases(sorted(p for p in args.src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES),
                         Path(tmp) / "phases", args.max_side)

    median = statistics.median(fresh)
    print(f"prepare on {n} photos from {args.src} (max_side {args.max_side}, {args.runs} fresh runs)")
    print(f"{'run':<44}{'seconds':>10}{'images/s':>12}")
    print(f"{'fresh (median)':<44}{median:>10.2f}{n / median:>12.1f}")
    print(f"{'fresh (min .. max)':<44}{min(fresh):>5.2f}..{max(fresh):<4.2f}")
    print(f"{'resumed (all images already written)':<44}{resumed:>10.2f}{n / resumed:>12.1f}")
    print(f"\n{'phase (one pass, measured separately)':<44}{'seconds':>10}{'share':>12}")
    total = sum(phases.values())
    for name, seconds in phases.items():
        print(f"{name:<44}{seconds:>10.2f}{seconds / total:>11.0%}")


def _phases(paths: list[Path], out: Path, max_side: int) -> dict[str, float]:
    timings = dict.fromkeys(("read file + sha256", "decode+rotate+RGB+resize+pHash+JPEG",
                             "write (atomic, fsync)", "capture groups", "split"), 0.0)
    prepared = []
    for k, path in enumerate(paths):
        t0 = time.perf_counter()
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        t1 = time.perf_counter()
        image = read_image(data, max_side=max_side)
        t2 = time.perf_counter()
        write_bytes(out / f"{k}.jpg", image.jpeg)
        t3 = time.perf_counter()
        timings["read file + sha256"] += t1 - t0
        timings["decode+rotate+RGB+resize+pHash+JPEG"] += t2 - t1
        timings["write (atomic, fsync)"] += t3 - t2
        prepared.append((path, image))
    names = sorted({p.parent.name for p, _ in prepared})
    labels = np.array([names.index(p.parent.name) for p, _ in prepared])
    t0 = time.perf_counter()
    groups = capture_groups([i.sha256 for _, i in prepared], parse_phash([i.phash for _, i in prepared]), labels,
                            stems=[p.stem for p, _ in prepared])
    t1 = time.perf_counter()
    split_groups(groups.group, labels)
    t2 = time.perf_counter()
    timings["capture groups"] = t1 - t0
    timings["split"] = t2 - t1
    return timings


if __name__ == "__main__":
    main()
