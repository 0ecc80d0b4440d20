"""Pseudo boxes for photos that only have class labels: the localize stage's core.

One forward pass of the trained classifier per image gives its class probabilities, its class
maps and the descriptors of the backbone's feature layer; with ``LocalizeConfig.scales``/``flip``
the class maps are averaged over further passes at other input sizes and on the mirrored photo
(:func:`classifier.multi_view_maps.forward`). From them :func:`pseudo_boxes` makes a box per image.
Which map is boxed, at which threshold and how it is cut is decided once, by
:func:`boxing_rule`, from what was learned:

- hand boxes taught a cell localizer (:mod:`localize.cell_localizer`): its map, at its
  calibrated threshold, cut the way it chose on its held-out maps (GrabCut or the thresholded
  region);
- a threshold (``LocalizeConfig.threshold``, or calibrated on hand boxes): the class map there;
- nothing (labels only): co-localisation (DDT, :func:`localize.ddt.ddt_maps`): the feature-layer
  descriptors of all photos of a class projected on their first principal component, oriented
  by the class maps, the positive part boxed at ``ddt_threshold`` of its peak
  (``without_boxes="ddt"``, the default); or each class map at its own median-to-peak midpoint
  (``"midpoint"``, the rule before DDT).

A map is cut into a box by ``"cam"`` (the thresholded map's largest component) or ``"grabcut"``
(the map as the seeds of OpenCV's GrabCut on the photo, which grows the region to the object's
edges, :func:`localize.refine.grabcut_refine`); ``LocalizeConfig.method`` forces one, ``"ddt"``
forces co-localisation even with hand boxes.

The image's class is its known label when there is one (the folder it came from), else the
predicted class; an image whose known label the classifier doubts (probability below
``min_confidence``) is flagged for review rather than dropped. The descriptors are returned
too: they are what the box model trains on, so the box model costs no further forward pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from classifier.multi_view_maps import check_scales
from datasets.annotations import FORMATS
from datasets.review import MIN_CONFIDENCE, review_note
from groundwork.thread_map import thread_map
from localize.boxes import heatmap_to_boxes, midpoint_threshold
from localize.cam import upsample_normalize
from localize.cell_localizer import CellLocalizer
from localize.ddt import ddt_maps
from localize.refine import grabcut_refine

__all__ = ["BoxingRule", "LocalizeConfig", "METHODS", "MapSource", "PseudoBoxes", "box_classes", "boxing_rule",
           "class_heatmaps", "known_classes", "pseudo_boxes"]

log = logging.getLogger(__name__)

METHODS = ("auto", "cam", "grabcut", "ddt")
WITHOUT_BOXES = ("ddt", "midpoint")


@dataclass(frozen=True)
class LocalizeConfig:
    """How pseudo boxes are made; saved as ``localize_config.json`` beside them.

    Parameters
    ----------
    method : {"auto", "cam", "grabcut", "ddt"}
        How a map is cut into a box (module docstring). ``"auto"``: the cell localizer's own
        choice (made on its held-out maps: GrabCut won on the block photos' plain floors, the
        thresholded map on the animal photos' clutter, ``benchmarks/NOTES.md``), GrabCut for a
        class map at a threshold, the thresholded map for DDT. ``"ddt"``: co-localisation even
        when hand boxes were learned from.
    without_boxes : {"ddt", "midpoint"}
        How photos are boxed when no box was ever seen (no cell localizer, no threshold).
        ``"ddt"`` (default): co-localisation of each class's photos at ``ddt_threshold``; on the
        suite of real photo sets (``benchmarks/NOTES.md``) CorLoc 0.73 on the block photos and
        0.73-0.75 on the animal photos, where ``"midpoint"`` (each class map GrabCut-refined from
        its median-to-peak midpoint) boxed 0.73 of the blocks and none of the animals (it keeps
        the most discriminative part: a face, a foot).
    ddt_threshold : float in (0, 1)
        Fraction of the peak of a photo's positive DDT projection at which it is boxed. 0.3: the
        best on the suite's worse set (blocks 0.73 and animals 0.73-0.75; 0.2 gave 0.59 / 0.75,
        0.4 gave 0.83 / 0.44).
    threshold : float in [0, 1] or None
        CAM threshold (fraction of the normalised map); ``None`` uses what was learned from hand
        boxes (the cell localizer or the calibrated threshold saved with the model, or learned
        now from ground-truth boxes), else each map's own
        :func:`localize.boxes.midpoint_threshold` (no box seen: the CAM paper's fixed 0.2 boxed
        nearly every block photo whole).
    calibrate : bool
        When hand-checked boxes are given (``boxstrap localize --ground-truth``, the pipeline's
        ``valid_boxes.json``) and neither ``threshold`` nor a calibration saved with the model
        fixes the threshold, calibrate it on them (MaxBoxAcc protocol) and save it as
        ``localize_calibration.json`` beside the boxes. The scores of those images then come
        from boxes made at the threshold calibrated on the *other* half of them (2-fold), so
        they are not scored on what they were tuned on. On the block photos the class maps'
        best threshold is near 0.8, where the CAM paper's 0.2 boxes the whole photo.
    min_confidence : float in [0, 1]
        Images whose class probability is below it are flagged ``"low confidence"``
        (:data:`datasets.review.MIN_CONFIDENCE` says why 0.9).
    batch_size : int
        Images per forward pass.
    formats : tuple of str
        Annotation formats to write (see :mod:`datasets.annotations`).
    overlays : bool
        Write an overlay PNG per image (heatmap plus box) beside the contact sheets.
    scales : tuple of float > 0
        Input sizes the class maps are computed at, as multiples of the classifier's input size
        (rounded to its stride); the maps of all sizes (and flips) are min-max normalised and
        averaged. The network is fully convolutional, so a larger input gives a finer map.
        Default ``(1.5,)`` with ``flip``: on the block photos it raised GrabCut's CorLoc from 0.47
        to 0.61 and from 0.39 to 0.46 on two classifiers trained at 224x288 (0.56 to 0.52 on one
        trained at 288x384), at about 5.5 times the network cost of the plain pass.
        ``(1.0,)`` with ``flip=False`` is the plain map (one pass).
    flip : bool
        Also average the maps of the horizontally mirrored photo (one more pass per scale).
    learn : bool
        When hand-checked boxes are given (and ``threshold`` is None), fit a cell localizer on
        them (:mod:`localize.cell_localizer`: which feature cells are object, from the
        descriptors and the class map) and box its maps instead of the class maps; it is written
        to the output folder (``cell_localizer.json``), and :func:`localize.localize_photos.keep_learned`
        (the pipeline, ``boxstrap localize --ground-truth``) puts it beside the model for new photos.
        The hand-boxed photos are scored by localizers fitted without their capture group
        (``folds``-fold). False: calibrate only the class maps' threshold.
    folds : int >= 2
        Folds over capture groups for scoring (and calibrating) the cell localizer.
    """

    method: str = "auto"
    without_boxes: str = "ddt"
    ddt_threshold: float = 0.3
    threshold: float | None = None
    calibrate: bool = True
    min_confidence: float = MIN_CONFIDENCE
    batch_size: int = 8
    formats: tuple[str, ...] = FORMATS
    overlays: bool = True
    scales: tuple[float, ...] = (1.5,)
    flip: bool = True
    learn: bool = True
    folds: int = 5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}. Received: {self.method!r}")
        if self.without_boxes not in WITHOUT_BOXES:
            raise ValueError(f"without_boxes must be one of {WITHOUT_BOXES}. Received: {self.without_boxes!r}")
        if isinstance(self.ddt_threshold, bool) or not 0 < self.ddt_threshold < 1:
            raise ValueError(f"ddt_threshold must be in (0, 1). Received: {self.ddt_threshold!r}")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1] or None. Received: {self.threshold!r}")
        if not 0 <= self.min_confidence <= 1:
            raise ValueError(f"min_confidence must be in [0, 1]. Received: {self.min_confidence!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1. Received: {self.batch_size!r}")
        object.__setattr__(self, "formats", tuple(self.formats))
        object.__setattr__(self, "scales", check_scales(self.scales))
        if not isinstance(self.calibrate, bool):
            raise TypeError(f"calibrate must be a bool. Received: {self.calibrate!r}")
        if not isinstance(self.flip, bool):
            raise TypeError(f"flip must be a bool. Received: {self.flip!r}")
        if not isinstance(self.learn, bool):
            raise TypeError(f"learn must be a bool. Received: {self.learn!r}")
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ValueError(f"folds must be an int >= 2. Received: {self.folds!r}")


@dataclass(frozen=True)
class PseudoBoxes:
    """Pseudo boxes of N images and what they were made from.

    Attributes
    ----------
    boxes : list of (k_i, 4) float64 ndarrays
        Per image, 0 or 1 box in the image's own pixels (continuous edges, 0-based).
    scores : list of (k_i,) float64 ndarrays
        Mean normalised heat inside each box.
    classes : (N,) int ndarray
        The class each image was localised as (known label, else predicted).
    probabilities : (N, C) float32 ndarray
    heatmaps : list of 2-D float32 ndarrays
        The map each box came from, normalised to [0, 1]: the class map at the network input
        size (``"cam"``, ``"grabcut"``) or the positive DDT projection (``"ddt"``).
    features : (N, h, w, D) float16 ndarray
        Descriptors of the backbone's feature layer at the network input size (for the box model).
    notes : list of str
        Per image: "" or why it needs a look ("low confidence", "no box: empty heatmap").
    """

    boxes: list[np.ndarray]
    scores: list[np.ndarray]
    classes: np.ndarray
    probabilities: np.ndarray = field(repr=False)
    heatmaps: list[np.ndarray] = field(repr=False)
    features: np.ndarray = field(repr=False)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BoxingRule:
    """How every photo of one :func:`pseudo_boxes` call is boxed, decided once by :func:`boxing_rule`.

    Attributes
    ----------
    source : {"cell_localizer", "class_map", "ddt"}
        The map that is boxed.
    threshold : float or None
        Where it is cut (fraction of its normalised range); None: each map's own
        :func:`localize.boxes.midpoint_threshold`.
    cut : {"cam", "grabcut"}
        The thresholded map's largest component, or GrabCut seeded by the map.
    origin : str
        Where the threshold came from: ``"fixed"``, ``"cell_localizer"``, ``"calibrated"``,
        ``"ddt"`` or ``"midpoint"``.
    per_class : bool
        The maps need every photo of a class at once (DDT), so photos cannot be boxed chunk by
        chunk.
    """

    source: str
    threshold: float | None
    cut: str
    origin: str

    @property
    def per_class(self) -> bool:
        return MAP_SOURCES[self.source].per_class

    def to_dict(self) -> dict:
        return {"source": self.source, "value": self.threshold, "cut": self.cut, "method": self.origin}


def boxing_rule(config: LocalizeConfig, *, localizer: CellLocalizer | None = None,
                calibrated_threshold: float | None = None) -> BoxingRule:
    """Which map is boxed, where and how, from what was learned (module docstring).

    Examples
    --------
    >>> boxing_rule(LocalizeConfig())
    BoxingRule(source='ddt', threshold=0.3, cut='cam', origin='ddt')
    >>> boxing_rule(LocalizeConfig(threshold=0.5))
    BoxingRule(source='class_map', threshold=0.5, cut='grabcut', origin='fixed')
    """
    forced = None if config.method in ("auto", "ddt") else config.method
    if config.method == "ddt" or (localizer is None and config.threshold is None and calibrated_threshold is None
                                  and config.without_boxes == "ddt"):
        return BoxingRule("ddt", config.ddt_threshold, forced or "cam", "ddt")
    if localizer is not None:
        threshold = localizer.threshold if config.threshold is None else config.threshold
        return BoxingRule("cell_localizer", threshold, forced or localizer.cut,
                          "cell_localizer" if config.threshold is None else "fixed")
    if config.threshold is not None:
        return BoxingRule("class_map", config.threshold, forced or "grabcut", "fixed")
    if calibrated_threshold is not None:
        return BoxingRule("class_map", calibrated_threshold, forced or "grabcut", "calibrated")
    return BoxingRule("class_map", None, forced or "grabcut", "midpoint")


def pseudo_boxes(
    images: Sequence[np.ndarray],
    probabilities: np.ndarray,
    class_maps: np.ndarray,
    features: np.ndarray,
    *,
    known: Sequence[int | None] | None = None,
    input_size: tuple[int, int] | None = None,
    config: LocalizeConfig = LocalizeConfig(),
    calibrated_threshold: float | None = None,
    localizer: CellLocalizer | None = None,
    map_features: np.ndarray | None = None,
) -> PseudoBoxes:
    """Boxes for N images from the classifier's outputs (pure: arrays in, arrays out).

    Parameters
    ----------
    images : sequence of N (H_i, W_i, 3) uint8 ndarrays
        The photos at their own size (boxes are in their pixels; GrabCut reads their colours).
    probabilities, class_maps, features
        From :func:`forward` for the same images.
    known : sequence of N int or None, optional
        Known class index per image (``None`` where unknown).
    input_size : (height, width), optional
        The network input size: maps are upsampled to it (bilinear) before thresholding, so box
        edges fall between map cells. Default: the class maps' own size.
    config : LocalizeConfig
    calibrated_threshold : float, optional
        A class-map threshold calibrated on hand boxes (:func:`boxing_rule`).
    localizer : CellLocalizer, optional
        Box its maps (of ``map_features`` and the class maps) instead of the class maps.
    map_features : (N, h, w, D) array, optional
        The descriptors the cell localizer reads (:func:`classifier.multi_view_maps.forward`);
        required with ``localizer``.

    Raises
    ------
    ValueError
        If the lengths disagree or a known class is out of range.
    """
    n = len(images)
    if not (len(probabilities) == len(class_maps) == len(features) == n):
        raise ValueError(f"images, probabilities, class_maps and features must have one entry per image. "
                         f"Received: {n}, {len(probabilities)}, {len(class_maps)}, {len(features)}")
    classes = box_classes(probabilities, known, num_classes=class_maps.shape[-1])
    rule = boxing_rule(config, localizer=localizer, calibrated_threshold=calibrated_threshold)
    size = tuple(input_size) if input_size is not None else class_maps.shape[1:3]
    heatmaps = class_heatmaps(class_maps, classes, input_size)
    if rule.source == "cell_localizer" and (map_features is None or len(map_features) != n):
        raise ValueError("a cell localizer needs map_features: one descriptor grid per image.")
    maps = MAP_SOURCES[rule.source].make(_MapInputs(class_maps, classes, heatmaps, features, map_features,
                                                    localizer, size))
    boxes, scores, notes = [], [], []
    # GrabCut is most of a localize run after the classifier pass: every core boxes photos.
    cut = thread_map(lambda i: box_map(images[i], maps[i], rule), range(n))
    for i, (b, s) in enumerate(cut):
        boxes.append(b)
        scores.append(s)
        notes.append(review_note(len(b), float(probabilities[i, classes[i]]), config.min_confidence,
                                 no_box="empty heatmap"))
    return PseudoBoxes(boxes=boxes, scores=scores, classes=classes, probabilities=probabilities,
                       heatmaps=maps, features=features, notes=notes)


def box_map(image: np.ndarray, heatmap: np.ndarray, rule: BoxingRule) -> tuple[np.ndarray, np.ndarray]:
    """One photo's box from its map, as ``rule`` says: ``(boxes (0 or 1, 4), scores)`` in its pixels."""
    level = rule.threshold if rule.threshold is not None else midpoint_threshold(heatmap)
    return CUTS[rule.cut](image, heatmap, level)


@dataclass(frozen=True)
class _MapInputs:
    class_maps: np.ndarray
    classes: np.ndarray
    heatmaps: list[np.ndarray]
    features: np.ndarray
    map_features: np.ndarray | None
    localizer: CellLocalizer | None
    size: tuple[int, int]


@dataclass(frozen=True)
class MapSource:
    """A map photos can be boxed on: how it is made, and whether it needs every photo of a class at
    once (then photos cannot be boxed chunk by chunk in the classifier pass)."""

    make: Callable[[_MapInputs], list[np.ndarray]]
    per_class: bool


def _cell_localizer_maps(given: _MapInputs) -> list[np.ndarray]:
    cams = class_heatmaps(given.class_maps, given.classes)
    return [upsample_normalize(m, given.size) for m in given.localizer.maps(given.map_features, cams)]


def _ddt_maps(given: _MapInputs) -> list[np.ndarray]:
    return [upsample_normalize(m, given.size) for m in _ddt_heatmaps(given.features, given.heatmaps, given.classes)]


#: :attr:`BoxingRule.source` -> how its maps are made.
MAP_SOURCES = {
    "class_map": MapSource(lambda given: given.heatmaps, per_class=False),
    "cell_localizer": MapSource(_cell_localizer_maps, per_class=False),
    "ddt": MapSource(_ddt_maps, per_class=True),
}

#: :attr:`BoxingRule.cut` -> ``(image, heatmap, level) -> (boxes, scores)`` in the image's pixels.
CUTS = {
    "cam": lambda image, heatmap, level: heatmap_to_boxes(heatmap, threshold=level, image_size=image.shape[:2]),
    "grabcut": lambda image, heatmap, level: grabcut_refine(image, heatmap, threshold=level),
}


def known_classes(item_labels: Sequence[str | None], labels: Sequence[str]) -> list[int | None]:
    """Each photo's known class (``known`` of :func:`pseudo_boxes`): the index of its label among
    the classifier's ``labels``, or None (no label, or one the classifier does not know).

    Examples
    --------
    >>> known_classes(["ten", None, "cat"], ("one", "ten"))
    [1, None, None]
    """
    return [labels.index(label) if label in labels else None for label in item_labels]


def box_classes(probabilities: np.ndarray, known: Sequence[int | None] | None = None, *,
                num_classes: int | None = None) -> np.ndarray:
    """The class each image is boxed for: its known class where given, else the predicted one.

    Raises
    ------
    ValueError
        If ``known`` has the wrong length or a known class is out of range.

    Examples
    --------
    >>> box_classes(np.array([[0.9, 0.1], [0.2, 0.8]]), [None, 0]).tolist()
    [0, 0]
    """
    n = len(probabilities)
    num_classes = probabilities.shape[-1] if num_classes is None else num_classes
    known = list(known) if known is not None else [None] * n
    if len(known) != n:
        raise ValueError(f"known must have one entry per image ({n}). Received: {len(known)}")
    predicted = np.argmax(probabilities, axis=1)
    classes = np.array([p if k is None else k for k, p in zip(known, predicted, strict=True)], np.int64)
    if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
        bad = sorted({int(c) for c in classes if not 0 <= c < num_classes})
        raise ValueError(f"known class indices must be in [0, {num_classes - 1}]. Received: {bad}")
    return classes


def class_heatmaps(class_maps: np.ndarray, classes: Sequence[int],
                   input_size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Each image's map for its class, upsampled (bilinear) to ``input_size`` and min-max normalised:
    what is thresholded, seeded into GrabCut and calibrated on. Default size: the maps' own."""
    size = tuple(input_size) if input_size is not None else class_maps.shape[1:3]
    return [upsample_normalize(class_maps[i, ..., int(c)], size) for i, c in enumerate(classes)]


def _ddt_heatmaps(features: np.ndarray, heatmaps: list[np.ndarray], classes: np.ndarray) -> list[np.ndarray]:
    """DDT per class: project each class's descriptors on their first component, keep the positive part."""
    out: list[np.ndarray | None] = [None] * len(features)
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        maps = ddt_maps([features[i].astype(np.float32) for i in members],
                        reference=[heatmaps[i] for i in members])
        for i, m in zip(members, maps, strict=True):
            out[i] = np.maximum(m, 0.0)
    return out
