"""GrabCut's working size and iterations, chosen over every set of the suite.

GrabCut (``localize.refine.grabcut_refine``) shrinks each photo to ``max_side`` pixels on its
longer side and runs ``iterations`` rounds; its time grows with both. This benchmark reruns the
localize stage of finished suite runs (``benchmarks/suite.py --out SUITE``: each set's trained
classifier, the classifier pass read back from its cache, the same hand boxes per budget) with
each variant, and scores the pseudo boxes as the suite does: on the true photos of the capture
groups that gave no hand box. The time is the localize stage's after the classifier pass.

The suite's runs are read, never changed: each variant writes under ``OUT/VARIANT``.

Usage::

    python benchmarks/grabcut_size.py --suite /tmp/boxstrap-bench/suite [--variants 320x5 256x5 256x3 224x5]
                                      [--out /tmp/boxstrap-bench/grabcut]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import shutil
import time
from pathlib import Path

from _common import DATA
from suite import SETS, hand_groups, outside_groups, truth_pool


def run_variant(suite: Path, data: Path, max_side: int, iterations: int, out: Path) -> dict:
    """{(set, budget): scores} of the pseudo boxes with GrabCut at ``max_side`` and ``iterations``."""
    import localize.pseudo_boxes as pseudo_boxes_module
    import localize.refine as refine
    from boxstrap.pipeline import PipelineConfig
    from datasets.annotations import read_annotations
    from datasets.evaluate import evaluate_annotations
    from localize.learned import forget_learned
    from localize.localize_photos import localize_photos

    original = refine.grabcut_refine
    variant = functools.partial(original, max_side=max_side, iterations=iterations)
    # Every caller looks it up at call time: the cut choice in localize.refine, the cut in pseudo_boxes.
    refine.grabcut_refine = pseudo_boxes_module.grabcut_refine = variant
    rows = {}
    try:
        for name, (folder, truth_name) in SETS.items():
            work = suite / name
            if not (work / "run" / "localize" / "forward.npz").is_file():
                continue
            truth = data / folder / truth_name
            run = work / "run"
            model = out / name / "model"
            if not model.exists():
                shutil.copytree(run / "train" / "model", model)
            labels, root, pool = truth_pool(run, truth)
            for budget in (0, 10, 20):
                hand = None if budget == 0 else work / f"hand_{budget}.json"
                if hand is not None and not hand.is_file():
                    continue
                gt = outside_groups(pool, hand_groups(hand))
                loc = out / name / f"localize_{budget}"
                loc.mkdir(parents=True, exist_ok=True)
                for cached in ("forward.npz", "forward.json"):
                    shutil.copy(run / "localize" / cached, loc / cached)
                forget_learned(model)
                start = time.perf_counter()
                config = dataclasses.replace(PipelineConfig().localize, overlays=False)  # boxes only, not pictures
                result = localize_photos(model, run / "prepare", loc, config,
                                         ground_truth=None if hand is None else str(hand), overwrite=True,
                                         progress=False)
                seconds = time.perf_counter() - start
                scores = evaluate_annotations(read_annotations(loc / "pseudo_boxes.json", labels=labels), gt,
                                              pred_root=root, gt_root=truth.parent, labels=labels).to_dict()
                cut = ((result.scores or {}).get("threshold") or {}).get("cut", "-")
                rows[f"{name} {budget}"] = {"corloc": scores["corloc"], "mean_iou": scores["mean_iou"],
                                            "map50": scores["map50"], "cut": cut, "seconds": seconds}
                print(name, budget, f"{max_side}x{iterations}", rows[f"{name} {budget}"], flush=True)
    finally:
        refine.grabcut_refine = pseudo_boxes_module.grabcut_refine = original
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, required=True, help="a finished benchmarks/suite.py --out folder")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the photo sets (default %(default)s)")
    parser.add_argument("--variants", nargs="+", default=["320x5", "256x5", "256x3", "224x5"],
                        help="MAX_SIDExITERATIONS")
    parser.add_argument("--out", type=Path, default=Path("/tmp/boxstrap-bench/grabcut"), help="work folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    table = {}
    for variant in args.variants:
        side, iterations = (int(v) for v in variant.split("x"))
        table[variant] = run_variant(args.suite, args.data, side, iterations, args.out / variant)
    keys = list(dict.fromkeys(k for rows in table.values() for k in rows))
    print("| GrabCut side x iterations | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for variant, rows in table.items():
        cells = [f"{r['corloc']:.3f} / {r['mean_iou']:.3f} / {r['map50']:.3f}, {r['seconds']:.0f} s" if r else "-"
                 for r in (rows.get(k) for k in keys)]
        print(f"| {variant} | " + " | ".join(cells) + " |")
    print("cells: pseudo boxes CorLoc / mean IoU / mAP@0.5, localize seconds after the classifier pass; cut chosen: "
          + ", ".join(f"{k} {table[args.variants[0]][k]['cut']}" for k in keys if k in table[args.variants[0]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
