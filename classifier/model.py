"""The classifier: VGG16 conv base and a fully convolutional class-map head, in one Keras model.

One forward pass gives the class probabilities and one map per class. Two heads:

``head="block5"`` (the default) is the plain class-activation-map head on ``block5_conv3``::

    image -> block1_conv1 ... block5_conv3 -> head_dropout -> class_map (1x1 conv, one filter
    per class; (H/16, W/16, C)) -> class_scores (global pooling; (C,)) -> probabilities (softmax)

``head="multilevel"`` reads three depths of the backbone, each brought to the
last map's grid (H/16, W/16) by average pooling, and classifies every cell with a small
two-layer 1x1 convolution::

    image -> block1_conv1 ... block3_conv3 -> head_block3_pool (4x4) --+
                              block4_conv3 -> head_block4_pool (2x2) --+-> head_features (concat)
                              block5_conv3 ------------------------------+
    head_features -> head_dropout -> head_hidden (1x1 conv, ReLU) -> head_hidden_dropout
    -> class_map (1x1 conv, one filter per class; (H/16, W/16, C)) -> class_scores (global
    pooling; (C,)) -> probabilities (softmax)

Why several depths, and why it is not the default: the offline starting weights
(``hed-vgg16``) were tuned for edge detection, so ``block5_conv3`` says little about colour and
texture, which is what tells a green cube from a blue rod on a busy background;
``block3_conv3`` and ``block4_conv3`` still do. Measured on the block photos (group-aware split,
224x288, frozen backbone, 2 cached views, valid / test accuracy): block5 head 0.853 / 0.953; a
1x1 head on the three depths 0.927 / 0.907 (one seed); with the hidden 1x1 layer 0.954-0.963 /
0.953-0.972 (three seeds). Its class maps also peak on the object more often in a single view
(pointing game on the 88 hand-checked photos: 0.61 block5, 0.75-0.88 multilevel). But through
``boxstrap pipeline`` (dropout 0.3; valid / test 0.927 / 0.963, training 289 s against 268 s)
its pseudo boxes were worse: CorLoc 0.534 against 0.648, rods 0.96 but cubes 0.00, the cube boxes
landing away from the cube. Boxes are what boxstrap is for, so block5 stays the default; choose
multilevel for a better classifier when the boxes come from elsewhere. In training the
concatenated features are standardised per channel; :func:`fold_standardisation` folds that into
``head_hidden`` so the saved model has none of it.

The input is already preprocessed (:class:`datasets.preprocessing.Preprocessing`); there is no
Lambda layer. Outputs are named ``probabilities`` and ``class_map`` (docs/ARCHITECTURE.md).

Why log-sum-exp pooling and (in training) one-vs-rest sigmoid losses: with a two-class softmax
over the pooled scores only the *difference* of the maps matters, so the "one" map may mean
"no rod" and light the background. Measured on the block photos (group-aware split, hed-vgg16,
224x288, 31 held-out photos with hand-checked boxes; the pointing game asks whether the
predicted class's map peaks inside the true box): LSE + softmax loss, the cube map never peaks on
the cube (pointing 0.00 for "one", 0.73-0.87 for "ten", with or without fine-tuning block5);
LSE (r=5) + sigmoid loss, frozen backbone: pointing 0.50 "one", 0.80 "ten". The sigmoid loss
makes every class map stay low on the other classes' photos, so it can only fire on its own
object. The saved model still outputs the softmax of the pooled scores (same ranking).

With the block5 head the whole network is a linear chain of layers, so :func:`split_model` can
cut it at any layer: the frozen lower part runs once over the images (cached features), the
upper part trains on them. The multilevel head can be cut at ``head_features`` or later.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from classifier.backbone import VGG16_FILTERS, build_vgg16_layers, check_input_size

log = logging.getLogger(__name__)

POOLINGS = ("lse", "max", "avg")
HEAD_LAYERS = ("head_dropout", "class_map", "class_scores", "probabilities")
# The multilevel head's inputs: a backbone layer and the average pooling that brings it to the
# block5 grid (H/16, W/16).
MULTILEVEL_TAPS = (("block3_conv3", 4), ("block4_conv3", 2), ("block5_conv3", 1))
# Each head and the layer its trainable part reads (where phase 1 of training caches features).
HEAD_INPUT = {"block5": "block5_conv3", "multilevel": "head_features"}
HEADS = tuple(HEAD_INPUT)


def build_classifier(
    num_classes: int,
    input_size: Sequence[int] = (224, 224),
    *,
    head: str = "block5",
    hidden: int = 128,
    pooling: str = "lse",
    sharpness: float = 5.0,
    dropout: float = 0.2,
    filters: Sequence[int] = VGG16_FILTERS,
    weights: str = "none",
    seed: int = 0,
):
    """Build the class-map classifier.

    Parameters
    ----------
    num_classes : int
        Number of classes, >= 2.
    input_size : (height, width)
        Each a multiple of 32; non-square sizes work.
    head : {"multilevel", "block5"}
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
    filters : 5 ints
        Backbone widths (``VGG16_FILTERS``; tiny ones for tests).
    weights : str
        Backbone starting weights, see :func:`classifier.weights.load_vgg16_weights`.
    seed : int
        Seeds the head's initialisation and dropout.

    Returns
    -------
    keras.Model
        Input ``image`` (N, H, W, 3) float32; outputs ``probabilities`` (N, C) and
        ``class_map`` (N, H/16, W/16, C), in that order.

    Raises
    ------
    ValueError
        For an invalid argument (named, with the value received).
    """
    import keras

    from classifier.weights import load_vgg16_weights

    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2. Received: {num_classes!r}")
    height, width = check_input_size(input_size)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}. Received: {pooling!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1). Received: {dropout!r}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}. Received: {head!r}")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        raise ValueError(f"hidden must be an int >= 1. Received: {hidden!r}")
    backbone = build_vgg16_layers(filters)
    image = keras.Input((height, width, 3), name="image")
    if head == "block5":
        outputs = _run_chain(image, backbone + _head_layers(num_classes, pooling, sharpness, dropout, seed))
    else:
        x, taps = image, {}
        for layer in backbone:
            x = taps[layer.name] = layer(x)
        pooled = [taps[name] if factor == 1 else
                  keras.layers.AveragePooling2D(factor, name=f"head_{name.split('_')[0]}_pool")(taps[name])
                  for name, factor in MULTILEVEL_TAPS]
        features = keras.layers.Concatenate(name="head_features")(pooled)
        outputs = _run_chain(features, _head_layers(num_classes, pooling, sharpness, dropout, seed, hidden))
    model = keras.Model(image, outputs, name="boxstrap_classifier")
    load_vgg16_weights(model.layers, weights)
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
        # A small start: VGG16's block5 activations reach the hundreds, so a Glorot 1x1 kernel
        # would start with logits in the tens to hundreds and a huge first loss.
        keras.layers.Conv2D(num_classes, 1, name="class_map",
                            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed)),
        pool,
        keras.layers.Activation("softmax", name="probabilities"),
    ]


def _run_chain(x, layers) -> dict:
    """Apply the chain; return [probabilities, class_map]."""
    outputs = {}
    for layer in layers:
        x = layer(x)
        if layer.name in ("class_map", "class_scores"):
            outputs[layer.name] = x
    return [x, outputs["class_map"]]


def chain_layers(model) -> list:
    """The model's layers after the input, in order (the chain :func:`split_model` cuts)."""
    return [layer for layer in model.layers if layer.__class__.__name__ != "InputLayer"]


def split_model(model, boundary: str, *, scores: bool = False):
    """Cut ``model`` after layer ``boundary``: (lower, upper), sharing the model's layers.

    Parameters
    ----------
    model : keras.Model
        From :func:`build_classifier`.
    boundary : str
        Name of the last layer of the lower part, e.g. ``"block4_pool"`` or ``"block5_conv3"``
        (block5 head), ``"head_features"`` or later (multilevel head).
    scores : bool
        Make the upper part output the pooled logits ``class_scores`` (N, C) instead of the
        contract's outputs (for training with a logit loss).

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
        If ``boundary`` is not a layer of the chain before the head's class convolution.
    """
    import keras

    layers = chain_layers(model)
    names = [layer.name for layer in layers]
    # The multilevel head reads three depths, so only a cut after they meet leaves one input.
    first = names.index("head_features") if "head_features" in names else 0
    if boundary not in names[first: names.index("class_map")]:
        valid = names[first: names.index("class_map")]
        raise ValueError(f"boundary must name a layer before the class map, one of {valid}. "
                         f"Received: {boundary!r}")
    cut = names.index(boundary) + 1
    lower = keras.Model(model.input, model.get_layer(boundary).output, name="lower")
    features = keras.Input(tuple(lower.output.shape[1:]), name="features")
    outputs = _run_chain(features, layers[cut:]) if not scores else _run_scores(features, layers[cut:])
    upper = keras.Model(features, outputs, name="upper")
    return lower, upper


def _run_scores(x, layers):
    for layer in layers:
        if layer.name == "probabilities":
            break
        x = layer(x)
    return x


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
