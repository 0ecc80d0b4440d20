"""How the box head is trained (:class:`BoxTrainConfig`), saved beside the box model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["BoxTrainConfig", "HEADS", "LABELS_ONLY_CROPS"]

HEADS = ("cells", "dense", "centres")
#: Crops per view set when a box model learns from pseudo boxes alone (``BoxTrainConfig.crops`` None).
LABELS_ONLY_CROPS = 2

@dataclass(frozen=True)
class BoxTrainConfig:
    """How the box head is trained; saved as ``box_train_config.json`` beside the box model.

    Parameters
    ----------
    head : {"cells", "dense", "centres"}
        The box head (:mod:`detector.box_model`). Default ``"centres"``: a centre score and a box
        per cell, several peaks per photo, decoded by non-maximum suppression; on the suite's sets
        it found every object better than ``"cells"`` (one box per photo: a soft arg-max over the
        cells' boxes) where it was worst (the animals: CorLoc 0.818 against 0.755, recall over
        every animal 0.704 against 0.603; benchmarks/NOTES.md, "Several boxes per photo"). Of
        the one-box heads ``"cells"`` found more objects than ``"dense"`` on the block photos'
        learning curve.
    reduce_filters : int
        Width of the reduction convolution. 32: on the suite's animals the ``"centres"`` head with
        16 found fewer objects (CorLoc 0.782 against 0.813) and with 64 fewer animals in groups
        (recall over every animal 0.755 against 0.797), at one or two photos' difference on the
        blocks (benchmarks/NOTES.md, "A narrower box head" and "How far a cell sees").
    kernel : int >= 1
        ``"cells"``, ``"centres"``: size of the reduction convolution. 3: each cell also sees its
        neighbours. On the suite the ``"centres"`` head with 1 left a box on every part of an
        animal (0.82 extra boxes a photo of one animal), with 5 it gave neighbouring animals one
        peak (recall on photos of several 0.260); 3 was best on both sets (benchmarks/NOTES.md,
        "How far a cell sees").
    hidden : int
        ``"dense"``: width of the hidden dense layer.
    pool : int >= 1
        Max-pooling of the descriptor grid before the reduction (1: none). ``"dense"`` only: the
        cells head reads the full grid.
    dropout : float
        ``"dense"``: before the box output, in [0, 1). Default 0 and 20 epochs: on the block photos' pseudo
        boxes (benchmarks/NOTES.md) dropout 0.3 scored mean IoU 0.737 on the hand boxes against
        0.763 without, and the validation IoU was flat after epoch 20 (0.760 at 20, 0.762 at 40).
    epochs, batch_size : int
    max_steps : int >= 0
        ``"centres"``: the head trains for at most this many batches, in whole epochs
        (``min(epochs, ceil(max_steps / batches per epoch))``); 0: always ``epochs``. 400: on the
        suite's sets (benchmarks/NOTES.md, "The cap on the centres head's batches, measured
        again") 400 batches scored as 1200 did, with hand boxes (no crops) and with labels only
        (two crops per view set), seeds 0-2: the block photos (48 and 91 batches per epoch,
        stopped at 9 and 5 epochs) CorLoc 0.971 and 0.693 against 0.961 and 0.686, the animal
        photos (14 and 23 batches per epoch, 20 and 18 epochs) 0.855 and 0.793 against 0.855 and
        0.786, in a third to a half of the large set's training time. Fewer still was not
        measured with this recipe; an older one lost on both sets at 8 epochs (184-224 batches on
        the animals, 730-770 on the blocks: "Epochs of the centres head").
    learning_rate : float
        Adam's. 1e-3: on the suite's runs with 20 hand boxes (seeds 0-2) 3e-4 boxed both sets
        worse and 3e-3 merged the animals of a group (recall there 0.319 against 0.505)
        (benchmarks/NOTES.md, "The weight of the GIoU term and the learning rate").
    iou_weight : float
        Weight of the (1 - GIoU) term beside the smooth-L1 term of the loss. 1: on the suite's
        runs with 20 hand boxes (seeds 0-2) 0.3 and 3 boxed the animals worse on every measure
        (CorLoc 0.855 and 0.874 against 0.885, recall over every animal 0.767 and 0.771 against
        0.797) and the blocks the same (benchmarks/NOTES.md, "The weight of the GIoU term and the
        learning rate").
    cell_weight : float >= 0
        ``"cells"``: weight of two terms that teach every cell, not only their average: the cells'
        likelihoods against a Gaussian around the target box's centre (cross-entropy), and the
        reaches of the cells near it against the box's edges (L1, weighted by that Gaussian).
        0 trains on the averaged box alone.
    crops : int >= 0 or None
        Random feature-grid crops per image and epoch view set, each stretched back to the grid's
        size (a zoom: the box grows, the cells' descriptors do not). None (default): none when the
        box model learns from hand boxes, :data:`LABELS_ONLY_CROPS` when it learns from pseudo
        boxes alone (:meth:`for_training`). The crops teach the ``"centres"`` head to draw every
        box larger than its target (on the animal photos' own targets, boxes of 0.1-0.3 of the
        photo came out 17-30% wider and 14-17% taller). With hand boxes the targets are the right
        size, and without crops the head scored higher where it was worst (the animals, 20 hand
        boxes, seeds 0-2: CorLoc 0.855 against 0.813, recall over every animal 0.789 against
        0.692) and the same on the block photos (0.961 against 0.961), in half the batches. With
        labels only the animals' pseudo boxes are too small (16% too narrow) and the crops' zoom
        makes up for it (CorLoc 0.786 against 0.689, mAP@0.5 0.575 against 0.505; the blocks,
        whose pseudo boxes are a little large, 0.686 against 0.723): benchmarks/NOTES.md, "Crops
        of the feature grid". The one-box heads were chosen with 2 and not measured again.
    paste : int >= 0
        ``"centres"``: copy-paste view sets per epoch (:func:`detector.box_views.paste_views`: each
        photo with another photo's object pasted onto its feature grid), so the head sees photos
        with several objects when the photos mostly hold one. 0 turns them off.
    paste_photos : int >= 0
        ``"centres"``: scenes composed per photo from the photos themselves
        (:func:`detector.paste_photos.paste_photos`: objects of one-box photos cut out and pasted
        onto other photos of their class, then passed through the backbone), added to what every
        box model of the training learns from. Photos with hand boxes give neither objects nor
        scenes, so a fold model never learns its fold's hand boxes through them. Default 0: on the
        suite's sets it found one more of the 68 animals that stand with others and took 2.7x the
        training time (benchmarks/NOTES.md, "Copy-paste of pixels").
    flip : bool
        Add horizontally flipped views.
    seed : int
    hand_weight : int >= 1
        How many times a hand-checked box counts against one pseudo box (its image is repeated).
    rounds : int >= 1
        Box models trained in turn; the last ships. With the ``"centres"`` head and a split or an
        average (``split_inside``, ``fuse_iou``), each round after the first learns from the pseudo
        boxes as the round before's model refined them (hand boxes stay; each fold model from
        its own fold model's refinement, so no fold learns the hand boxes it is scored on), and
        those refined boxes are what is written (``split_boxes.json``); otherwise from the round
        before's own boxes. Every round is scored on the held-out hand boxes (``box_metrics.json``),
        but no round is dropped on that score: with 20 hand boxes it rests on four photos a fold.
        Default 2: on the suite's runs with 20 hand boxes (seeds 0-2) the second round raised the
        box model's CorLoc on the animals from 0.855 to 0.885 (mAP@0.5 0.685 -> 0.731) and on the
        blocks from 0.971 to 0.985, each seed at or above the refined pseudo boxes it learned from
        (benchmarks/NOTES.md, "A second round on the refined pseudo boxes"). A second round on the
        box model's own boxes scored lower on every set ("Self-training rounds"). Without hand
        boxes, one round: in the suite's run of every budget the second round with labels only
        lifted the animals' box model from 0.777 to 0.844 but dropped the blocks' from 0.693 to
        0.625, and a default is chosen by the worse set.
    refine_steps : int >= 0
        Each round after the first starts from the round before's model of the same set (the
        shipped one, each fold's) and trains for at most this many batches (in whole epochs, as
        ``max_steps``). 0: from scratch, for ``max_steps``. 100: on the same runs as good as 200
        and as a second round from scratch (CorLoc 0.885 / 0.891 / 0.881 on the animals, 0.985 /
        0.980 / 0.985 on the blocks), for the fewest batches (benchmarks/NOTES.md).
    split_inside : float in (0, 1] or None
        ``"centres"``: after training, a photo's pseudo box that holds two or more of the box
        model's boxes (each with at least this share of its area inside it) is replaced by them
        (:func:`detector.split_groups.split_groups`: a group of objects boxed as one becomes a box
        per object; a box lying inside another of them is a part, not an object); the result is
        written beside the box model (``split_boxes.json``). None: no split. 0.8: with the box
        model's extra boxes on photos of one animal, 0.7 split many of them into parts; 0.8 scored
        the animals best or level at 0, 10 and 20 hand boxes (CorLoc 0.749 / 0.822 / 0.849 against
        0.743 / 0.811 / 0.836 at 0.7) with fewer extra boxes and the blocks the same
        (benchmarks/NOTES.md, "Groups split by the box model" and "The split with the box model
        trained without crops").
    fuse_iou : float in (0, 1] or None
        ``"centres"``: after training, a photo's one pseudo box that is not split is replaced by
        its mean with the box model's box that overlaps it most, where their IoU is at least this
        (:func:`detector.split_groups.fuse_box`; written with the split, ``split_boxes.json``).
        None: kept as it is. 0.3: on the suite's runs with 20 hand boxes (box models of seeds
        0-2) the animals' CorLoc went from 0.847 to 0.862 and the blocks' from 0.956 to 0.971,
        mAP@0.5 and recall up, extra boxes down, the mean IoU of the top box 0.01-0.02 lower;
        in the suite's run of every budget more objects found in five rows of six (with labels
        only the animals 0.749 -> 0.788, the blocks 0.727 -> 0.716, one photo of 88)
        (benchmarks/NOTES.md, "The pseudo box averaged with the box model's").
    """

    head: str = "centres"
    reduce_filters: int = 32
    kernel: int = 3
    hidden: int = 256
    pool: int = 2
    dropout: float = 0.0
    epochs: int = 20
    batch_size: int = 32
    max_steps: int = 400
    learning_rate: float = 1e-3
    iou_weight: float = 1.0
    cell_weight: float = 0.0
    crops: int | None = None
    paste: int = 0
    paste_photos: int = 0
    flip: bool = True
    seed: int = 0
    hand_weight: int = 3
    rounds: int = 2
    refine_steps: int = 100
    split_inside: float | None = 0.8
    fuse_iou: float | None = 0.3

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}. Received: {self.head!r}")
        for name in ("reduce_filters", "kernel", "hidden", "pool", "epochs", "batch_size", "hand_weight", "rounds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1. Received: {value!r}")
        for name in ("crops", "paste", "paste_photos", "max_steps", "refine_steps"):
            value = getattr(self, name)
            if name == "crops" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0. Received: {value!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1). Received: {self.dropout!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0. Received: {self.learning_rate!r}")
        if self.iou_weight < 0:
            raise ValueError(f"iou_weight must be >= 0. Received: {self.iou_weight!r}")
        for name in ("split_inside", "fuse_iou"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not 0 < value <= 1):
                raise ValueError(f"{name} must be in (0, 1] or None. Received: {value!r}")
        if not self.cell_weight >= 0:
            raise ValueError(f"cell_weight must be >= 0. Received: {self.cell_weight!r}")
        if self.paste_photos and self.head != "centres":
            raise ValueError(f"paste_photos needs the 'centres' head (composed photos hold several boxes). "
                             f"Received: head={self.head!r}, paste_photos={self.paste_photos}")

    def for_training(self, *, hand_boxes: bool) -> BoxTrainConfig:
        """This config with ``crops`` chosen for a training with or without hand boxes (see
        ``crops``); unchanged when ``crops`` is set."""
        if self.crops is not None:
            return self
        return dataclasses.replace(self, crops=0 if hand_boxes else LABELS_ONLY_CROPS)
