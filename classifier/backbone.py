"""The VGG16 convolutional base, as a list of Keras layers named like ``keras.applications.VGG16``.

The layers are built as a plain list (``block1_conv1`` ... ``block5_conv3``, ``block{b}_pool``) so
the classifier can run any stretch of them on its own: the frozen lower part once over the images
(cached features), the trainable upper part on those cached features. The same names as Keras'
``VGG16(include_top=False)`` let weight files written by Keras load by layer name.

``filters`` scales the widths: the tests build a tiny VGG-shaped network with the same names.
"""

from __future__ import annotations

from collections.abc import Sequence

VGG16_BLOCKS = (2, 2, 3, 3, 3)
VGG16_FILTERS = (64, 128, 256, 512, 512)
# The backbone stops at block5_conv3: the class-map head sits before the last pooling.
LAST_LAYER = "block5_conv3"


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


def check_input_size(input_size: Sequence[int]) -> tuple[int, int]:
    """Return ``(height, width)`` as ints if both are positive multiples of 32.

    Raises
    ------
    ValueError
        Naming the size received and the nearest valid one.
    """
    size = tuple(int(v) for v in input_size)
    if len(size) != 2 or any(v < 32 or v % 32 for v in size):
        nearest = tuple(max(32, round(int(v) / 32) * 32) for v in size) if len(size) == 2 else (224, 224)
        raise ValueError(
            f"input_size must be (height, width), each a positive multiple of 32 (VGG16 halves it 5 "
            f"times). Received: {tuple(input_size)}; nearest valid: {nearest}"
        )
    return size
