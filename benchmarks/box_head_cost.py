"""The box head's cost against its scores, over every set of the suite and several seeds.

The boxes stage is the box head's training: the shipped model and one per fold, each up to
``BoxTrainConfig.max_steps`` batches, every batch dominated by the head's first convolution
(``reduce_filters`` filters of ``kernel`` x ``kernel`` over the descriptors). This benchmark
trains the shipped box model of a finished suite (``benchmarks/suite.py --out SUITE``: each
set's classifier, cached descriptors and pseudo boxes of its last budget, the same hand boxes)
with each variant and seed, runs it on the set's photos as ``boxstrap detect`` does, and scores
it as the suite does: on the true photos of the capture groups that gave no hand box. Where a
set's folder holds no ``hand_*.json`` (a suite's run copied and rerun with labels only, as the
suite runs its first budget), the box model trains on the pseudo boxes alone and is scored on
every true photo. A seed
moves a box model by up to 0.07 CorLoc (``benchmarks/NOTES.md``), so each variant is read as
its mean and range over seeds.

The suite's runs are read, never changed: everything is written under ``--out``.

Usage::

    python benchmarks/box_head_cost.py --suite /tmp/boxstrap-bench/suite [--variants reduce_filters=32
        reduce_filters=16] [--seeds 0 1 2] [--out /tmp/boxstrap-bench/box-head]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from _common import variant_parser
from suite import SETS, hand_groups, last_hand_boxes, outside_groups, truth_pool


def parse_variant(text: str) -> dict:
    """``"reduce_filters=16,kernel=1"`` -> {"reduce_filters": 16, "kernel": 1} (ints, floats or words)."""
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def run_variant(suite: Path, data: Path, out: Path, changes: dict, seeds: list[int]) -> dict:
    """{"SET": [per seed {"corloc", "mean_iou", "map50", "recall50", "seconds"}]} for one variant."""
    from boxstrap.pipeline import PipelineConfig
    from datasets.annotations import read_annotations
    from datasets.evaluate import evaluate_annotations
    from detector.detect_photos import DETECTIONS, DetectConfig, detect_photos
    from detector.train_box_model import train_box_model

    rows: dict[str, list] = {}
    for name, (folder, truth_name) in SETS.items():
        run = suite / name / "run"
        if not (run / "localize" / "pseudo_boxes.json").is_file():
            continue
        # The suite's last budget: run/localize's. A run whose folder holds no hand boxes (a copy of a
        # suite's run rerun with labels only) trains without them and is scored on every true photo.
        hand = last_hand_boxes(suite / name)
        truth = data / folder / truth_name
        labels, root, pool = truth_pool(run, truth)
        gt = outside_groups(pool, hand_groups(hand))
        # The pseudo boxes and their descriptors, without the k-fold record: the shipped model alone.
        boxes = out / name / "boxes"
        boxes.mkdir(parents=True, exist_ok=True)
        for file in ("pseudo_boxes.json", "features.json", "features.npy"):
            shutil.copy(run / "localize" / file, boxes / file)
        for seed in seeds:
            config = dataclasses.replace(PipelineConfig().boxes, seed=seed, **changes)
            model = out / name / f"model_{seed}"
            start = time.perf_counter()
            train_box_model(run / "train" / "model", boxes / "pseudo_boxes.json", run / "prepare", model, config,
                            hand_boxes=hand, overwrite=True, verbose=0)
            seconds = time.perf_counter() - start
            detect = out / name / f"detect_{seed}"
            detect_photos(model, run / "prepare", detect, DetectConfig(formats=("boxes-json",), overlays=False),
                          overwrite=True, progress=False)
            found = read_annotations(detect / DETECTIONS, labels=labels)
            s = evaluate_annotations(found, gt, pred_root=root, gt_root=truth.parent, labels=labels).to_dict()
            row = {k: s[k] for k in ("corloc", "mean_iou", "map50", "recall50")} | {"seconds": seconds}
            several = [g for g in gt if len(g.boxes) >= 2]  # photos of several objects, where the set has them
            if several:
                row["recall_several"] = evaluate_annotations(found, several, pred_root=root, gt_root=truth.parent,
                                                             labels=labels).to_dict()["recall50"]
            rows.setdefault(name, []).append(row)
            print(name, changes, seed, row, flush=True)
    return rows


def main() -> int:
    parser = variant_parser(__doc__, variants=["reduce_filters=32", "reduce_filters=16"],
                            variants_help="BoxTrainConfig changes, FIELD=VALUE[,FIELD=VALUE]",
                            out="/tmp/boxstrap-bench/box-head")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    table = {v: run_variant(args.suite, args.data, args.out / v.replace("=", "-").replace(",", "_"),
                            parse_variant(v), args.seeds) for v in args.variants}
    sets = list(dict.fromkeys(s for rows in table.values() for s in rows))
    print("| box head | " + " | ".join(f"{s}: CorLoc mean (range) / mAP@0.5 / recall / recall on photos of several "
                                       "/ training s" for s in sets) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for variant, rows in table.items():
        cells = []
        for s in sets:
            r = rows.get(s, [])
            if not r:
                cells.append("-")
                continue
            c = np.array([x["corloc"] for x in r])
            several = [x["recall_several"] for x in r if "recall_several" in x]
            cells.append(f"{c.mean():.3f} ({c.min():.3f}-{c.max():.3f}) / {np.mean([x['map50'] for x in r]):.3f} / "
                         f"{np.mean([x['recall50'] for x in r]):.3f} / "
                         f"{f'{np.mean(several):.3f}' if several else '-'} / {np.median([x['seconds'] for x in r]):.0f}")
        print(f"| {variant} | " + " | ".join(cells) + " |")
    print(f"seeds {args.seeds}; means over the seeds; recall over every true box at IoU 0.5, and over those of the "
          "photos holding two or more; training seconds: the median over seeds of train_box_model (the shipped "
          "model alone)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
