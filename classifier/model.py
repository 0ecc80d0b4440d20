"""The classifier: VGG16 conv base and a fully convolutional class-map head, in one Keras model.

One forward pass gives the class probabilities and one map per class::

    image (H, W, 3) -> block1_conv1 ... block5_conv3 -> head_dropout -> class_map (1x1 conv,
    one filter per class; (H/16, W/16, C)) -> class_scores (global pooling; (C,))
    -> probabilities (softmax)

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

The whole network is a linear chain of layers, so :func:`split_model` can cut it at any layer:
the frozen lower part runs once over the images (cached features), the upper part trains on them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from classifier.backbone import VGG16_FILTERS, build_vgg16_layers, check_input_size

log = logging.getLogger(__name__)

POOLINGS = ("lse", "max", "avg")
HEAD_LAYERS = ("head_dropout", "class_map", "class_scores", "probabilities")


def build_classifier(
    num_classes: int,
    input_size: Sequence[int] = (224, 224),
    *,
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
    pooling : {"lse", "max", "avg"}
        Global pooling of each class map into its score: log-sum-exp (smooth max, see
        :mod:`classifier.pooling`), max or average.
    sharpness : float
        ``r`` of log-sum-exp pooling.
    dropout : float
        Dropout rate before the 1x1 class convolution, in [0, 1).
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
    layers = build_vgg16_layers(filters) + _head_layers(num_classes, pooling, sharpness, dropout, seed)
    image = keras.Input((height, width, 3), name="image")
    outputs = _run_chain(image, layers)
    model = keras.Model(image, outputs, name="boxstrap_classifier")
    load_vgg16_weights(model.layers, weights)
    return model


def _head_layers(num_classes: int, pooling: str, sharpness: float, dropout: float, seed: int) -> list:
    import keras

    from classifier.pooling import LogSumExpPooling2D  # imports Keras: only when a model is built

    if pooling == "lse":
        pool = LogSumExpPooling2D(sharpness=sharpness, name="class_scores")
    elif pooling == "max":
        pool = keras.layers.GlobalMaxPooling2D(name="class_scores")
    else:
        pool = keras.layers.GlobalAveragePooling2D(name="class_scores")
    return [
        keras.layers.Dropout(dropout, seed=seed, name="head_dropout"),
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
        Name of the last layer of the lower part, e.g. ``"block4_pool"`` or ``"block5_conv3"``.
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
    if boundary not in names or names.index(boundary) >= names.index("class_map"):
        valid = names[: names.index("class_map")]
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
