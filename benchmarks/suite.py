"""The suite: the whole pipeline on every real photo set, with 0, 10 and 20 hand boxes, one table.

boxstrap's users bring their own objects: small or large, on plain tables or in clutter, one or
several per photo. A default is good only if it holds on every set here (``../shared/data``
beside the project; never committed):

- ``blocks``: two kinds of small block on plain floors and tables (721 phone photos); the 88
  hand-checked boxes of ``valid_boxes.json`` are the truth.
- ``animals``: raccoons and kangaroos, large, in cluttered scenes, several per photo in 31 of 180
  (web photos); ``all_boxes.json`` boxes every object of every photo.

Per set, ``boxstrap pipeline`` runs once with labels only (budget 0), then again on the same run
folder with n hand boxes (``--budgets``): the truth of n photos, drawn capture group by capture
group in a seeded order, written as a boxes file and given as the pipeline's ground truth. Only
localize and the box model (and their export and check) rerun per budget; prepare, training and
the classifier pass are shared (the localize stage keeps its pass). Every row is scored on the
truth photos of the capture groups that gave no hand box, so nothing is scored on what a
localizer or box model learned from (photos prepare could not read are left out of every column).

Columns: the classifier's test accuracy (the split run's, on the group-aware test split) beside a
linear probe (logistic regression on the globally pooled descriptors the class-map head reads,
trained on the same train split, its L2 chosen on the valid split); pseudo boxes
(``RUN/localize``, one per photo), the same refined by the box model (groups split, other boxes
averaged with the box model's; ``RUN/boxes/pseudo_boxes.json``) and the box model (``boxstrap detect`` with ``RUN/boxes/model``) as CorLoc
(the top box against its best-matching true box), mean IoU of that box, and COCO mAP@0.5 over all
true boxes; the same for two baselines that know nothing: a centred box of 80% of each side, and
the whole photo; stage times as multiples of one plain VGG16 forward pass over the set's photos.

Resumable: each finished (set, budget) is kept in ``OUT/SET/results.json`` and skipped on a rerun
(``--force`` reruns). ``--readme`` writes the table into README.md between ``<!-- suite -->``
markers: the README's suite table is this output.

Usage::

    python benchmarks/suite.py [--data DIR] [--sets blocks animals] [--budgets 0 10 20] [--out DIR]
                               [--seed 0] [--force] [--readme]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from _common import DATA, forward_pass, write_readme_block

#: name -> (folder under --data, the file of true boxes in it)
SETS = {"blocks": ("blocks", "valid_boxes.json"), "animals": ("animals", "all_boxes.json")}
CENTRE = 0.8  # the centre-box baseline: a centred box of this fraction of each side


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the photo sets (default %(default)s)")
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=list(SETS), help="sets to run")
    parser.add_argument("--budgets", type=int, nargs="+", default=[0, 10, 20], help="hand boxes per row")
    parser.add_argument("--out", type=Path, default=Path("/tmp/boxstrap-bench/suite"), help="work folder")
    parser.add_argument("--seed", type=int, default=0, help="which capture groups give the hand boxes")
    parser.add_argument("--force", action="store_true", help="rerun finished rows")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows = []
    for name in args.sets:
        folder, truth = SETS[name]
        src = args.data / folder
        if not (src / truth).is_file():
            raise SystemExit(f"set {name}: no {truth} in {src}")
        rows += run_set(name, src, src / truth, args.out / name, sorted(set(args.budgets)), seed=args.seed,
                        force=args.force)
    table = format_table(rows)
    print(table)
    if args.readme:
        write_readme_block("suite", table)
    return 0


def run_set(name: str, src: Path, truth: Path, work: Path, budgets: list[int], *, seed: int, force: bool) -> list[dict]:
    """Run (or resume) one set's budgets; return its rows."""
    from boxstrap.pipeline import PipelineConfig, run_pipeline
    from groundwork.atomic import write_json

    work.mkdir(parents=True, exist_ok=True)
    done_path = work / "results.json"
    done = json.loads(done_path.read_text()) if done_path.is_file() else {}
    if force:
        done = {}
    run = work / "run"
    for n in budgets:
        if str(n) in done:
            continue
        hand = None if n == 0 else write_hand_boxes(run, truth, work / f"hand_{n}.json", n, seed)
        start = time.perf_counter()
        run_pipeline(src, run, PipelineConfig(ground_truth=None if hand is None else str(hand)),
                     on_stage=lambda stage, what, seconds, n=n: print(
                         f"== {name}, {n} hand boxes: {stage} {what}" + ("" if seconds is None else f" ({seconds:.0f} s)"),
                         flush=True))
        row = score_run(name, run, src, truth, hand, work / f"detect_{n}")
        row["wall_seconds"] = round(time.perf_counter() - start, 1)
        done[str(n)] = row
        write_json(done_path, done)
        print(json.dumps(row), flush=True)
    if "vgg16_forward" not in done:
        from datasets.manifest import load_manifest

        seconds, count = forward_pass(load_manifest(run / "prepare"), PipelineConfig().train.input_size)
        done["vgg16_forward"] = {"seconds": seconds, "photos": count}
        write_json(done_path, done)
    if "probe" not in done:
        done["probe"] = linear_probe(run)
        write_json(done_path, done)
    unit = done["vgg16_forward"]["seconds"]
    return [dict(done[str(n)], set=name, budget=n, probe=done["probe"], unit=unit) for n in budgets]


# --- hand boxes ---------------------------------------------------------------------------------
def truth_pool(run: Path, truth: Path):
    """The true annotations of photos the run prepared, with each one's capture group."""
    from classifier.trained_model import load_trained_model
    from datasets.annotations import ImageAnnotation, read_annotations
    from datasets.evaluate import match_photos
    from datasets.photo_items import find_photos

    labels = load_trained_model(run / "train" / "model").labels
    root, items = find_photos(run / "prepare", labels)
    gt = [g for g in read_annotations(truth, labels=labels) if len(g.boxes)]
    match = match_photos([ImageAnnotation(it.name, 1, 1) for it in items], gt, pred_root=root, gt_root=truth.parent)
    pool = [(g, items[i]) for g, i in zip(gt, match, strict=True) if i is not None]
    return labels, root, pool


def _draw(pool, n: int, seed: int) -> tuple[set, set]:
    """Names of ``n`` photos taken capture group by capture group in a seeded order, and the groups used."""
    groups = [item.group if item.group is not None else -1 - k for k, (_, item) in enumerate(pool)]
    order = list(dict.fromkeys(groups[k] for k in np.random.default_rng(seed).permutation(len(pool))))
    chosen, used = [], set()
    for g in order:
        if len(chosen) >= n:
            break
        members = [k for k in range(len(pool)) if groups[k] == g]
        chosen += members[:n - len(chosen)]
        used.add(g)
    return {pool[k][0].image for k in chosen}, used


def write_hand_boxes(run: Path, truth: Path, path: Path, n: int, seed: int) -> Path:
    """The truth of ``n`` drawn photos (every box of each) as a boxes file at ``path`` (absolute photo
    paths); its record of which groups gave them is ``path`` with ``.groups.json``."""
    import dataclasses

    from datasets.annotations import write_annotations
    from groundwork.atomic import write_json

    labels, _, pool = truth_pool(run, truth)
    names, used = _draw(pool, n, seed)
    drawn = [dataclasses.replace(g, image=os.path.abspath(truth.parent / g.image)) for g, _ in pool if g.image in names]
    write_annotations(drawn, path, "boxes-json", labels=labels)
    write_json(path.with_suffix(".groups.json"), sorted(int(u) for u in used))
    return path


def last_hand_boxes(work: Path) -> Path | None:
    """The hand boxes of a set's last (largest) budget in its suite folder ``work``, whose run holds
    that budget's models; None when the folder holds none (a run with labels only)."""
    hands = [p for p in work.glob("hand_*.json") if not p.name.endswith(".groups.json")]
    return max(hands, key=lambda p: int(p.stem.split("_")[1])) if hands else None


def hand_groups(hand: Path | None) -> set:
    """The capture groups that gave the hand boxes at ``hand`` (none without hand boxes)."""
    return set(json.loads(hand.with_suffix(".groups.json").read_text())) if hand is not None else set()


def outside_groups(pool, used) -> list:
    """The true annotations of ``pool`` (:func:`truth_pool`) outside the capture groups ``used``:
    what a row is scored on (a photo without a group is its own)."""
    return [g for k, (g, item) in enumerate(pool) if (item.group if item.group is not None else -1 - k) not in used]


# --- scores ---------------------------------------------------------------------------------------
def score_run(name: str, run: Path, src: Path, truth: Path, hand: Path | None, detect_dir: Path) -> dict:
    """One row: the run's pseudo boxes, its box model and the baselines on the photos not drawn."""
    from datasets.annotations import Box, ImageAnnotation, read_annotations
    from datasets.evaluate import evaluate_annotations
    from detector.detect_photos import DETECTIONS, DetectConfig, detect_photos
    from detector.train_box_model import PHOTO_CONFIDENCE

    labels, root, pool = truth_pool(run, truth)
    gt = outside_groups(pool, hand_groups(hand))
    detect_photos(run / "boxes" / "model", run / "prepare", detect_dir,
                  DetectConfig(formats=("boxes-json",), overlays=False), overwrite=True, progress=False)
    confidence = run / "boxes" / "model" / PHOTO_CONFIDENCE
    if confidence.is_file():  # what the review order reads (review_loop.py)
        shutil.copyfile(confidence, detect_dir / PHOTO_CONFIDENCE)

    def evaluate(predictions) -> dict:
        s = evaluate_annotations(predictions, gt, pred_root=root, gt_root=truth.parent, labels=labels).to_dict()
        return {k: s[k] for k in ("corloc", "mean_iou", "map50", "recall50", "extra_per_photo")}

    def baseline(fraction: float) -> list:
        m = (1 - fraction) / 2
        return [ImageAnnotation(g.image, g.width, g.height, (Box(g.label, m * g.width, m * g.height, (1 - m) * g.width,
                                                                 (1 - m) * g.height, score=1.0),)) for g in gt]

    stages = {s: json.loads((run / s / "stage.json").read_text()) for s in
              ("prepare", "train", "export", "verify", "localize", "boxes", "boxes-export", "boxes-verify")}
    metrics = json.loads((run / "train" / "model" / "metrics.json").read_text())
    return {
        "photos_scored": len(gt), "hand_boxes": 0 if hand is None else len(json.loads(hand.read_text())),
        "test_accuracy": metrics["test"]["accuracy"], "test_photos": metrics["test"]["count"],
        "pseudo": evaluate(read_annotations(run / "localize" / "pseudo_boxes.json", labels=labels)),
        "split": evaluate(read_annotations(run / "boxes" / "pseudo_boxes.json", labels=labels)),
        "box_model": evaluate(read_annotations(detect_dir / DETECTIONS, labels=labels)),
        "centre": evaluate(baseline(CENTRE)), "whole": evaluate(baseline(1.0)),
        "threshold": (stages["localize"]["numbers"].get("scores") or {}).get("threshold"),
        "seconds": {s: v["seconds"] for s, v in stages.items()},
    }


def linear_probe(run: Path) -> dict:
    """Logistic regression on the globally pooled descriptors the class-map head reads (the
    classifier's backbone, frozen), fitted on the train split, L2 chosen on valid, scored on test."""
    import keras

    from classifier.trained_model import load_trained_model
    from datasets.manifest import load_manifest
    from datasets.tf_input import load_split

    trained = load_trained_model(run / "train" / "model")
    manifest = load_manifest(run / "prepare")
    net = keras.Model(trained.model.input, trained.model.get_layer(trained.map_layer).output)
    data = {}
    for split in ("train", "valid", "test"):
        images, labels, _ = load_split(manifest, split, trained.preprocessing)
        pooled = [np.asarray(net.predict_on_batch(trained.preprocessing.apply(images[i:i + 16]))).mean(axis=(1, 2))
                  for i in range(0, len(images), 16)]
        data[split] = (np.concatenate(pooled).astype(np.float64), np.asarray(labels))
    best = None
    for l2 in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
        predict = _fit_softmax(*data["train"], l2, trained.num_classes)
        valid = float(np.mean(predict(data["valid"][0]) == data["valid"][1]))
        if best is None or valid >= best[0]:  # ties: the stronger penalty
            best = (valid, l2, predict)
    valid, l2, predict = best
    test = float(np.mean(predict(data["test"][0]) == data["test"][1]))
    return {"layer": trained.map_layer, "l2": l2, "valid_accuracy": valid, "test_accuracy": test}


def _fit_softmax(x: np.ndarray, y: np.ndarray, l2: float, classes: int):
    from scipy.optimize import minimize

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    onehot = np.eye(classes)[y]
    n, d = z.shape

    def loss(wb):
        w, b = wb[:d * classes].reshape(d, classes), wb[d * classes:]
        logits = z @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / n
        value = -np.mean(np.sum(onehot * np.log(p + 1e-12), axis=1)) + 0.5 * l2 * np.sum(w * w)
        return value, np.concatenate([(z.T @ g + l2 * w).ravel(), g.sum(axis=0)])

    wb = minimize(loss, np.zeros(d * classes + classes), jac=True, method="L-BFGS-B", options={"maxiter": 1000}).x
    w, b = wb[:d * classes].reshape(d, classes), wb[d * classes:]
    return lambda v: np.argmax(((v - mean) / scale) @ w + b, axis=1)


# --- the table ------------------------------------------------------------------------------------
def format_table(rows: list[dict]) -> str:
    """A Markdown table: a row per set and budget."""
    def boxes(s: dict) -> str:
        nan = float("nan")
        return (f"{s['corloc']:.3f} / {s['mean_iou']:.3f} / {s['map50']:.3f} / {s.get('recall50', nan):.3f} / "
                f"{s.get('extra_per_photo', nan):.2f}")

    lines = ["| set | hand boxes | photos scored | classifier test accuracy (linear probe) | pseudo boxes "
             "| pseudo boxes, refined by the box model | box model | centre box | whole photo "
             "| localize / boxes / whole pipeline (x one VGG16 pass) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sec, unit = r["seconds"], r["unit"]
        whole = sum(sec.values())
        lines.append(
            f"| {r['set']} | {r['budget']} | {r['photos_scored']} | {r['test_accuracy']:.3f} "
            f"({r['probe']['test_accuracy']:.3f}) | {boxes(r['pseudo'])} | "
            f"{boxes(r['split']) if 'split' in r else '-'} | {boxes(r['box_model'])} | "
            f"{boxes(r['centre'])} | {boxes(r['whole'])} | {sec['localize'] / unit:.2f} / {sec['boxes'] / unit:.2f} / "
            f"{whole / unit:.2f} |")
    lines.append("")
    lines.append("Boxes: CorLoc / mean IoU of the top box / COCO mAP@0.5 over all true boxes / recall over all true "
                 "boxes at IoU 0.5 / extra boxes per photo (matching no true box), on the photos of "
                 "capture groups that gave no hand box. Test accuracy: the split run's, on "
                 + ", ".join(sorted({f"{r['set']} {r['test_photos']}" for r in rows})) + " test photos.")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
