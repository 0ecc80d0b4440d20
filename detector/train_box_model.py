"""``boxstrap train-boxes``: train the box model on pseudo (or corrected) boxes.

:func:`train_box_model` reads boxes in any annotation format (the ``pseudo_boxes.json`` that
``boxstrap localize`` wrote, or the file a person corrected in CVAT, Label Studio, Roboflow or
Create ML), matches them to the images, and trains the box head of
:mod:`detector.box_model` on the classifier's descriptors. The descriptors saved by
``boxstrap localize`` beside the boxes are reused when they belong to the same images and model,
so the box model costs no forward pass of its own; otherwise one pass computes them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from classifier.forward_photos import forward_photos
from classifier.trained_model import TrainedModel, load_trained_model
from datasets.annotations import ImageAnnotation, read_annotations, write_annotations
from datasets.box_folder import HELD_OUT_BOXES, load_features
from datasets.photo_items import find_photos
from detector.box_decode import scored_suppression
from detector.box_model import build_box_model, feature_scale
from detector.box_model_dir import save_box_model
from detector.box_train_config import BoxTrainConfig
from detector.box_views import normalise_boxes, pad_boxes
from detector.paste_photos import paste_photos
from detector.split_groups import fuse_box, model_scores, split_groups
from detector.train_box_head import train_box_head, train_box_heads
from groundwork.atomic import write_json
from groundwork.box_geometry import cxcywh_to_xyxy, matched_box_iou
from groundwork.paths import check_out_folder
from groundwork.photo_map import RayOptions

__all__ = ["HELD_OUT_SPLIT_BOXES", "PHOTO_CONFIDENCE", "SPLIT_BOXES", "box_annotation", "largest_box",
           "read_photo_confidence", "train_box_model", "train_on_target_sets", "train_on_targets"]

log = logging.getLogger(__name__)

VALID_SHARE = 0.15
#: Beside the box model: every photo's pseudo box, split where it held several of the box model's
#: boxes (``BoxTrainConfig.split_inside``) or else averaged with its box of the object
#: (``fuse_iou``), and the same for the hand-boxed photos' held-out pseudo boxes, refined by the box
#: models trained without their fold. With several rounds, the boxes the shipped round learned
#: from (refined by the round before); with one, refined by the shipped model. Each box is scored
#: by the shipped model (a held-out box by its fold's model of the last round):
#: :func:`detector.split_groups.model_scores` of ``detect``'s scores.
SPLIT_BOXES = "split_boxes.json"
HELD_OUT_SPLIT_BOXES = "held_out_split_boxes.json"
#: The shipped box model's confidence in its best box of each photo it learned from (0: no box),
#: ``[{"image", "confidence"}]``: with the classifier's, the review order
#: (:func:`datasets.review.joint_confidence`). Written for the ``"centres"`` head, which scores boxes.
PHOTO_CONFIDENCE = "photo_confidence.json"
#: The fold models train together only while their shared view set is at most this much larger
#: than the largest fold's own (every head steps through every batch). Together was 1.4-1.6x
#: faster at 1.11-1.15 (the animal and block photos with 10-88 hand boxes) and 1.2x slower at 1.53
#: (the demo scenes, every photo hand-boxed): benchmarks/NOTES.md, "The fold models trained together".
TOGETHER_MAX_GROWTH = 1.25


def train_box_model(
    model: TrainedModel | str | os.PathLike,
    boxes: str | os.PathLike,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: BoxTrainConfig = BoxTrainConfig(),
    *,
    hand_boxes: str | os.PathLike | None = None,
    overwrite: bool = False,
    verbose: int = 1,
    ray: RayOptions | None = None,
) -> Path:
    """Train and save a box model directory; return its path.

    Parameters
    ----------
    model : TrainedModel or model directory
        The trained classifier (its backbone and class head are reused, frozen).
    boxes : path
        An annotation file or folder in any supported format; per image its highest-scoring box
        is the target (images without a box are left out).
    source : path
        The images the boxes name (a prepared dataset, a folder per class, or their folder).
    out_dir : path
        The box model directory to write (see :mod:`detector.box_model_dir`).
    config : BoxTrainConfig
    hand_boxes : path, optional
        Hand-checked boxes (any format): they replace the pseudo boxes of their images and count
        ``config.hand_weight`` times. When ``boxes`` is a ``localize`` output that scored its
        pseudo boxes k-fold against the same hand boxes (``folds.json``, ``held_out_boxes.json``
        beside it), the box model is scored the same way: for each fold, a box model trained
        without that fold's hand boxes (its images keep their held-out pseudo boxes) boxes the
        fold's images; ``box_metrics.json`` holds those scores, one per round (``config.rounds``).
    ray : RayOptions, optional
        Compute the descriptors (when ``boxes`` has none saved beside it) on Ray workers.

    Raises
    ------
    ValueError
        If no image of the boxes file is found under ``source``, or no image has a box.
    """
    out_dir = check_out_folder(out_dir)
    if out_dir.exists() and not overwrite:  # refused now, not after the training
        raise FileExistsError(f"{out_dir} already exists; pass overwrite=True (--overwrite) to replace it.")
    trained = model if isinstance(model, TrainedModel) else load_trained_model(model)
    boxes_path = Path(boxes)
    annotations = read_annotations(boxes_path, labels=trained.labels)
    root, items = find_photos(source, trained.labels)
    by_name = {item.name: item for item in items}
    chosen = [(a, by_name[a.image]) for a in annotations if len(a.boxes) and a.image in by_name]
    missing = sum(a.image not in by_name for a in annotations)
    if missing:
        log.warning("%d images of %s are not under %s; left out", missing, boxes_path, source)
    if not chosen:
        raise ValueError(f"No image of {boxes_path} with a box was found under {source}: nothing to train on.")
    names = [item.name for _, item in chosen]
    # Every photo's boxes, best first (its top-scoring box is what the one-box heads learn).
    pseudo = [_ranked_boxes(a) for a, _ in chosen]
    start = time.perf_counter()
    folder = boxes_path if boxes_path.is_dir() else boxes_path.parent
    features = load_features(folder, names, trained.model_sha256)
    if features is None:
        log.info("computing %s descriptors of %d images (one classifier pass)", trained.feature_layer, len(names))
        passed = forward_photos(trained, [item for _, item in chosen], keep_images=False, ray=ray,
                                progress=verbose > 0, source=source)
        if passed.skipped:  # listed by forward_photos; their boxes cannot be learned from
            readable = set(passed.items)
            keep = [i for i, (_, item) in enumerate(chosen) if item in readable]
            chosen, names, pseudo = [chosen[i] for i in keep], [names[i] for i in keep], [pseudo[i] for i in keep]
        features = passed.features
    else:
        log.info("reusing the descriptors saved beside %s", boxes_path)
    features = np.asarray(features)  # float16 as cached: the views are made and batches cast from it
    hand = _hand_targets(hand_boxes, names, root, trained.labels) if hand_boxes is not None else {}
    folds = _folds(folder, names, hand, root, trained.labels) if hand else None
    config = config.for_training(hand_boxes=bool(hand))  # saved beside the model as trained
    targets = list(pseudo)
    for row, boxes in hand.items():
        targets[row] = boxes
    # Composed scenes (config.paste_photos): the same rows for every box model of the training.
    pasted_features, pasted = _pasted(trained, chosen, pseudo, hand, config, out_dir, verbose=verbose)
    train_features = np.concatenate([features, pasted_features.astype(features.dtype)]) if pasted else features
    rounds: list[dict] = []
    trained_sets: list[tuple] = []
    fold_targets = None
    held_annotations = folds[1] if folds is not None else {}
    # Each round after the first learns from the pseudo boxes refined (split and averaged) by the
    # round before; the one-box heads, or a config that neither splits nor averages, learn from the
    # box model's own boxes instead.
    refine = (functools.partial(_split, min_inside=config.split_inside, min_iou=config.fuse_iou)
              if (config.split_inside is not None or config.fuse_iou is not None) and config.head == "centres"
              else None)
    current = [a for a, _ in chosen]  # the shipped model's targets as annotations, this round
    refinements: list[tuple[list, dict]] = []  # per round: every photo's refined boxes, the held-out ones
    if folds is not None:
        fold_of = folds[0]
        held_out_pseudo = {row: _ranked_boxes(a) for row, a in held_annotations.items()}
        fold_targets = {k: _fold_targets(pseudo, hand, fold_of, held_out_pseudo, k) for k in sorted(set(fold_of.values()))}
        fold_current = {k: [held_annotations[i] if i in hand and fold_of[i] == k else a for i, a in enumerate(current)]
                        for k in fold_targets}
    for r in range(config.rounds if hand else 1):  # labels only: one round (BoxTrainConfig.rounds says why)
        # The shipped model, then one per fold (without the fold's hand boxes), which may train together.
        sets = [(targets, hand)]
        if fold_targets is not None:
            sets += [(tk, {row: box for row, box in hand.items() if folds[0][row] != k}) for k, tk in fold_targets.items()]
        # A later round starts from the round before's models (the same set's) for fewer batches.
        warm = r > 0 and config.refine_steps > 0
        trained_sets = train_on_target_sets(
            trained, train_features, [(t + pasted, h) for t, h in sets],
            dataclasses.replace(config, max_steps=config.refine_steps) if warm else config, verbose=verbose,
            start=[model for model, _, _ in trained_sets] if warm else None)
        trained_sets = [(model, rows[:len(names)], fit) for model, rows, fit in trained_sets]  # the photos'
        box_model, predicted, history = trained_sets[0]
        entry: dict = {"round": r + 1, "history": history}
        held: dict = {}
        held_refined: dict = {}
        if fold_targets is not None:
            for (k, _), (_, fold_hand), (_, fold_predicted, _) in zip(fold_targets.items(), sets[1:], trained_sets[1:],
                                                                     strict=True):
                fold_current[k], fold_targets[k] = _next_round(fold_current[k], fold_predicted, fold_hand, refine)
                for row in hand:
                    if fold_of[row] == k:
                        held[row] = fold_predicted[row]
                        held_refined[row] = fold_current[k][row]
            rows = sorted(held)
            ious = matched_box_iou(cxcywh_to_xyxy(np.stack([_first(held[i][0]) for i in rows]), dtype=np.float32),
                                   cxcywh_to_xyxy(np.stack([hand[i][0] for i in rows]), dtype=np.float32))
            entry["held_out"] = {"images": len(rows), "mean_iou": float(ious.mean()),
                                 "corloc": float(np.mean(ious >= 0.5))}
            log.info("box model round %d: held-out hand boxes mean IoU %.3f, CorLoc %.3f", r + 1,
                     entry["held_out"]["mean_iou"], entry["held_out"]["corloc"])
        rounds.append(entry)
        current, targets = _next_round(current, predicted, hand, refine)
        refinements.append((current, held_refined))
    chosen_round = entry  # the last round ships: box_model, predicted, held are its (BoxTrainConfig.rounds says why)
    ious = matched_box_iou(cxcywh_to_xyxy(np.stack([_first(b) for b, *_ in predicted]), dtype=np.float32),
                           cxcywh_to_xyxy(np.stack([_first(b) for b in pseudo]), dtype=np.float32))
    metrics = {
        "images": len(names),
        "hand_boxes": len(hand),
        "boxes_file": str(boxes_path),
        "hand_boxes_file": None if hand_boxes is None else str(hand_boxes),
        "agreement_with_boxes": {"mean_iou": float(ious.mean())},
        "rounds": rounds,
        "chosen_round": chosen_round["round"],
        "history": chosen_round["history"],
        "seconds": round(time.perf_counter() - start, 1),
    }
    if config.paste_photos:
        metrics["pasted"] = {"photos": len(pasted), "boxes": int(sum(len(b) for b in pasted)),
                             "sets": config.paste_photos}
    if held:
        metrics["held_out"] = dict(chosen_round["held_out"], scored=(
            f"{len(set(folds[0].values()))}-fold over capture groups: each hand-boxed photo boxed by a box model "
            "trained without its fold's hand boxes (its own target was its held-out pseudo box)"))
    split = None
    if refine is not None:
        # The refined pseudo boxes the shipped model learned from (round 1's refinement when round 1
        # ships), for every photo of the boxes file (those without a box as they were).
        refined, held_refined = refinements[max(chosen_round["round"] - 2, 0)]
        by_image = {a.image: b for (a, _), b in zip(chosen, refined, strict=True)}
        split = [by_image.get(a.image, a) for a in annotations]
        held_split = [held_refined[row] for row in sorted(held)]
        changed = [(a, b) for a, b in zip(annotations, split, strict=True) if b is not a]
        metrics["split"] = {"photos": sum(len(b.boxes) > len(a.boxes) for a, b in changed),
                            "fused": sum(len(b.boxes) == len(a.boxes) for a, b in changed),
                            "boxes": sum(len(a.boxes) for a in split), "min_inside": config.split_inside,
                            "min_iou": config.fuse_iou}
        log.info("the box model split %d of %d pseudo boxes into several and refined %d (%s)",
                 metrics["split"]["photos"], len(chosen), metrics["split"]["fused"], SPLIT_BOXES)
        # Scored by the shipped model; a held-out box by its fold's model, which never saw its hand box.
        scored = {a.image: _model_scored(b, found) for (a, _), b, found in zip(chosen, refined, predicted, strict=True)}
        split = [scored.get(a.image, a) for a in split]
        held_split = [_model_scored(b, held[row]) for b, row in zip(held_split, sorted(held), strict=True)]
    path = save_box_model(box_model, out_dir, preprocessing=trained.preprocessing, labels=trained.labels,
                          config=config, metrics=metrics, overwrite=overwrite)
    if held:
        _write_held_out(path, held, [chosen[i] for i in sorted(held)], sorted(held), trained.labels)
    if config.head == "centres":
        write_json(path / PHOTO_CONFIDENCE, [
            {"image": item.name, "confidence": float(scores.max()) if len(scores) else 0.0}
            for (_, item), (_, scores, _) in zip(chosen, predicted, strict=True)])
    if split is not None:
        write_annotations(split, path / SPLIT_BOXES, "boxes-json", labels=trained.labels)
        if held:
            write_annotations(held_split, path / HELD_OUT_SPLIT_BOXES, "boxes-json", labels=trained.labels)
    return path


def train_on_targets(trained: TrainedModel, features: np.ndarray, targets: list[np.ndarray],
                     hand: dict[int, np.ndarray], config: BoxTrainConfig, *, verbose: int = 0, start=None):
    """One box model trained on cached descriptors: every row's target, hand-boxed rows repeated
    ``config.hand_weight`` times; for the one-box heads a seeded 15% of the rows (10 or more) is
    the validation set whose best epoch is kept (the ``"centres"`` head trains on every row, for
    its epochs or ``config.max_steps`` batches).

    Parameters
    ----------
    trained : TrainedModel
    features : (N, h, w, D) array
        The feature layer's descriptors at the classifier's input size.
    targets : list of (k_i, 4) arrays
        Per row its boxes, normalised ``(cx, cy, w, h)``, best first: the ``"centres"`` head learns
        them all, the one-box heads the first. Rows without a box are left out.
    hand : dict of row -> (k, 4) array
        Rows whose targets are hand boxes (their ``targets`` row is used; the dict gives the rows).
    config : BoxTrainConfig
        ``crops`` None is chosen by whether ``hand`` is empty (:meth:`BoxTrainConfig.for_training`).
    start : keras.Model, optional
        A box model of the same config whose weights this one starts from (a later self-training
        round's).

    Returns
    -------
    box_model : keras.Model
    predicted : list of (boxes (k, 4), scores (k,), detect_scores (k,)) float32 ndarrays
        The trained head's boxes for every row, best first: for ``"centres"``, the boxes
        non-maximum suppression keeps at its defaults with their scores (the confidence), and
        the same boxes' scores as ``detect`` gives them (times the cells' agreement,
        :func:`detector.box_decode.scored_suppression`); one per row with NaN scores (none) for the
        one-box heads.
    history : dict
    """
    config = config.for_training(hand_boxes=bool(hand))
    several = config.head == "centres"
    boxed = np.array([len(t) > 0 for t in targets])
    rows = np.concatenate([np.arange(len(targets)), np.repeat(sorted(hand), config.hand_weight - 1)]
                          ).astype(np.int64)
    rows = rows[boxed[rows]]
    order = np.random.default_rng(config.seed).permutation(len(targets))
    n_valid = int(round(len(targets) * VALID_SHARE)) if len(targets) >= 10 else 0
    if several:
        # No validation photos: their targets are pseudo boxes, one per photo, so the loss on them
        # rises as the head learns the objects the pseudo boxes missed; keeping its best epoch (and
        # holding 15% of the photos out) cost the animals' box model CorLoc 0.818 -> 0.591
        # (benchmarks/NOTES.md, "Several boxes per photo").
        n_valid = 0
    valid = order[:n_valid]
    valid = valid[boxed[valid]]
    train = rows[~np.isin(rows, valid)]
    box_model, head = build_box_model(trained.model, config, feature_layer=trained.feature_layer,
                                      feature_scale=feature_scale(features[train]))
    if start is not None:
        box_model.set_weights(start.get_weights())

    def y(index):
        return pad_boxes([targets[i] for i in index]) if several else np.stack([targets[i][0] for i in index])

    history = train_box_head(head, features[train], y(train), config,
                             valid=(features[valid], y(valid)) if len(valid) else None, verbose=verbose)
    return box_model, _predict(head, features, several), history


def train_on_target_sets(trained: TrainedModel, features: np.ndarray,
                         sets: list[tuple[list[np.ndarray], dict[int, np.ndarray]]], config: BoxTrainConfig, *,
                         verbose: int = 0, start: list | None = None) -> list[tuple]:
    """:func:`train_on_targets` for several ``(targets, hand)`` sets on the same descriptors: the
    shipped box model (the first set) and one per fold, which only score it.

    The first set's model trains alone, exactly as :func:`train_on_targets` trains it. With the
    ``"centres"`` head and no pasted views, the other sets' models then train at once
    (:func:`detector.train_box_head.train_box_heads`), each on exactly the rows, repeats and
    targets it would have alone, unless their shared view set would be more than
    :data:`TOGETHER_MAX_GROWTH` times the largest set's own (photos whose targets differ between
    the sets count once per target); otherwise one after another.

    ``start`` (one box model per set, or None) gives the weights each set's model starts from.

    Returns
    -------
    list of (box_model, predicted, history)
        One per set, in order, as :func:`train_on_targets` returns them.
    """
    if not sets:
        return []
    start = [None] * len(sets) if start is None else list(start)
    if len(start) != len(sets):
        raise ValueError(f"start must give one model per set ({len(sets)}). Received: {len(start)}")
    config = config.for_training(hand_boxes=bool(sets[0][1]))  # every set as the shipped model's
    first = train_on_targets(trained, features, *sets[0], config, verbose=verbose, start=start[0])
    rest = sets[1:]
    together = config.head == "centres" and not config.paste and len(rest) >= 2
    if together:
        rows, boxes, counts = _shared_rows(rest, config.hand_weight, len(features))
        # Copy j of a (row, boxes) pair counts for set k when the set repeats that pair more than j times.
        copies = counts.max(axis=1)
        largest = int(counts.sum(axis=0).max())
        together = copies.sum() <= TOGETHER_MAX_GROWTH * largest
        if not together:
            log.info("the %d fold models train one after another: together they would step through %d rows "
                     "against at most %d of their own", len(rest), copies.sum(), largest)
    if not together:
        return [first] + [train_on_targets(trained, features, targets, hand, config, verbose=verbose, start=model)
                          for (targets, hand), model in zip(rest, start[1:], strict=True)]
    pick = np.repeat(np.arange(len(rows)), copies)
    copy = np.arange(len(pick)) - np.repeat(np.cumsum(copies) - copies, copies)
    weights = (counts[pick] > copy[:, None]).astype(np.float32)
    models = []
    for k in range(len(rest)):
        own = np.repeat(rows, counts[:, k])  # set k's training rows, repeats included
        models.append(build_box_model(trained.model, config, feature_layer=trained.feature_layer,
                                      feature_scale=feature_scale(features[own])))
        if start[k + 1] is not None:
            models[-1][0].set_weights(start[k + 1].get_weights())
    histories = train_box_heads([head for _, head in models], features[rows[pick]], pad_boxes([boxes[i] for i in pick]),
                                weights, config, verbose=verbose)
    return [first] + [(box_model, _predict(head, features, True), history)
                      for (box_model, head), history in zip(models, histories, strict=True)]


def _shared_rows(sets, hand_weight: int, n: int):
    """The distinct ``(row, boxes)`` pairs of several target sets (rows in order; per row its sets'
    boxes in the sets' order) and how many times each set trains on each: ``hand_weight`` for its
    hand rows, 1 for the others, 0 when its boxes for the row differ or are empty."""
    rows, boxes, counts = [], [], []
    for row in range(n):
        seen: dict[bytes, int] = {}
        for k, (targets, hand) in enumerate(sets):
            b = np.asarray(targets[row], np.float32).reshape(-1, 4)
            if not len(b):
                continue
            key = b.tobytes()
            if key not in seen:
                seen[key] = len(rows)
                rows.append(row)
                boxes.append(b)
                counts.append(np.zeros(len(sets), np.int64))
            counts[seen[key]][k] = hand_weight if row in hand else 1
    return np.asarray(rows, np.int64), boxes, np.asarray(counts, np.int64).reshape(-1, len(sets))


def _predict(head, features: np.ndarray, several: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """A trained head's boxes for every row, best first (see :func:`train_on_targets`)."""
    out = head.predict(features, verbose=0)
    if not several:
        return [(b[None], np.full(1, np.nan, np.float32), np.full(1, np.nan, np.float32))
                for b in np.asarray(out, np.float32)]
    scores, boxes = (np.asarray(v, np.float32) for v in out)
    predicted = []
    for s, b in zip(scores, boxes, strict=True):
        kept_scores, kept_boxes, detect = scored_suppression(s[:, None], b)
        predicted.append((kept_boxes.astype(np.float32), kept_scores[:, 0].astype(np.float32), detect.astype(np.float32)))
    return predicted


def _first(boxes: np.ndarray) -> np.ndarray:
    """A row's first box, or an empty box (IoU 0 with anything) when it has none."""
    return boxes[0] if len(boxes) else np.zeros(4, np.float32)


def _next_round(current: list[ImageAnnotation], predicted: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                hand: dict[int, np.ndarray], refine) -> tuple[list[ImageAnnotation], list[np.ndarray]]:
    """The next round's pseudo boxes and targets from this round's boxes (``predicted``): the pseudo
    boxes ``current`` refined by them (``refine``, :func:`_split`), or without ``refine`` the boxes
    themselves (``current`` unchanged); hand boxes kept."""
    if refine is None:
        targets = [np.clip(b, 0.0, 1.0).astype(np.float32) for b, *_ in predicted]
    else:
        current = refine(current, predicted)
        targets = [_ranked_boxes(a) for a in current]
    for row, boxes in hand.items():
        targets[row] = boxes
    return current, targets


def _fold_targets(pseudo: list[np.ndarray], hand: dict[int, np.ndarray], fold_of: dict[int, int],
                  held_out_pseudo: dict[int, np.ndarray], k: int) -> list[np.ndarray]:
    """Fold ``k``'s targets: its hand-boxed images keep their held-out pseudo boxes, the others'
    hand boxes stand."""
    targets = list(pseudo)
    for row, boxes in hand.items():
        targets[row] = held_out_pseudo[row] if fold_of[row] == k else boxes
    return targets


def _pasted(trained: TrainedModel, chosen: list, pseudo: list[np.ndarray], hand: dict[int, np.ndarray],
            config: BoxTrainConfig, out_dir: Path, *, verbose: int) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """The descriptors and boxes of ``config.paste_photos`` sets of scenes composed from the photos
    without a hand box (:func:`detector.paste_photos.paste_photos`), or ``(None, [])``.

    The scenes are written to a temporary folder beside ``out_dir`` for the classifier pass (on
    this machine: they are not where Ray workers could read them) and removed after it.
    """
    import tempfile
    from types import SimpleNamespace

    from PIL import Image

    from datasets.tf_input import read_rgb

    if not config.paste_photos:
        return None, []
    free = [row for row in range(len(chosen)) if row not in hand]
    labels = [a.label or a.boxes[0].label for a, _ in chosen]
    scenes, boxes = [], []
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.pasted-") as folder:
        for row, image, scene_boxes in paste_photos(lambda r: read_rgb(chosen[r][1].path), pseudo, labels,
                                                    sources=free, backgrounds=free, sets=config.paste_photos,
                                                    seed=config.seed):
            path = Path(folder) / f"{len(scenes):05d}.png"
            Image.fromarray(image).save(path, compress_level=1)  # read back once, at once
            scenes.append(SimpleNamespace(path=path, name=f"{chosen[row][0].image} (scene {len(scenes)})"))
            boxes.append(scene_boxes)
        if not scenes:
            log.warning("no scene could be composed (paste_photos=%d): among the photos without hand boxes, none "
                        "had another photo of its class with one box to cut out, or room beside its own boxes",
                        config.paste_photos)
            return None, []
        log.info("composed %d scenes with %d boxes from the photos without hand boxes", len(scenes),
                 sum(len(b) for b in boxes))
        passed = forward_photos(trained, scenes, keep_images=False, progress=verbose > 0)
    readable = {id(item) for item in passed.items}
    boxes = [b for item, b in zip(scenes, boxes, strict=True) if id(item) in readable]
    return np.asarray(passed.features), boxes


def _hand_targets(path, names: list[str], root: Path, labels) -> dict[int, np.ndarray]:
    """Row -> normalised hand boxes (largest first) for the hand-boxed images among ``names``."""
    from datasets.annotations import ImageAnnotation
    from datasets.evaluate import match_photos

    path = Path(path)
    gt = read_annotations(path, labels=labels)
    match = match_photos([ImageAnnotation(n, 1, 1) for n in names], gt, pred_root=root, gt_root=path.parent)
    hand = {}
    for g, row in zip(gt, match, strict=True):
        if row is not None and len(g.boxes):
            xyxy = g.xyxy()
            order = np.argsort(-((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])), kind="stable")
            hand[row] = normalise_boxes(xyxy[order], [(g.width, g.height)] * len(xyxy))
    log.info("%d of %d images have a hand box (%s): they count %s", len(hand), len(names), path,
             "as hand boxes" if hand else "nothing")
    return hand


def _folds(folder: Path, names: list[str], hand: dict[int, np.ndarray], root: Path, labels):
    """The folds ``localize`` scored the hand boxes with and its held-out pseudo boxes (each a
    dict by row), when they cover every hand-boxed image; else None (the box model is then not
    scored out of fold)."""
    import json

    from datasets.box_folder import FOLDS

    try:
        fold_by_name = json.loads((folder / FOLDS).read_text(encoding="utf-8"))
        held = read_annotations(folder / HELD_OUT_BOXES, labels=labels)
    except (FileNotFoundError, ValueError) as error:
        log.info("no k-fold record beside the boxes (%s): the box model is not scored out of fold", error)
        return None
    held_by_name = {a.image: a for a in held if len(a.boxes)}
    fold_of, held_out = {}, {}
    for row in hand:
        name = names[row]
        if name not in fold_by_name or name not in held_by_name:
            log.warning("%s has a hand box but no held-out pseudo box in %s: the box model is not scored out of "
                        "fold", name, folder)
            return None
        fold_of[row] = int(fold_by_name[name])
        held_out[row] = held_by_name[name]
    return fold_of, held_out


def _split(annotations: list[ImageAnnotation], predicted: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
           min_inside: float | None, min_iou: float | None) -> list[ImageAnnotation]:
    """Each photo's annotation with its one pseudo box replaced by the box model's boxes inside it,
    where there are two or more (:func:`detector.split_groups.split_groups`; ``min_inside`` None:
    never), else by its mean with the box model's box that overlaps it most
    (:func:`detector.split_groups.fuse_box`; ``min_iou`` None: never); photos with no box or
    several keep theirs (the same object)."""
    out = []
    for annotation, (found, scores, _) in zip(annotations, predicted, strict=True):
        if len(annotation.boxes) != 1:
            out.append(annotation)
            continue
        box = _ranked_boxes(annotation)[0]
        parts = None if min_inside is None else split_groups(box, found, scores, min_inside=min_inside)
        if parts is None and min_iou is not None:
            fused = fuse_box(box, found, min_iou=min_iou)
            parts = None if fused is None else (fused, annotation.scores())
        out.append(annotation if parts is None else box_annotation(annotation, *parts))
    return out


def _write_held_out(box_dir: Path, held: dict[int, np.ndarray], chosen, rows, labels) -> None:
    """The box model's held-out boxes of the hand-boxed images (boxes JSON), scored and ordered as
    ``boxstrap detect`` writes its boxes (:func:`detector.box_decode.detector_boxes`: best score
    first), for review and for the run's scores of the box model."""
    annotations = []
    for (annotation, _), row in zip(chosen, rows, strict=True):
        boxes, _, detect = held[row]
        order = np.argsort(-np.nan_to_num(detect, nan=0.0), kind="stable")
        annotations.append(box_annotation(annotation, boxes[order], detect[order]))
    write_annotations(annotations, box_dir / HELD_OUT_BOXES, "boxes-json", labels=labels)


def box_annotation(annotation, boxes_cxcywh: np.ndarray, scores: np.ndarray | None = None):
    """``annotation`` (its image, size and first label) with the boxes given as the box model gives
    them: normalised ``(cx, cy, w, h)`` (one box, or ``(k, 4)``), clipped to the image, with their
    scores (NaN or none: no score)."""
    from datasets.annotations import Box, ImageAnnotation

    w, h = annotation.width, annotation.height
    boxes = np.asarray(boxes_cxcywh, np.float32).reshape(-1, 4)
    scores = [None] * len(boxes) if scores is None else [
        None if np.isnan(v) else float(v) for v in np.asarray(scores, np.float64).reshape(-1)]
    label = annotation.boxes[0].label if annotation.boxes else annotation.label
    out = []
    for box, score in zip(boxes, scores, strict=True):
        x0, y0, x1, y1 = (np.clip(cxcywh_to_xyxy(box[None], dtype=np.float32)[0], 0, 1).astype(np.float64)
                          * [w, h, w, h])
        out.append(Box(label, x0, y0, max(x1, x0 + 1e-3), max(y1, y0 + 1e-3), score))
    return ImageAnnotation(annotation.image, w, h, tuple(out), label=label)


def _model_scored(annotation: ImageAnnotation, found: tuple[np.ndarray, np.ndarray, np.ndarray]) -> ImageAnnotation:
    """``annotation``'s boxes scored by a box model's boxes of its photo (``found``, one row of
    :func:`train_on_targets`'s ``predicted``; :func:`detector.split_groups.model_scores` of
    ``detect``'s scores), best first; its boxes themselves unchanged."""
    if not annotation.boxes:
        return annotation
    boxes, _, detect = found
    own = normalise_boxes(annotation.xyxy(), [(annotation.width, annotation.height)] * len(annotation.boxes))
    scores = model_scores(own, boxes, np.nan_to_num(detect, nan=0.0))
    order = np.argsort(-scores, kind="stable")
    return dataclasses.replace(annotation, boxes=tuple(dataclasses.replace(annotation.boxes[i], score=float(scores[i]))
                                                       for i in order))


def _ranked_boxes(annotation) -> np.ndarray:
    """An annotation's boxes, normalised ``(cx, cy, w, h)``, highest score first (in file order
    among equal scores; a box without a score counts as 1)."""
    scores = np.nan_to_num(annotation.scores(), nan=1.0)
    order = np.argsort(-scores, kind="stable")
    return normalise_boxes(annotation.xyxy()[order], [(annotation.width, annotation.height)] * len(order))


def read_photo_confidence(path: str | os.PathLike) -> dict[str, float]:
    """A :data:`PHOTO_CONFIDENCE` file as ``{image: confidence}``.

    Raises
    ------
    ValueError, KeyError, TypeError
        If the file is not JSON or not a list of ``{"image", "confidence"}`` records.
    """
    return {entry["image"]: float(entry["confidence"]) for entry in json.loads(Path(path).read_text(encoding="utf-8"))}


def largest_box(annotation: ImageAnnotation) -> np.ndarray:
    """An annotation's largest box."""
    xyxy = annotation.xyxy()
    return xyxy[int(np.argmax((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])))]
