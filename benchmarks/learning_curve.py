"""What ten minutes of drawing buys: pseudo-box and box-model CorLoc and mean IoU with 0, 10, 20,
44 and all hand boxes, on a finished ``boxstrap pipeline`` run.

The run gives the classifier, the prepared photos and the hand-checked boxes it was scored on
(its ``ground_truth``). Every row is scored only on hand-boxed photos whose capture group gave no
box to what is scored:

- 0: no hand box: the photos boxed as the pipeline boxes them with labels only
  (``LocalizeConfig.without_boxes``); the box model trained on those pseudo boxes; all
  hand-boxed photos scored.
- n (10, 20, 44): n hand boxes taken capture group by capture group (seeded); the cell localizer
  fitted on them boxes every photo; the box model trained on those pseudo boxes and the n hand
  boxes (one round); scored on the hand-boxed photos of the other groups.
- all: the pipeline's own scores (k-fold over capture groups, self-training judged on them).

Prints a table, writes ``RUN/learning_curve.json`` and ``RUN/learning_curve.png`` (the run's
summary shows the plot) and with ``--readme`` puts the table into README.md between its
``<!-- learning-curve -->`` markers.

Usage::

    python benchmarks/learning_curve.py RUN [--counts 0 10 20 44] [--seed 0] [--readme]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from _common import write_readme_block


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished `boxstrap pipeline` run folder (scored on hand boxes)")
    parser.add_argument("--counts", type=int, nargs="+", default=[0, 10, 20, 44], help="hand boxes per row")
    parser.add_argument("--seed", type=int, default=0, help="which groups give the hand boxes")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    rows = learning_curve(args.run, args.counts, seed=args.seed)
    table = format_table(rows)
    print(table)
    from groundwork.atomic import write_json

    write_json(args.run / "learning_curve.json", rows)
    plot(rows, args.run / "learning_curve.png")
    _rewrite_summary(args.run)
    if args.readme:
        write_readme_block("learning-curve", table)
    return 0


def learning_curve(run: Path, counts, *, seed: int = 0) -> list[dict]:
    from classifier.forward_photos import forward_photos
    from classifier.trained_model import load_trained_model
    from datasets.annotations import ImageAnnotation, read_annotations
    from datasets.evaluate import match_photos
    from datasets.photo_items import find_photos
    from detector.box_train_config import BoxTrainConfig
    from localize.pseudo_boxes import LocalizeConfig

    raw = json.loads((run / "pipeline_config.json").read_text())
    localize_config, boxes_config = _stage(LocalizeConfig, raw["localize"]), _stage(BoxTrainConfig, raw["boxes"])
    ground_truth = _ground_truth(run)
    trained = load_trained_model(run / "train" / "model")
    root, items = find_photos(run / "prepare", trained.labels)
    start = time.perf_counter()
    passed = forward_photos(trained, items, scales=localize_config.scales, flip=localize_config.flip,
                            batch_size=localize_config.batch_size, progress=False, source=run / "prepare")
    items, images = passed.items, passed.images
    probabilities, class_maps, features, map_features = (passed.probabilities, passed.class_maps, passed.features,
                                                          passed.map_features)
    print(f"classifier pass over {len(items)} photos: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    gt = read_annotations(ground_truth, labels=trained.labels)
    match = match_photos([ImageAnnotation(it.name, 1, 1) for it in items], gt, pred_root=root,
                         gt_root=ground_truth.parent)
    pairs = [(i, g) for g, i in zip(gt, match, strict=True) if i is not None and len(g.boxes)]
    context = dict(trained=trained, items=items, images=images, probabilities=probabilities, class_maps=class_maps,
                   features=np.asarray(features), map_features=map_features, pairs=pairs, root=root,
                   ground_truth=ground_truth, gt=gt,
                   localize=dataclasses.replace(localize_config, overlays=False), boxes=boxes_config)
    rows = [_row(context, n, seed) for n in counts]
    rows.append(_pipeline_row(run, len(pairs)))
    return rows


def _row(ctx: dict, n: int, seed: int) -> dict:
    from datasets.photo_items import photo_annotation
    from detector.train_box_model import box_annotation, largest_box, train_on_targets
    from localize.cell_localizer import fit_cell_localizer
    from localize.pseudo_boxes import box_classes, class_heatmaps, known_classes, pseudo_boxes

    start = time.perf_counter()
    items, images, pairs, labels = ctx["items"], ctx["images"], ctx["pairs"], ctx["trained"].labels
    known = known_classes([it.label for it in items], labels)
    chosen, scored = _draw(pairs, items, n, seed)
    localizer = None
    if chosen:
        rows = [pairs[k][0] for k in chosen]
        boxes = np.stack([largest_box(pairs[k][1]) / ([pairs[k][1].width, pairs[k][1].height] * 2) for k in chosen])
        classes = box_classes(ctx["probabilities"][rows], [known[i] for i in rows],
                              num_classes=ctx["class_maps"].shape[-1])
        localizer = fit_cell_localizer(np.asarray(ctx["map_features"][rows]),
                                       class_heatmaps(ctx["class_maps"][rows], classes), boxes,
                                       groups=[_group(items[i], i) for i in rows], folds=ctx["localize"].folds,
                                       model_sha256=ctx["trained"].model_sha256)
    pseudo = pseudo_boxes(images, ctx["probabilities"], ctx["class_maps"], ctx["features"], known=known,
                          input_size=ctx["trained"].preprocessing.input_size, config=ctx["localize"],
                          localizer=localizer, map_features=ctx["map_features"])
    annotations = [photo_annotation(item, image.shape, pseudo.boxes[i], pseudo.scores[i], labels[pseudo.classes[i]])
                   for i, (item, image) in enumerate(zip(items, images, strict=True))]
    pseudo_scores = _score(ctx, [annotations[pairs[k][0]] for k in scored], [pairs[k][1] for k in scored])
    # The box model: pseudo boxes for every photo with a box, the drawn hand boxes in their place.
    has_box = [i for i, a in enumerate(annotations) if len(a.boxes)]
    targets = [_normalised(largest_box(annotations[i]), annotations[i])[None].astype(np.float32) for i in has_box]
    position = {i: r for r, i in enumerate(has_box)}
    hand = {}
    for k in chosen:
        i, g = pairs[k]
        if i in position:
            hand[position[i]] = _normalised(largest_box(g), g)[None].astype(np.float32)
            targets[position[i]] = hand[position[i]]
    config = dataclasses.replace(ctx["boxes"], rounds=1)
    _, predicted, _ = train_on_targets(ctx["trained"], ctx["features"][has_box], targets, hand, config)
    box_annotations = [box_annotation(annotations[pairs[k][0]], *predicted[position[pairs[k][0]]][:2])
                       if pairs[k][0] in position else annotations[pairs[k][0]] for k in scored]
    box_scores = _score(ctx, box_annotations, [pairs[k][1] for k in scored])
    row = {"hand_boxes": len(chosen), "scored_photos": len(scored),
           "pseudo_corloc": pseudo_scores["corloc"], "pseudo_mean_iou": pseudo_scores["mean_iou"],
           "box_corloc": box_scores["corloc"], "box_mean_iou": box_scores["mean_iou"],
           "threshold": None if localizer is None else localizer.threshold,
           "seconds": round(time.perf_counter() - start, 1)}
    print(row, file=sys.stderr, flush=True)
    return row


def _stage(cls, raw: dict):
    """A stage config from the run's ``pipeline_config.json`` (settings it lacks take today's defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names})


def _normalised(box: np.ndarray, annotation) -> np.ndarray:
    """A pixel box of ``annotation``'s image as normalised ``(cx, cy, w, h)``, computed in float64 (the
    README's rows were made so; the box head's training is sensitive to the last float32 bit)."""
    from groundwork.box_geometry import xyxy_to_cxcywh

    return xyxy_to_cxcywh(np.clip(box / ([annotation.width, annotation.height] * 2), 0, 1)[None])[0]


def _draw(pairs, items, n: int, seed: int) -> tuple[list[int], list[int]]:
    """``n`` hand-boxed pairs taken group by group (groups in a seeded order), and the pairs left
    to score: those of groups that gave none."""
    groups = [_group(items[i], i) for i, _ in pairs]
    order = list(dict.fromkeys(groups[k] for k in np.random.default_rng(seed).permutation(len(pairs))))
    chosen, used = [], set()
    for g in order:
        if len(chosen) >= n:
            break
        members = [k for k in range(len(pairs)) if groups[k] == g]
        chosen += members[:n - len(chosen)]
        used.add(g)
    return chosen, [k for k in range(len(pairs)) if groups[k] not in used]


def _group(item, i: int) -> int:
    return item.group if item.group is not None else -1 - i


def _score(ctx: dict, predictions, truths) -> dict:
    from datasets.evaluate import evaluate_annotations

    return evaluate_annotations(predictions, truths, pred_root=ctx["root"], gt_root=ctx["ground_truth"].parent,
                                labels=ctx["trained"].labels).to_dict()


def _pipeline_row(run: Path, n_pairs: int) -> dict:
    localize = json.loads((run / "localize" / "scores.json").read_text())
    boxes = json.loads((run / "boxes" / "predictions" / "scores.json").read_text())
    return {"hand_boxes": f"all ({n_pairs}, k-fold)", "scored_photos": localize["n_scored"],
            "pseudo_corloc": localize["corloc"], "pseudo_mean_iou": localize["mean_iou"],
            "box_corloc": boxes["corloc"], "box_mean_iou": boxes["mean_iou"],
            "threshold": (localize.get("localizer") or {}).get("threshold"), "seconds": None}


def _ground_truth(run: Path) -> Path:
    from boxstrap.pipeline import GROUND_TRUTH_NAMES

    config = json.loads((run / "pipeline_config.json").read_text())
    setting, src = config.get("ground_truth"), Path(config["prepare"]["src"])
    path = src / next((n for n in GROUND_TRUTH_NAMES if (src / n).is_file()), "") if setting == "auto" else Path(setting)
    if not path.is_file():
        raise SystemExit(f"{run} was not scored on hand boxes (no ground truth found): nothing to draw a curve of.")
    return path


def format_table(rows: list[dict]) -> str:
    lines = ["| hand boxes | photos scored | pseudo boxes CorLoc | mean IoU | box model CorLoc | mean IoU |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['hand_boxes']} | {r['scored_photos']} | {r['pseudo_corloc']:.3f} | "
                     f"{r['pseudo_mean_iou']:.3f} | {r['box_corloc']:.3f} | {r['box_mean_iou']:.3f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from groundwork.atomic import atomic_open

    counts = [r["hand_boxes"] if isinstance(r["hand_boxes"], int) else int(r["hand_boxes"].split("(")[1].split(",")[0])
              for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for key, name, style in (("pseudo_corloc", "pseudo boxes CorLoc", "o-"), ("box_corloc", "box model CorLoc", "s-"),
                             ("pseudo_mean_iou", "pseudo boxes mean IoU", "o--"),
                             ("box_mean_iou", "box model mean IoU", "s--")):
        ax.plot(counts, [r[key] for r in rows], style, label=name)
    ax.set_xlabel("hand boxes drawn (the last point: all, scored k-fold)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("What hand boxes buy (held-out photos only)")
    fig.tight_layout()
    with atomic_open(path) as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)


def _rewrite_summary(run: Path) -> None:
    """Re-render the run's summary so that it shows the learning curve."""
    from boxstrap.pipeline import PipelineConfig, StageResult
    from boxstrap.summary import write_summary

    raw = json.loads((run / "pipeline_config.json").read_text())
    config = PipelineConfig(ground_truth=raw.get("ground_truth"))  # the summary reads only this of it
    results = {}
    for stage_json in sorted(run.glob("*/stage.json")):
        done = json.loads(stage_json.read_text())
        results[stage_json.parent.name] = StageResult(stage_json.parent.name, done["numbers"], done["seconds"])
    from boxstrap.pipeline import STAGES

    write_summary(run, {s: results[s] for s in STAGES if s in results}, config)


if __name__ == "__main__":
    sys.exit(main())
