"""``TrainConfig``: how ``boxstrap train`` trains, saved as ``train_config.json`` beside the model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from classifier.backbones.registry import DEFAULT_BACKBONE, get_backbone
from classifier.model import HEADS, POOLINGS, head_input

__all__ = ["HEAD_LOSSES", "SHIP_CHOICES", "TrainConfig", "with_backbone"]

#: The default head's name in configs saved before it was named for what it reads (VGG16's block5).
LEGACY_HEAD = "block5"

HEAD_LOSSES = ("softmax", "sigmoid", "softmax+sigmoid")
SHIP_CHOICES = ("all", "split")


@dataclass(frozen=True)
class TrainConfig:
    """How ``boxstrap train`` trains; saved as ``train_config.json`` beside the model.

    Parameters
    ----------
    backbone : str
        A name of the backbone registry (:mod:`classifier.backbones`); its spec gives the
        layers, the preprocessing, the default weights and where training may cut.
    weights : str or None
        Backbone starting weights: one of the spec's ``weight_choices`` (for ``vgg16``:
        ``"hed-vgg16"``, ``"imagenet"``, ``"none"``) or a file path; ``None`` is the spec's
        ``default_weights`` (saved as the resolved choice).
    input_size : (height, width)
        Network input, multiples of the spec's ``size_multiple`` (photos are resized to it,
        aspect ratio not kept).
    head : {"feature_layer", "multilevel"}
        The class-map head (:mod:`classifier.model`): the plain 1x1 convolution on the
        backbone's feature layer (the default; needed for ``fine_tune_from``), or the spec's
        multilevel taps through a hidden 1x1 layer (a better classifier on the block photos,
        worse boxes).
    head_hidden : int
        Width of the multilevel head's hidden layer.
    context : bool or None
        ``head="feature_layer"``: the head also reads the backbone's context layer (a deeper, coarser
        layer upsampled to the feature grid; :mod:`classifier.model`). ``None`` (saved resolved)
        is True when the spec has a context layer: on the suite of real photo sets
        (``benchmarks/NOTES.md``) it raised EfficientNet-Lite0's accuracy on animals in cluttered
        scenes from 0.94 to 0.99 (5-fold over capture groups) and kept the block photos' (0.99).
    pooling : {"lse", "max", "avg"}
        How each class map is pooled into its score (see :mod:`classifier.pooling`).
    sharpness : float
        ``r`` of log-sum-exp pooling.
    head_loss : {"softmax", "sigmoid", "softmax+sigmoid"}
        Training loss on the pooled scores: cross-entropy of their softmax, one-vs-rest
        sigmoid cross-entropy (each class map must fire on its own class and stay low on the
        others), or the sum. The saved model outputs the softmax either way.
    dropout : float
        Dropout before each convolution of the head.
    views : int
        Views per training image in the feature cache: the image itself plus ``views - 1``
        augmented ones.
    head_epochs, head_learning_rate, head_batch_size
        Phase 1 (backbone frozen), Adam; the head is small, so large batches keep epochs short.
    fine_tune_from : str or None
        First backbone layer trained in phase 2, one of the spec's ``fine_tune_cuts``;
        ``None`` skips phase 2. Only with ``head="feature_layer"``.
    fine_tune_epochs, fine_tune_learning_rate
        Phase 2, Adam.
    batch_size, patience : int
        Batch size of feature extraction and phase 2; epochs without a better valid loss before
        a phase stops.
    class_weights : bool
        Weight classes by inverse frequency in the training split.
    seed : int
        Seeds initialisation, dropout, augmentation and shuffling.
    cache_dir : str or None
        Feature cache folder; ``None`` puts it in the work folder beside the output.
    filters : ints or None
        Backbone widths; ``None`` is the real network's (``spec.widths``, saved resolved), tiny
        ones are for tests.
    tensorboard : bool
        Write TensorBoard logs into ``MODEL_DIR/logs``.
    ship : {"all", "split"}
        Which model the folder holds. Training first runs on the train split, stopping early on
        the valid loss, and measures valid and test accuracy: the estimate ``metrics.json``
        reports. ``"all"`` then fits a fresh model the same way on train + valid + test, for the
        epochs that run kept in each phase, without validation, and ships it (every labelled
        photo is learned from); ``"split"`` ships the split run's model (the one measured).
    """

    backbone: str = DEFAULT_BACKBONE
    weights: str | None = None
    input_size: tuple[int, int] = (224, 288)
    head: str = "feature_layer"
    head_hidden: int = 128
    context: bool | None = None
    pooling: str = "lse"
    sharpness: float = 5.0
    head_loss: str = "sigmoid"
    dropout: float = 0.2
    views: int = 2
    head_epochs: int = 60
    head_learning_rate: float = 1e-3
    head_batch_size: int = 64
    fine_tune_from: str | None = None
    fine_tune_epochs: int = 4
    fine_tune_learning_rate: float = 1e-5
    batch_size: int = 16
    patience: int = 8
    class_weights: bool = True
    seed: int = 0
    cache_dir: str | None = None
    filters: tuple[int, ...] | None = None
    tensorboard: bool = False
    ship: str = "all"

    def __post_init__(self) -> None:
        spec = get_backbone(self.backbone)
        object.__setattr__(self, "input_size", spec.check_input_size(self.input_size))
        object.__setattr__(self, "filters", tuple(int(f) for f in (spec.widths if self.filters is None
                                                                   else self.filters)))
        if self.weights is None:
            object.__setattr__(self, "weights", spec.default_weights)
        if not isinstance(self.weights, str) or not self.weights:
            raise ValueError(f"weights must be one of {spec.weight_choices} or a path. Received: {self.weights!r}")
        if self.head == LEGACY_HEAD:  # a train_config.json saved before the head had its own name
            object.__setattr__(self, "head", "feature_layer")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}. Received: {self.head!r}")
        if self.context is None:
            object.__setattr__(self, "context", self.head == "feature_layer" and spec.context_layer is not None)
        if not isinstance(self.context, bool):
            raise TypeError(f"context must be a bool or None. Received: {self.context!r}")
        if self.context and (self.head != "feature_layer" or spec.context_layer is None):
            raise ValueError(f"context needs head='feature_layer' and a backbone with a context layer ({self.backbone}: "
                             f"{spec.context_layer!r}). Received: head={self.head!r}, context=True")
        if isinstance(self.head_hidden, bool) or not isinstance(self.head_hidden, int) or self.head_hidden < 1:
            raise ValueError(f"head_hidden must be an int >= 1. Received: {self.head_hidden!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}. Received: {self.pooling!r}")
        if self.ship not in SHIP_CHOICES:
            raise ValueError(f"ship must be one of {SHIP_CHOICES} (train + valid + test, or the train split "
                             f"alone). Received: {self.ship!r}")
        if self.head_loss not in HEAD_LOSSES:
            raise ValueError(f"head_loss must be one of {HEAD_LOSSES}. Received: {self.head_loss!r}")
        if self.fine_tune_from is not None:
            spec.boundary_before(self.fine_tune_from)  # raises naming the valid ones
        if self.head != "feature_layer" and self.fine_tune_from is not None:
            raise ValueError(f"fine_tune_from needs head='feature_layer' (the multilevel head reads three backbone "
                             f"depths, so its backbone stays frozen). Received: head={self.head!r}, "
                             f"fine_tune_from={self.fine_tune_from!r}")
        for name in ("views", "head_epochs", "head_batch_size", "batch_size", "patience"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1. Received: {getattr(self, name)!r}")
        if not isinstance(self.fine_tune_epochs, int) or self.fine_tune_epochs < 0:
            raise ValueError(f"fine_tune_epochs must be an int >= 0. Received: {self.fine_tune_epochs!r}")
        for name in ("head_learning_rate", "fine_tune_learning_rate", "sharpness"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0. Received: {getattr(self, name)!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1). Received: {self.dropout!r}")

    @property
    def boundary(self) -> str:
        """The last frozen layer: features are cached at its output."""
        if self.fine_tune_from is None:
            return head_input(self.head, self.backbone, context=self.context)
        return get_backbone(self.backbone).boundary_before(self.fine_tune_from)


def with_backbone(config: TrainConfig, backbone: str) -> TrainConfig:
    """``config`` on another backbone: that backbone's own default weights, widths and context, and no
    cut of the old one (every other setting kept).

    Examples
    --------
    >>> with_backbone(TrainConfig(views=3), "vgg16").weights, with_backbone(TrainConfig(views=3), "vgg16").views
    ('hed-vgg16', 3)
    """
    if backbone == config.backbone:
        return config
    return dataclasses.replace(config, backbone=backbone, weights=None, filters=None, fine_tune_from=None,
                               context=None)
