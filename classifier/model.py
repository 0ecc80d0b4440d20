"""The classifier: a backbone of the registry and a fully convolutional class-map head, one Keras model.

One forward pass gives the class probabilities and one map per class. Two heads:

``head="feature_layer"`` (the default) is the plain class-activation-map head on the backbone's
feature layer (:attr:`~classifier.backbones.backbone_spec.BackboneSpec.feature_layer`; VGG16's
last convolution); configs saved before it had this name call it ``"block5"``::

    image -> backbone -> feature layer -> head_dropout -> class_map (1x1 conv, one filter per
    class; (H/s, W/s, C)) -> class_scores (global pooling; (C,)) -> probabilities (softmax)

With ``context=True`` (the default for a backbone whose spec has a ``context_layer``, such as
EfficientNet-Lite0's ``block13_add``) the head reads the feature layer and the context layer
upsampled to its grid (``context_upsample``), concatenated (``head_context``): the deeper layer
says what the object is, the feature layer where. Core ML runs the upsampling as tile and
reshape, which verify's reference runtimes execute.

``head="multilevel"`` reads the spec's ``multilevel_taps`` (several depths of the backbone),
each brought to the feature layer's grid by average pooling (``head_<tap>_pool``), concatenated
(``head_features``), and classifies every cell with a small two-layer 1x1 convolution
(``head_hidden``, then ``class_map``). In training the concatenated features are standardised
per channel; :func:`fold_standardisation` folds that into ``head_hidden`` so the saved model has
none of it.

The input is already preprocessed (the spec's :class:`datasets.preprocessing.Preprocessing`);
there is no Lambda layer. Outputs are named ``probabilities`` and ``class_map``
(docs/ARCHITECTURE.md). The pooling is log-sum-exp by default and training uses one-vs-rest
sigmoid losses, so each class map must fire on its own object rather than mean "not the other
class"; why, and why the multilevel head is not the default, is measured in
``benchmarks/NOTES.md``.

:func:`split_model` cuts the network at a named boundary (a layer of the spec's ``boundaries``,
the head's input, or a head layer before ``class_map``) into Keras functional sub-models that
share the model's layers: the frozen lower part runs once over the images (cached features),
the upper part trains on them. The cut follows the graph, not a list of layers, so it also
works for backbones with branches and residual additions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from classifier.backbones.registry import DEFAULT_BACKBONE, get_backbone
from classifier.trained_model import INPUT_NAME

__all__ = ["HEADS", "POOLINGS", "build_classifier", "cut_points", "fold_standardisation", "head_input", "map_layer",
           "split_model", "sub_model"]

log = logging.getLogger(__name__)

POOLINGS = ("lse", "max", "avg")
HEADS = ("feature_layer", "multilevel")
# The layer the multilevel head's trainable part reads (its taps meet there).
MULTILEVEL_INPUT = "head_features"
# The layer the default head reads when the backbone has a context layer: the feature layer and the
# context layer upsampled to its grid, concatenated.
CONTEXT_INPUT = "head_context"


def head_input(head: str, backbone: str = DEFAULT_BACKBONE, *, context: bool = False) -> str:
    """The layer a head's trainable part reads: where phase 1 of training caches features.

    Examples
    --------
    >>> head_input("multilevel")
    'head_features'
    >>> head_input("feature_layer", "efficientnet-lite0", context=True)
    'head_context'
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}. Received: {head!r}")
    if head != "feature_layer":
        return MULTILEVEL_INPUT
    return CONTEXT_INPUT if context else get_backbone(backbone).feature_layer


def map_layer(model, backbone: str = DEFAULT_BACKBONE) -> str:
    """The layer of a built classifier whose output the class-map convolution reads (through its
    dropout): the context concatenation or the multilevel features when the model has them, else
    the backbone's feature layer. The cell localizer reads the same descriptors."""
    names = {layer.name for layer in model.layers}
    for name in (CONTEXT_INPUT, MULTILEVEL_INPUT):
        if name in names:
            return name
    return get_backbone(backbone).feature_layer


def build_classifier(
    num_classes: int,
    input_size: Sequence[int] = (224, 224),
    *,
    backbone: str = DEFAULT_BACKBONE,
    head: str = "feature_layer",
    hidden: int = 128,
    pooling: str = "lse",
    sharpness: float = 5.0,
    dropout: float = 0.2,
    filters: Sequence[int] | None = None,
    weights: str = "none",
    seed: int = 0,
    context: bool = False,
):
    """Build the class-map classifier.

    Parameters
    ----------
    num_classes : int
        Number of classes, >= 2.
    input_size : (height, width)
        Each a multiple of the backbone's ``size_multiple``; non-square sizes work.
    backbone : str
        A name of the backbone registry (:func:`classifier.backbones.registry.get_backbone`).
    head : {"feature_layer", "multilevel"}
        The class-map head (module docstring).
    hidden : int
        Width of the multilevel head's hidden 1x1 convolution.
    pooling : {"lse", "max", "avg"}
        Global pooling of each class map into its score: log-sum-exp (smooth max, see
        :mod:`classifier.pooling`), max or average.
    sharpness : float
        ``r`` of log-sum-exp pooling.
    dropout : float
        Dropout rate before each 1x1 convolution of the head, in [0, 1).
    filters : ints or None
        Backbone widths; ``None`` is the real network (``spec.widths``), tiny ones are for tests.
    weights : str
        Backbone starting weights: one of the spec's ``weight_choices`` or a weights file.
    seed : int
        Seeds the head's initialisation and dropout.
    context : bool
        ``head="feature_layer"`` only: the head also reads the spec's ``context_layer``, upsampled
        (nearest) to the feature grid and concatenated with the feature layer (``head_context``).

    Returns
    -------
    keras.Model
        Input ``image`` (N, H, W, 3) float32; outputs ``probabilities`` (N, C) and
        ``class_map`` (N, H/s, W/s, C) with ``s`` the spec's ``feature_stride``, in that order.

    Raises
    ------
    ValueError
        For an invalid argument (named, with the value received).
    """
    import keras

    spec = get_backbone(backbone)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2. Received: {num_classes!r}")
    height, width = spec.check_input_size(input_size)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}. Received: {pooling!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1). Received: {dropout!r}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}. Received: {head!r}")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"hidden must be an int >= 1. Received: {hidden!r}")
    if context and (head != "feature_layer" or spec.context_layer is None):
        raise ValueError(f"context needs head='feature_layer' and a backbone with a context layer ({spec.name}: "
                         f"{spec.context_layer!r}). Received: head={head!r}, context={context!r}")
    image = keras.Input((height, width, 3), name=INPUT_NAME)
    taps = spec.build(image, spec.widths if filters is None else tuple(filters))
    if head == "feature_layer":
        features = taps[spec.feature_layer]
        if context:
            upsampled = keras.layers.UpSampling2D(spec.context_factor, name="context_upsample")(taps[spec.context_layer])
            features = keras.layers.Concatenate(name=CONTEXT_INPUT)([features, upsampled])
        outputs = _run_head(features, _head_layers(num_classes, pooling, sharpness, dropout, seed))
    else:
        pooled = [taps[name] if factor == 1 else
                  keras.layers.AveragePooling2D(factor, name=f"head_{name.split('_')[0]}_pool")(taps[name])
                  for name, factor in spec.multilevel_taps]
        features = keras.layers.Concatenate(name=MULTILEVEL_INPUT)(pooled)
        outputs = _run_head(features, _head_layers(num_classes, pooling, sharpness, dropout, seed, hidden))
    model = keras.Model(image, outputs, name="boxstrap_classifier")
    spec.load_weights(model.layers, weights)
    return model


def _head_layers(num_classes: int, pooling: str, sharpness: float, dropout: float, seed: int,
                 hidden: int | None = None) -> list:
    import keras

    from classifier.pooling import LogSumExpPooling2D  # imports Keras: only when a model is built

    if pooling == "lse":
        pool = LogSumExpPooling2D(sharpness=sharpness, name="class_scores")
    elif pooling == "max":
        pool = keras.layers.GlobalMaxPooling2D(name="class_scores")
    else:
        pool = keras.layers.GlobalAveragePooling2D(name="class_scores")
    hidden_layers = [] if hidden is None else [
        keras.layers.Conv2D(hidden, 1, activation="relu", name="head_hidden",
                            kernel_regularizer=keras.regularizers.L2(1e-4)),
        keras.layers.Dropout(dropout, seed=seed + 1, name="head_hidden_dropout"),
    ]
    return [
        keras.layers.Dropout(dropout, seed=seed, name="head_dropout"),
        *hidden_layers,
        # A small start: backbone activations reach the hundreds (VGG16's last block does), so a
        # Glorot 1x1 kernel would start with logits in the tens to hundreds and a huge first loss.
        keras.layers.Conv2D(num_classes, 1, name="class_map",
                            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed)),
        pool,
        keras.layers.Activation("softmax", name="probabilities"),
    ]


def _run_head(x, layers) -> list:
    """Apply the head's layers in order; return [probabilities, class_map]."""
    outputs = {}
    for layer in layers:
        x = layer(x)
        if layer.name == "class_map":
            outputs[layer.name] = x
    return [x, outputs["class_map"]]


def cut_points(model, backbone: str = DEFAULT_BACKBONE) -> list[str]:
    """Layers of ``model`` where :func:`split_model` may cut it, in network order.

    The backbone's boundaries (feature-layer head) or the multilevel head's input, then the head's
    layers before ``class_map``: every cut that leaves the upper part one input.
    """
    names = [layer.name for layer in model.layers]
    head_start = map_layer(model, backbone)
    body = [] if head_start == MULTILEVEL_INPUT else [b for b in get_backbone(backbone).boundaries if b in names]
    if head_start not in names or "class_map" not in names:
        raise ValueError(f"model must be a boxstrap classifier on the {backbone} backbone (layers "
                         f"{head_start!r} and 'class_map'). Received layers: {names}")
    head = names[names.index(head_start):names.index("class_map")]
    return list(dict.fromkeys(body + head))


def split_model(model, boundary: str, *, scores: bool = False, backbone: str = DEFAULT_BACKBONE):
    """Cut ``model`` at the output of layer ``boundary``: (lower, upper), sharing the model's layers.

    Parameters
    ----------
    model : keras.Model
        From :func:`build_classifier`.
    boundary : str
        One of :func:`cut_points`: a boundary of the backbone (feature-layer head), ``"head_features"``
        (multilevel head) or a head layer before the class map.
    scores : bool
        Make the upper part output the pooled logits ``class_scores`` (N, C) instead of the
        contract's outputs (for training with a logit loss).
    backbone : str
        The backbone ``model`` was built on.

    Returns
    -------
    lower : keras.Model
        ``image`` -> the boundary layer's output.
    upper : keras.Model
        The boundary's output -> ``[probabilities, class_map]``, or the ``class_scores``
        logits when ``scores`` is true.

    Raises
    ------
    ValueError
        If ``boundary`` is not one of :func:`cut_points`.
    """
    import keras

    valid = cut_points(model, backbone)
    if boundary not in valid:
        raise ValueError(f"boundary must name a layer before the class map, one of {valid}. "
                         f"Received: {boundary!r}")
    lower = keras.Model(model.input, model.get_layer(boundary).output, name="lower")
    upper = sub_model(model, boundary, ["class_scores"] if scores else ["probabilities", "class_map"],
                      name="upper")
    return lower, upper


def sub_model(model, start: str, ends: Sequence[str], *, name: str | None = None):
    """The part of ``model`` from layer ``start``'s output to the outputs of the layers ``ends``.

    A Keras functional sub-model sharing the layers (and weights) of ``model``; its one input
    takes what ``start`` outputs. ``start`` must be a cut of the graph (:func:`cut_points`), or
    Keras cannot trace the ends back to it alone.
    """
    import keras

    outputs = [model.get_layer(end).output for end in ends]
    return keras.Model(model.get_layer(start).output, outputs if len(outputs) > 1 else outputs[0], name=name)


def fold_standardisation(kernel: np.ndarray, bias: np.ndarray, mean: np.ndarray, std: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``(x - mean) / std`` on a 1x1 convolution's input into its kernel and bias.

    Parameters
    ----------
    kernel : (1, 1, C_in, C_out) ndarray
    bias : (C_out,) ndarray
    mean, std : (C_in,) ndarray
        Per-channel statistics the convolution was trained behind; ``std`` > 0.

    Returns
    -------
    kernel, bias : ndarray
        The convolution that gives the same output on the raw input.

    Examples
    --------
    >>> k, b = fold_standardisation(np.ones((1, 1, 2, 1)), np.zeros(1), np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    >>> k[0, 0, :, 0].tolist(), b.tolist()
    ([0.5, 0.25], [-1.0])
    """
    kernel = np.asarray(kernel, np.float64)
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if kernel.ndim != 4 or kernel.shape[:2] != (1, 1) or not mean.shape == std.shape == (kernel.shape[2],):
        raise ValueError(f"kernel must be (1, 1, C_in, C_out) with mean and std of shape (C_in,). Received: "
                         f"{kernel.shape}, {mean.shape}, {std.shape}")
    if not np.all(std > 0):
        raise ValueError("std must be > 0 in every channel.")
    folded = kernel / std[None, None, :, None]
    return folded.astype(np.float32), (np.asarray(bias, np.float64) - np.einsum("c,co->o", mean / std, kernel[0, 0])
                                       ).astype(np.float32)
