"""The review loop as a user lives it: correct the first k photos of the review order, rerun, score.

On each set of a finished suite (``benchmarks/suite.py --out DIR``: its trained classifier and
prepared photos are reused), a reviewer is played: starting from the pseudo boxes made with labels
only, the first k photos of an order are "corrected" with their true boxes (what `boxstrap review`
saves as hand boxes) and localize runs again with them (k = 10, 20, 50, cumulative). Four
orders: the review order `boxstrap review` shows once the boxes stage has run
(:func:`datasets.review.review_order` of :func:`datasets.review.joint_confidence`: a photo of
every capture group before a second of any, the groups the classifier and the box model doubt
most first, by the mean of the ranks of the classifier's probability of the photo's class and of
the box model's confidence in its best box); the classifier's order by capture group (the review
order before the box model joined it, and still the order before the boxes stage has run); the
box model's order (lowest confidence in the photo's best box first); and random ones
(``--seeds``, five by default: one random draw of 10 photos is luck, so the orders are compared
with the random orders' mean, and the table gives their range). The box model's confidences are
those of the suite's labels-only box model: its confidence in each photo's best box (0 where it
keeps no box), what the boxes stage of a labels-only run writes beside its model
(``detector.train_box_model.PHOTO_CONFIDENCE``) and the suite keeps in ``detect_0``.
Only photos that have true boxes can be corrected, so every order runs over those (on
the blocks: the 88 hand-checked valid photos). Every round is scored on the true photos outside
the capture groups of the corrected ones: pseudo boxes CorLoc, COCO mAP@0.5 and recall over all
boxes.
Also printed: CorLoc over every photo with true boxes, the corrected ones counted right (the
boxes the user has after the round), and the share of the wrong boxes (IoU < 0.5 with labels
only) that the first 20% of each order holds. Only the pseudo boxes are rerun (localize reads back
its classifier pass), not the box model.

Usage::

    python benchmarks/review_loop.py --suite /tmp/boxstrap-bench/suite [--sets blocks animals]
                                     [--ks 10 20 50] [--seeds 0 1 2 3 4] [--out DIR] [--readme]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from _common import DATA, write_readme_block
from suite import SETS, outside_groups, truth_pool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, required=True, help="a finished suite's --out folder")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the photo sets (default %(default)s)")
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=list(SETS))
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 20, 50], help="photos corrected per round")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds of the random orders")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default SUITE/review_loop)")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    out = args.out or args.suite / "review_loop"
    rows = []
    for name in args.sets:
        folder, truth_file = SETS[name]
        rows += review_loop(name, args.suite / name / "run", args.data / folder / truth_file, out / name,
                            ks=sorted(args.ks), seeds=args.seeds)
    table = format_table(rows)
    print(table)
    if args.readme:
        write_readme_block("review-loop", table)
    return 0


def review_loop(name: str, run: Path, truth: Path, work: Path, *, ks, seeds) -> list[dict]:
    """The rows of one set: per order (each random seed its own) and number of photos corrected."""
    from datasets.annotations import write_annotations
    from localize.learned import forget_learned
    from localize.localize_photos import localize_photos
    from localize.pseudo_boxes import LocalizeConfig

    labels, root, pool = truth_pool(run, truth)
    model = work / "model"
    if not model.exists():
        shutil.copytree(run / "train" / "model", model)
    forget_learned(model)  # what the suite's last run learned from its hand boxes
    config = LocalizeConfig(overlays=False, formats=("boxes-json",))
    boxes_dir = work / "localize"
    first = localize_photos(model, run / "prepare", boxes_dir, config, overwrite=True, progress=False)
    review = json.loads((boxes_dir / "review.json").read_text())
    rank = {entry["image"]: k for k, entry in enumerate(review)}
    names = [item.name for _, item in pool]
    # The labels-only box model's confidence in each photo's best box (0: it keeps none), as the
    # boxes stage wrote it for the review order (the suite keeps it beside detect_0's detections).
    from detector.train_box_model import PHOTO_CONFIDENCE, read_photo_confidence

    confidence = run.parent / "detect_0" / PHOTO_CONFIDENCE
    if not confidence.is_file():
        raise SystemExit(f"{confidence} is missing: run the suite with the 0 budget (labels only) first.")
    best = read_photo_confidence(confidence)
    # The review order `boxstrap review` shows, over every photo of the run as there (the groups'
    # doubt summed over all their photos), then the photos with true boxes in that order.
    from datasets.photo_items import find_photos
    from datasets.review import joint_confidence, review_order

    group_of = {item.name: item.group for item in find_photos(run / "prepare", labels)[1]}
    everyone = [entry["image"] for entry in review]
    joint = joint_confidence([entry["confidence"] for entry in review], [best.get(n, 0.0) for n in everyone])
    joint_rank = {everyone[i]: k for k, i in enumerate(review_order(joint, [group_of.get(n) for n in everyone]))}
    orders = {("review order", None): sorted(range(len(pool)), key=lambda k: joint_rank.get(names[k], len(joint_rank))),
              ("classifier order by group", None): sorted(range(len(pool)),
                                                          key=lambda k: rank.get(names[k], len(rank))),
              ("box model order", None): sorted(range(len(pool)), key=lambda k: best.get(names[k], 0.0))}
    for seed in seeds:
        orders["random order", seed] = list(np.random.default_rng(seed).permutation(len(pool)))
    # Wrong with labels only: the boxes a review should find first.
    wrong = set(np.flatnonzero(_top_box_ious(first.annotations, pool, range(len(pool))) < 0.5))
    rows = []
    for (order_name, seed), order in orders.items():
        head = order[:max(1, round(0.2 * len(order)))]
        found = len(wrong & set(head)) / max(1, len(wrong))
        rows.append(_row(name, order_name, 0, found, _score(first.annotations, pool, set(), root, truth, labels),
                         _every_photo(first.annotations, pool, []), seed))
        for k in ks:
            if k >= len(pool):
                continue
            chosen = order[:k]
            hand = work / f"{order_name.replace(' ', '_')}{'' if seed is None else f'_{seed}'}_{k}.json"
            write_annotations([dataclasses.replace(pool[i][0], image=os.path.abspath(truth.parent / pool[i][0].image))
                               for i in chosen], hand, "boxes-json", labels=labels)
            result = localize_photos(model, run / "prepare", boxes_dir, config, ground_truth=hand, overwrite=True,
                                     progress=False)
            groups = {pool[i][1].group if pool[i][1].group is not None else -1 - i for i in chosen}
            rows.append(_row(name, order_name, k, found, _score(result.annotations, pool, groups, root, truth, labels),
                             _every_photo(result.annotations, pool, chosen), seed))
            print(rows[-1], flush=True)
    return rows


def _score(annotations, pool, used_groups, root, truth, labels) -> dict:
    from datasets.evaluate import evaluate_annotations

    gt = outside_groups(pool, used_groups)
    s = evaluate_annotations(annotations, gt, pred_root=root, gt_root=truth.parent, labels=labels).to_dict()
    return {"photos": len(gt), "corloc": s["corloc"], "map50": s["map50"], "recall50": s["recall50"]}


def _every_photo(annotations, pool, chosen) -> float:
    """CorLoc over every photo with true boxes, the corrected ones counted right: the user's boxes
    after the round (the rerun's boxes elsewhere, burst shots of a corrected photo included)."""
    rest = sorted(set(range(len(pool))) - set(chosen))
    return (len(pool) - len(rest) + int(np.sum(_top_box_ious(annotations, pool, rest) >= 0.5))) / len(pool)


def _top_box_ious(annotations, pool, rows) -> np.ndarray:
    """IoU of each pool row's top predicted box with its true boxes (0 where it has no prediction)."""
    from groundwork.box_scores import top_box_iou

    by_name = {a.image: a for a in annotations}
    names = [pool[k][1].name for k in rows]
    return top_box_iou([by_name[n].xyxy() if n in by_name else np.zeros((0, 4)) for n in names],
                       [pool[k][0].xyxy() for k in rows])


def _row(name, order, k, found, scores, every, seed=None) -> dict:
    return {"set": name, "order": order, "seed": seed, "corrected": k, "wrong_in_first_20": found, **scores,
            "every_photo": every}


def format_table(rows: list[dict]) -> str:
    """One line per set, order and round; the random orders' rows (one per seed) as their mean, with
    the range of every photo's CorLoc.

    >>> rows = [{"set": "s", "order": "random order", "seed": s, "corrected": 10, "wrong_in_first_20": f,
    ...          "photos": p, "corloc": c, "map50": c, "recall50": c, "every_photo": c}
    ...         for s, f, p, c in ((0, 0.2, 70, 0.8), (1, 0.4, 72, 0.9))]
    >>> format_table(rows).splitlines()[2]
    '| s | random order (mean of 2) | 10 | 71 | 0.850 / 0.850 / 0.850 | 0.850 (0.800-0.900) | 0.30 |'
    """
    lines = ["| set | order | photos corrected | photos scored | pseudo boxes CorLoc / mAP@0.5 / recall "
             "| every photo's CorLoc | wrong boxes in the first 20% of the order |", "|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["set"], r["order"], r["corrected"]), []).append(r)
    for (name, order, k), members in groups.items():
        def mean(key, members=members):
            return float(np.mean([m[key] for m in members]))

        every = [m["every_photo"] for m in members]
        label = order if len(members) == 1 else f"{order} (mean of {len(members)})"
        spread = "" if len(members) == 1 else f" ({min(every):.3f}-{max(every):.3f})"
        lines.append(f"| {name} | {label} | {k} | {round(mean('photos'))} | {mean('corloc'):.3f} / {mean('map50'):.3f} / "
                     f"{mean('recall50'):.3f} | {mean('every_photo'):.3f}{spread} | {mean('wrong_in_first_20'):.2f} |")
    lines.append("")
    lines.append("Each round corrects the first k photos of the order with their true boxes (cumulative) and "
                 "reruns localize; scored on the true photos outside the corrected photos' capture groups. "
                 "Every photo's CorLoc: over all the photos with true boxes, the corrected ones counted right "
                 "(the boxes the user has after the round). The random orders: the mean over their seeds, and "
                 "the range of every photo's CorLoc.")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
