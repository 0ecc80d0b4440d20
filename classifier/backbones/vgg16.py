"""The VGG16 backbone spec: the seed's network, with layers named like ``keras.applications.VGG16``.

The layers (``block1_conv1`` ... ``block5_conv3``, ``block{b}_pool``) are the same as Keras'
``VGG16(include_top=False)``, so weight files written by Keras load by layer name
(:mod:`classifier.backbones.vgg16_weights`). The backbone stops at ``block5_conv3``: the
class-map head sits before the last pooling, on a grid of 16x16-pixel cells. The network is a
chain, so it may be cut after any layer up to ``block5_conv3``.

``filters`` scales the widths: the tests build a tiny VGG-shaped network with the same names.
This file and the weights reader beside it are the only places VGG16's layer names and its
preprocessing are written down.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classifier.backbones.backbone_spec import BackboneSpec
from datasets.preprocessing import Preprocessing

__all__ = ["VGG16", "VGG16_BGR_BIAS", "VGG16_BLOCKS", "build_vgg16_layers", "vgg16_layer_names",
           "vgg16_preprocessing"]

VGG16_BLOCKS = (2, 2, 3, 3, 3)
VGG16_FILTERS = (64, 128, 256, 512, 512)
# The backbone stops at block5_conv3: the class-map head sits before the last pooling.
LAST_LAYER = "block5_conv3"
# Keras' VGG16 "caffe" preprocessing: RGB->BGR, then the ImageNet mean subtracted per BGR channel.
VGG16_BGR_BIAS = (-103.939, -116.779, -123.68)


def vgg16_layer_names(*, include_last_pool: bool = False) -> list[str]:
    """Names of the VGG16 base layers in order (``block1_conv1``, ..., ``block5_conv3``).

    Examples
    --------
    >>> vgg16_layer_names()[:3]
    ['block1_conv1', 'block1_conv2', 'block1_pool']
    """
    names = []
    for block, convs in enumerate(VGG16_BLOCKS, start=1):
        names += [f"block{block}_conv{i}" for i in range(1, convs + 1)]
        if block < len(VGG16_BLOCKS) or include_last_pool:
            names.append(f"block{block}_pool")
    return names


def build_vgg16_layers(filters: Sequence[int] = VGG16_FILTERS, *, include_last_pool: bool = False) -> list:
    """Build the (unconnected) VGG16 base layers, ``block1_conv1`` to ``block5_conv3``.

    Parameters
    ----------
    filters : 5 ints
        Filters of the convolutions in each block; ``VGG16_FILTERS`` is the real network,
        something like ``(4, 4, 8, 8, 8)`` a tiny stand-in with the same layer names.
    include_last_pool : bool
        Append ``block5_pool`` (the plain ``VGG16(include_top=False)`` layout, used by the
        benchmark's reference forward pass).

    Returns
    -------
    list of keras.layers.Layer
        3x3 ReLU convolutions (padding "same") and 2x2 max pools, in order.

    Raises
    ------
    ValueError
        If ``filters`` is not 5 positive ints.
    """
    import keras

    filters = tuple(filters)
    if len(filters) != len(VGG16_BLOCKS) or any(not isinstance(f, int) or f < 1 for f in filters):
        raise ValueError(f"filters must be 5 positive ints, one per VGG16 block. Received: {filters}")
    layers = []
    for name in vgg16_layer_names(include_last_pool=include_last_pool):
        block = int(name[5])
        if "_conv" in name:
            layers.append(keras.layers.Conv2D(filters[block - 1], 3, padding="same", activation="relu",
                                              name=name))
        else:
            layers.append(keras.layers.MaxPooling2D(2, strides=2, name=name))
    return layers


def build_vgg16(image: Any, filters: Sequence[int] = VGG16_FILTERS) -> dict[str, Any]:
    """Apply the VGG16 base layers to ``image``; every layer's output by name, in order.

    Parameters
    ----------
    image : keras.KerasTensor
        (N, H, W, 3), preprocessed (:func:`vgg16_preprocessing`).
    filters : 5 ints
        As for :func:`build_vgg16_layers`.

    Returns
    -------
    dict
        ``{"block1_conv1": tensor, ..., "block5_conv3": tensor}``.
    """
    outputs, x = {}, image
    for layer in build_vgg16_layers(filters):
        x = outputs[layer.name] = layer(x)
    return outputs


def vgg16_preprocessing(input_size: tuple[int, int] = (224, 224)) -> Preprocessing:
    """VGG16's ImageNet preprocessing (BGR, mean subtracted, scale 1) at ``input_size``.

    Examples
    --------
    >>> import numpy as np
    >>> vgg16_preprocessing((32, 64)).apply(np.zeros((32, 64, 3), np.uint8))[0, 0]
    array([-103.939, -116.779, -123.68 ], dtype=float32)
    """
    return Preprocessing(input_size=input_size, color_order="BGR", bias=VGG16_BGR_BIAS, scale=1.0)


def _resolve_weights(weights: str | os.PathLike) -> Path | None:
    from classifier.backbones.vgg16_weights import resolve_weights

    return resolve_weights(weights)


def _load_weights(layers: Sequence[Any], weights: str | os.PathLike) -> str:
    from classifier.backbones.vgg16_weights import load_vgg16_weights

    return load_vgg16_weights(layers, weights)


def _fine_tune_cuts() -> dict[str, str]:
    """Each VGG16 convolution after the first, with the layer before it (the chain's cut)."""
    names = vgg16_layer_names()
    return {name: names[i - 1] for i, name in enumerate(names) if "_conv" in name and i > 0}


VGG16 = BackboneSpec(
    name="vgg16",
    widths=VGG16_FILTERS,
    build=build_vgg16,
    preprocessing=vgg16_preprocessing,
    weight_choices=("hed-vgg16", "imagenet", "none"),
    default_weights="hed-vgg16",
    resolve_weights=_resolve_weights,
    load_weights=_load_weights,
    feature_layer=LAST_LAYER,
    feature_stride=16,
    size_multiple=32,
    boundaries=tuple(vgg16_layer_names()),  # a chain: every layer is a cut
    multilevel_taps=(("block3_conv3", 4), ("block4_conv3", 2), ("block5_conv3", 1)),
    fine_tune_cuts=_fine_tune_cuts(),
)
