"""``relocalize``: rerun the localize stage of a finished suite with other settings, scored as the suite scores.

A localize default is chosen over every set of the suite (``benchmarks/suite.py --out SUITE``).
:func:`relocalize` reruns each set's localize stage for every budget of hand boxes the suite ran
(the set's trained classifier, the same hand boxes), with a given :class:`LocalizeConfig`, and
scores the pseudo boxes as the suite does: on the true photos of the capture groups that gave no
hand box. The classifier pass is read back from the suite's run when the config asks for the
same views, and is run (once per set, timed apart) when it asks for others.

The suite's runs are read, never changed: everything is written under ``out``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from suite import SETS, hand_groups, outside_groups, truth_pool


def relocalize(suite: Path, data: Path, out: Path, config, *, label: str = "", reuse_pass: bool = True) -> dict:
    """{"SET BUDGET": scores} of the pseudo boxes made with ``config`` (a ``LocalizeConfig``).

    Each row holds CorLoc, mean IoU, mAP@0.5, recall over every true box (``"recall"``), the cut
    the cell localizer chose (``"cut"``), the stage's seconds after the classifier pass
    (``"seconds"``) and the classifier pass's seconds over the set (``"pass_seconds"``: 0 when it
    was read back from the suite's run; ``reuse_pass=False`` runs it in any case).
    """
    from classifier.forward_photos import forward_photos
    from classifier.trained_model import load_trained_model
    from datasets.annotations import read_annotations
    from datasets.evaluate import evaluate_annotations
    from datasets.photo_items import find_photos
    from localize.learned import forget_learned
    from localize.localize_photos import FORWARD_CACHE, localize_photos

    rows = {}
    for name, (folder, truth_name) in SETS.items():
        work = suite / name
        run = work / "run"
        if not (run / "localize" / f"{FORWARD_CACHE}.npz").is_file():
            continue
        truth = data / folder / truth_name
        model = out / name / "model"
        if not model.exists():
            shutil.copytree(run / "train" / "model", model)
        labels, root, pool = truth_pool(run, truth)
        views = out / name / "views"
        views.mkdir(parents=True, exist_ok=True)
        suite_config = _suite_localize_config(run)
        pass_seconds = 0.0
        same_views = (tuple(suite_config.get("scales", ())), suite_config.get("flip")) == (tuple(config.scales),
                                                                                          config.flip)
        if reuse_pass and same_views:
            for suffix in (".npz", ".json"):
                shutil.copy(run / "localize" / f"{FORWARD_CACHE}{suffix}", views / f"{FORWARD_CACHE}{suffix}")
        elif not (views / f"{FORWARD_CACHE}.npz").is_file():
            trained = load_trained_model(model)
            _, items = find_photos(run / "prepare", trained.labels)
            start = time.perf_counter()
            forward_photos(trained, items, scales=config.scales, flip=config.flip, batch_size=config.batch_size,
                           keep_images=False, progress=False, cache=views / FORWARD_CACHE)
            pass_seconds = time.perf_counter() - start
        for budget in (0, 10, 20):
            hand = None if budget == 0 else work / f"hand_{budget}.json"
            if hand is not None and not hand.is_file():
                continue
            gt = outside_groups(pool, hand_groups(hand))
            loc = out / name / f"localize_{budget}"
            loc.mkdir(parents=True, exist_ok=True)
            for suffix in (".npz", ".json"):
                shutil.copy(views / f"{FORWARD_CACHE}{suffix}", loc / f"{FORWARD_CACHE}{suffix}")
            forget_learned(model)
            start = time.perf_counter()
            result = localize_photos(model, run / "prepare", loc, config, ground_truth=None if hand is None else str(hand),
                                     overwrite=True, progress=False)
            seconds = time.perf_counter() - start
            scores = evaluate_annotations(read_annotations(loc / "pseudo_boxes.json", labels=labels), gt,
                                          pred_root=root, gt_root=truth.parent, labels=labels).to_dict()
            cut = ((result.scores or {}).get("threshold") or {}).get("cut", "-")
            rows[f"{name} {budget}"] = {"corloc": scores["corloc"], "mean_iou": scores["mean_iou"],
                                        "map50": scores["map50"], "recall": scores["recall50"], "cut": cut,
                                        "seconds": seconds, "pass_seconds": pass_seconds}
            print(name, budget, label, rows[f"{name} {budget}"], flush=True)
    return rows


def print_variants(table: dict, header: str) -> list[str]:
    """Print a Markdown table of :func:`relocalize` rows, a row per variant (``table``: variant ->
    rows) and a column per set and budget; return the columns' keys."""
    keys = list(dict.fromkeys(k for rows in table.values() for k in rows))
    print(f"| {header} | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for variant, rows in table.items():
        cells = [f"{r['corloc']:.3f} / {r['mean_iou']:.3f} / {r['map50']:.3f}, {r['seconds']:.0f} s" if r else "-"
                 for r in (rows.get(k) for k in keys)]
        print(f"| {variant} | " + " | ".join(cells) + " |")
    return keys


def _suite_localize_config(run: Path) -> dict:
    import json

    path = run / "localize" / "localize_config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
