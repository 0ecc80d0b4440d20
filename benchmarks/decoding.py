"""How a finished suite's box models decode: suppression thresholds and a suppression of nested boxes.

The ``"centres"`` box head gives every cell of the feature grid a box and a confidence; the
exported detector keeps the cells Core ML's non-maximum suppression keeps
(``detector.box_decode``: a confidence threshold, then IoU). On a photo of one object the head
often leaves a second box on the same object, mostly inside the first and overlapping it by less
than the IoU threshold. This benchmark reads each set's shipped box model of a finished suite
(``benchmarks/suite.py --out SUITE``: the run's last budget), runs it once over the set's
photos, and decodes the cells' outputs with each variant:

- ``confidence=C`` and ``iou=I``: the suppression's thresholds;
- ``inside=S``: before the suppression, a cell's box is dropped when at least the share ``S`` of
  its area lies inside the box of a cell with a higher confidence (that reaches ``C``). Every
  cell is judged against every other at once, so the rule needs no sequential loop and could
  run inside an exported network, in front of Core ML's suppression;
- ``mirror=1``: each cell's confidence and box averaged with those the model gives the mirrored
  photo (its cells mirrored back), a test-time augmentation that would double the detector's work;
- ``agreement=0``: each box scored by its confidence alone (what Vision returns), not by the
  confidence times the cells' agreement on the box (what ``detect`` writes). The boxes are the
  same; their order, and so CorLoc's top box and mAP, can differ.

With ``--models`` it decodes box models trained apart instead, one per seed
(``benchmarks/box_head_cost.py --out MODELS``: the shipped box model of the suite's last budget,
retrained), and each number is the mean over them: a seed moves a box model by more than most
decodings do. With ``--average`` as well, the models are one ensemble instead: each photo's cell
outputs are averaged over them (:func:`average_outputs`) and decoded once.

Each variant is scored as the suite scores a row (the true photos of the capture groups that
gave no hand box), over all of them, over the photos of one object and over those of several:
CorLoc / mAP@0.5 / recall over every true box at IoU 0.5 / extra boxes per photo, and the
AUROC of the boxes' scores for a right box (IoU >= 0.5 with a true box) over all of them.

Usage::

    python benchmarks/decoding.py --suite /tmp/boxstrap-bench/suite [--variants confidence=0.3,iou=0.45
        confidence=0.3,iou=0.45,inside=0.5] [--models /tmp/boxstrap-bench/box-head/reduce_filters-32 [--average]]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from _common import DATA
from box_head_cost import parse_variant
from suite import SETS, hand_groups, last_hand_boxes, outside_groups, truth_pool

DEFAULT_VARIANTS = (["confidence=0.3,iou=0.45", "confidence=0.3,iou=0.45,agreement=0"]
                    + [f"confidence=0.3,iou=0.45,inside={s}" for s in (0.5, 0.6, 0.7, 0.8)]
                    + [f"confidence={c},iou={i},inside=0.6" for c, i in ((0.25, 0.45), (0.3, 0.55))]
                    + [f"confidence={c},iou={i},mirror=1" for c, i in ((0.3, 0.45), (0.25, 0.45), (0.3, 0.55))]
                    + ["confidence=0.3,iou=0.45,inside=0.7,mirror=1"])


def nested(coordinates: np.ndarray, best: np.ndarray, share: float, confidence: float) -> np.ndarray:
    """Which cells' boxes lie at least ``share`` of their area inside a box of higher confidence.

    ``coordinates`` (N, 4) ``cx, cy, w, h``; ``best`` (N,) each cell's highest class confidence.
    Only cells reaching ``confidence`` suppress others.

    >>> boxes = np.array([[0.5, 0.5, 0.4, 0.4], [0.45, 0.5, 0.2, 0.2], [0.9, 0.9, 0.1, 0.1]])
    >>> nested(boxes, np.array([0.9, 0.8, 0.7]), 0.5, 0.3).tolist()
    [False, True, False]
    """
    from groundwork.box_geometry import box_ioa, cxcywh_to_xyxy

    xy = cxcywh_to_xyxy(coordinates, dtype=np.float32).astype(np.float64)
    inside = box_ioa(xy, xy)
    higher = (best[None, :] > best[:, None]) & (best[None, :] >= confidence)
    return ((inside >= share) & higher).any(axis=1)


def unmirror(confidence: np.ndarray, coordinates: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The cell outputs of a mirrored photo, mirrored back: cells of a row in reverse order, ``cx`` -> ``1 - cx``.

    >>> c, b = unmirror(np.array([[0.1], [0.9]]), np.array([[0.25, 0.5, 0.1, 0.1], [0.75, 0.5, 0.2, 0.2]]), (1, 2))
    >>> c.ravel().tolist(), b[:, 0].tolist()
    ([0.9, 0.1], [0.25, 0.75])
    """
    rows, columns = grid
    confidence = confidence.reshape(rows, columns, -1)[:, ::-1].reshape(rows * columns, -1)
    coordinates = coordinates.reshape(rows, columns, 4)[:, ::-1].reshape(rows * columns, 4).copy()
    coordinates[:, 0] = 1 - coordinates[:, 0]
    return confidence, coordinates


def decode(confidence: np.ndarray, coordinates: np.ndarray, variant: dict, mirrored=None, grid=None
           ) -> tuple[np.ndarray, np.ndarray]:
    """One photo's kept boxes (``cx, cy, w, h``) and their scores under ``variant``, best first;
    ``mirrored`` is the cell outputs ``(confidence, coordinates)`` of the mirrored photo on a
    ``grid`` of cells. The scores are ``detect``'s (the confidence times the cells' agreement,
    :func:`detector.box_decode.detector_boxes`), or with ``agreement=0`` the confidence alone,
    Vision's, in the suppression's order."""
    from detector.box_decode import detector_boxes, non_max_suppression

    if variant.get("mirror"):
        back = unmirror(*mirrored, grid)
        confidence, coordinates = (confidence + back[0]) / 2, (coordinates + back[1]) / 2
    threshold = float(variant.get("confidence", 0.3))
    if "inside" in variant:
        dropped = nested(coordinates, confidence.max(axis=1), float(variant["inside"]), threshold)
        confidence = confidence * ~dropped[:, None]
    thresholds = {"iou_threshold": float(variant.get("iou", 0.45)), "confidence_threshold": threshold}
    if float(variant.get("agreement", 1)):
        kept, scores, _ = detector_boxes(confidence, coordinates, **thresholds)
        return kept, scores
    kept_confidence, kept = non_max_suppression(confidence, coordinates, **thresholds)
    return kept, (kept_confidence.max(axis=1) if len(kept) else np.zeros(0))


def cell_outputs(run: Path, labels, models: list[Path]) -> tuple[Path, list, list, tuple[int, int]]:
    """The set's photos (``find_photos`` root and items); per photo (probabilities, confidence,
    coordinates, shape, the mirrored photo's (confidence, coordinates)), averaged over ``models``
    (:func:`average_outputs`; one model: its own); the grid of cells. Each photo is read once."""
    from datasets.photo_items import find_photos
    from datasets.tf_input import read_rgb
    from detector.box_model_dir import load_box_model

    box_models = [load_box_model(model) for model in models]
    pre = box_models[0].preprocessing
    if any(b.preprocessing != pre for b in box_models):
        raise SystemExit(f"{', '.join(map(str, models))}: the models read photos differently; no average")
    root, items = find_photos(run / "prepare", labels)
    outputs, grid = [], None
    for item in items:
        image = read_rgb(item.path)
        x = pre.apply(pre.resize(image))[None]
        x = np.concatenate([x, x[:, :, ::-1]])
        per_model = []
        for model, box_model in zip(models, box_models, strict=True):
            out = box_model.model.predict_on_batch(x)
            if len(out) != 3:
                raise SystemExit(f"{model}: a one-box model; nothing to decode")
            probabilities, confidence, coordinates = (np.asarray(v) for v in out)
            per_model.append((probabilities[0], confidence[0], coordinates[0], image.shape[:2],
                              (confidence[1], coordinates[1])))
        if grid is None:  # the cells' grid: the input's size over the backbone's stride
            cells = per_model[0][1].shape[0]
            grid = next((-(-x.shape[1] // s), -(-x.shape[2] // s)) for s in (8, 16, 32, 64)
                        if -(-x.shape[1] // s) * -(-x.shape[2] // s) == cells)
        outputs.append(average_outputs(per_model))
    return root, items, outputs, grid


def average_outputs(per_model: list[tuple]) -> tuple:
    """One photo's :func:`cell_outputs` from several box models as one ensemble's: the
    probabilities, confidences and boxes (the mirrored photo's too) averaged cell by cell.

    >>> a = (np.array([1.0, 0.0]), np.array([[0.2]]), np.array([[0.5, 0.5, 0.2, 0.2]]), (4, 6),
    ...      (np.array([[0.4]]), np.array([[0.5, 0.5, 0.2, 0.2]])))
    >>> b = (np.array([0.0, 1.0]), np.array([[0.6]]), np.array([[0.7, 0.5, 0.6, 0.2]]), (4, 6),
    ...      (np.array([[0.0]]), np.array([[0.3, 0.5, 0.2, 0.2]])))
    >>> probabilities, confidence, coordinates, shape, (mirrored, _) = average_outputs([a, b])
    >>> probabilities.tolist(), confidence.tolist(), coordinates.tolist(), shape, mirrored.tolist()
    ([0.5, 0.5], [[0.4]], [[0.6, 0.5, 0.4, 0.2]], (4, 6), [[0.2]])
    """
    if len(per_model) == 1:
        return per_model[0]
    mean = [np.mean([p[k] for p in per_model], axis=0) for k in range(3)]
    mirrored = tuple(np.mean([p[4][k] for p in per_model], axis=0) for k in range(2))
    return (*mean, per_model[0][3], mirrored)


def score_set(name: str, suite: Path, data: Path, variants: list[dict], models: list[Path] | None = None
              ) -> list[dict]:
    """One row per variant: ``models`` (default: the suite run's shipped box model; several: their
    average, :func:`average_outputs`) decoded with it."""
    from datasets.evaluate import evaluate_annotations
    from datasets.photo_items import photo_annotation
    from groundwork.box_geometry import cxcywh_to_xyxy

    folder, truth_name = SETS[name]
    truth = data / folder / truth_name
    work = suite / name
    run = work / "run"
    labels, _, pool = truth_pool(run, truth)
    hand = last_hand_boxes(work)  # the run holds the box model of the suite's last budget
    gt = outside_groups(pool, hand_groups(hand))
    parts = {"all": gt, "one": [g for g in gt if len(g.boxes) == 1], "several": [g for g in gt if len(g.boxes) > 1]}
    models = models or [run / "boxes" / "model"]
    root, items, outputs, grid = cell_outputs(run, labels, models)
    rows = []
    for variant in variants:
        annotations = []
        for item, (probabilities, confidence, coordinates, (height, width), mirrored) in zip(items, outputs,
                                                                                              strict=True):
            kept, scores = decode(confidence, coordinates, variant, mirrored, grid)
            xyxy = cxcywh_to_xyxy(kept.reshape(-1, 4), dtype=np.float32).astype(np.float64)
            xyxy = np.clip(xyxy, 0, 1) * [width, height, width, height]
            annotations.append(photo_annotation(item, (height, width), xyxy, scores,
                                                labels[int(np.argmax(probabilities))]))
        row = {"set": name, "hand_boxes": 0 if hand is None else len(json.loads(hand.read_text())), "variant": variant,
               "models": [str(m) for m in models]}
        for part, truths in parts.items():
            if truths:
                s = evaluate_annotations(annotations, truths, pred_root=root, gt_root=truth.parent,
                                         labels=labels).to_dict()
                row[part] = ({k: s[k] for k in ("corloc", "map50", "recall50", "extra_per_photo", "score_auroc",
                                                 "n_wrong_boxes")} | {"photos": len(truths)})
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """A row per set and variant, each number the mean over the box models scored (one per seed)."""
    def cell(scores: list[dict]) -> str:
        if not scores:
            return "-"
        mean = {k: np.mean([s[k] for s in scores]) for k in ("corloc", "map50", "recall50", "extra_per_photo")}
        return (f"{mean['corloc']:.3f} / {mean['map50']:.3f} / {mean['recall50']:.3f} / {mean['extra_per_photo']:.2f} "
                f"({scores[0]['photos']})")

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["set"], r["hand_boxes"], json.dumps(r["variant"])), []).append(r)
    lines = ["| set (hand boxes; box models) | decoding | all photos | photos of one object | photos of several "
             "| score AUROC, all photos (wrong boxes) |", "|---|---|---|---|---|---|"]
    for (name, hand_boxes, variant), members in groups.items():
        variant = ", ".join(f"{k} {v}" for k, v in json.loads(variant).items())
        parts = [cell([m[p] for m in members if p in m]) for p in ("all", "one", "several")]
        every = [m["all"] for m in members if "all" in m]
        parts.append(f"{np.nanmean([s['score_auroc'] for s in every]):.3f} "
                     f"({np.mean([s['n_wrong_boxes'] for s in every]):.0f})" if every else "-")
        averaged = len(members[0]["models"])
        count = f"the average of {averaged}" if averaged > 1 else len(members)
        lines.append(f"| {name} ({hand_boxes}; {count}) | {variant} | " + " | ".join(parts) + " |")
    return "\n".join(lines + ["", "CorLoc / mAP@0.5 / recall over every true box at IoU 0.5 / extra boxes per photo "
                                  "(photos); the AUROC of the boxes' scores for IoU >= 0.5 with a true box (the "
                                  "wrong boxes it ranks); each the mean over the box models."])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", type=Path, default=Path("/tmp/boxstrap-bench/suite"), help="a finished suite")
    parser.add_argument("--data", type=Path, default=DATA, help="the real photo sets")
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=list(SETS), help="sets to score")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS,
                        help="decodings, e.g. confidence=0.3,iou=0.45,inside=0.6")
    parser.add_argument("--models", type=Path, default=None,
                        help="box models at MODELS/SET/model_* (benchmarks/box_head_cost.py --out, one per seed) "
                             "instead of each suite run's shipped one")
    parser.add_argument("--average", action="store_true",
                        help="with --models: decode the models' averaged cell outputs, one ensemble per set")
    args = parser.parse_args()
    if args.average and args.models is None:
        parser.error("--average needs --models")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    variants = [parse_variant(v) for v in args.variants]
    rows = []
    for name in args.sets:
        if args.models is None:
            groups = [None]  # the suite run's shipped box model
        else:
            found = sorted((args.models / name).glob("model_*"))
            # Each model alone, or with --average one ensemble of the set's models (when it has any).
            groups = ([found] if found else []) if args.average else [[m] for m in found]
        for models in groups:
            rows += score_set(name, args.suite, args.data, variants, models)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
