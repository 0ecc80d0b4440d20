"""Tests of classifier.model, the VGG16 backbone spec and classifier.pooling with a tiny backbone."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from classifier.backbones.vgg16 import VGG16, build_vgg16_layers, vgg16_layer_names
from classifier.model import build_classifier, fold_standardisation, split_model
from classifier.pooling import LogSumExpPooling2D

TINY = (4, 4, 8, 8, 8)


class TestBackbone:
    def test_keras_vgg16_layer_names(self):
        reference = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
        expected = [layer.name for layer in reference.layers[1:]]
        assert vgg16_layer_names(include_last_pool=True) == expected
        assert [layer.name for layer in build_vgg16_layers(include_last_pool=True)] == expected

    def test_bad_filters(self):
        with pytest.raises(ValueError, match="filters must be 5 positive ints"):
            build_vgg16_layers((4, 4, 8))

    @pytest.mark.parametrize("size", [(224, 288), (32, 64), [288, 384]])
    def test_valid_input_sizes(self, size):
        assert VGG16.check_input_size(size) == tuple(size)

    @pytest.mark.parametrize("size", [(240, 320), (16, 32), (224,)])
    def test_invalid_input_sizes(self, size):
        with pytest.raises(ValueError, match="multiple of 32"):
            VGG16.check_input_size(size)


class TestLogSumExpPooling2D:
    def test_between_mean_and_max(self):
        x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype("float32")
        mean, peak = x.mean(axis=(1, 2)), x.max(axis=(1, 2))
        out = np.asarray(LogSumExpPooling2D(sharpness=2.0)(x))
        assert out.shape == (2, 5)
        assert np.all(out >= mean - 1e-5) and np.all(out <= peak + 1e-5)

    def test_limits(self):
        x = np.random.default_rng(1).normal(size=(1, 4, 4, 2)).astype("float32")
        np.testing.assert_allclose(LogSumExpPooling2D(sharpness=1e-4)(x), x.mean(axis=(1, 2)), atol=1e-3)
        np.testing.assert_allclose(LogSumExpPooling2D(sharpness=1e4)(x), x.max(axis=(1, 2)), atol=1e-3)

    def test_stable_for_large_values(self):
        x = np.full((1, 2, 2, 1), 1e4, "float32")
        np.testing.assert_allclose(LogSumExpPooling2D(sharpness=10.0)(x), [[1e4]])

    @pytest.mark.parametrize("bad", [0, -1.0, "5"])
    def test_bad_sharpness(self, bad):
        with pytest.raises(ValueError, match="sharpness must be a number > 0"):
            LogSumExpPooling2D(sharpness=bad)


class TestBuildClassifier:
    @pytest.mark.parametrize("pooling", ["lse", "max", "avg"])
    def test_contract(self, pooling):
        model = build_classifier(3, (32, 64), backbone="vgg16", filters=TINY, pooling=pooling)
        assert model.input.name == "image" or model.layers[0].name == "image"
        assert model.output_names == ["probabilities", "class_map"]
        probabilities, class_map = model.predict(np.zeros((2, 32, 64, 3), "float32"), verbose=0)
        assert probabilities.shape == (2, 3) and class_map.shape == (2, 2, 4, 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
        assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)

    def test_probabilities_are_the_softmax_of_the_pooled_class_map(self):
        model = build_classifier(2, (32, 32), backbone="vgg16", filters=TINY, pooling="lse", sharpness=3.0)
        x = np.random.default_rng(0).normal(0, 50, (2, 32, 32, 3)).astype("float32")
        probabilities, class_map = model.predict(x, verbose=0)
        scores = np.asarray(LogSumExpPooling2D(sharpness=3.0)(class_map))
        expected = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)

    @pytest.mark.parametrize("pooling", ["lse", "avg"])
    def test_saves_and_loads_in_safe_mode(self, tmp_path, pooling):
        model = build_classifier(2, (32, 32), backbone="vgg16", filters=TINY, pooling=pooling)
        x = np.random.default_rng(0).normal(0, 50, (1, 32, 32, 3)).astype("float32")
        model.save(tmp_path / "model.keras")
        loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
        for a, b in zip(model.predict(x, verbose=0), loaded.predict(x, verbose=0), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    @pytest.mark.parametrize(("kwargs", "match"), [
        ({"num_classes": 1}, "num_classes must be an int >= 2"),
        ({"input_size": (30, 32)}, "multiple of 32"),
        ({"pooling": "median"}, "pooling must be one of"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"head": "dense"}, "head must be one of"),
        ({"hidden": 0}, "hidden must be an int >= 1"),
    ])
    def test_invalid_arguments(self, kwargs, match):
        args = {"num_classes": 2, "input_size": (32, 32), "backbone": "vgg16", "filters": TINY, **kwargs}
        with pytest.raises(ValueError, match=match):
            build_classifier(**args)


class TestFoldStandardisation:
    def test_folded_convolution_on_raw_features_equals_the_standardised_one(self):
        rng = np.random.default_rng(0)
        x = rng.normal(3, 20, (2, 3, 4, 5)).astype("float32")
        mean, std = rng.normal(3, 1, 5), rng.uniform(5, 30, 5)
        conv = keras.layers.Conv2D(6, 1)
        expected = np.asarray(conv((x - mean) / std)).astype("float64")
        kernel, bias = fold_standardisation(*conv.get_weights(), mean, std)
        conv.set_weights([kernel, bias])
        np.testing.assert_allclose(np.asarray(conv(x)), expected, rtol=1e-4, atol=1e-4)

    def test_bad_shapes_and_std(self):
        with pytest.raises(ValueError, match=r"kernel must be \(1, 1, C_in, C_out\)"):
            fold_standardisation(np.ones((3, 3, 2, 1)), np.zeros(1), np.zeros(2), np.ones(2))
        with pytest.raises(ValueError, match="kernel must be"):
            fold_standardisation(np.ones((1, 1, 2, 1)), np.zeros(1), np.zeros(3), np.ones(3))
        with pytest.raises(ValueError, match="std must be > 0"):
            fold_standardisation(np.ones((1, 1, 2, 1)), np.zeros(1), np.zeros(2), np.array([1.0, 0.0]))


class TestSplitModel:
    @pytest.mark.parametrize("boundary", ["head_features", "head_hidden"])
    def test_multilevel_head_is_cut_where_its_inputs_meet(self, boundary):
        model = build_classifier(2, (32, 64), backbone="vgg16", filters=TINY, head="multilevel", hidden=8)
        x = np.random.default_rng(0).normal(0, 50, (2, 32, 64, 3)).astype("float32")
        lower, upper = split_model(model, boundary, backbone="vgg16")
        for a, b in zip(model.predict(x, verbose=0), upper.predict(lower.predict(x, verbose=0), verbose=0),
                        strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        with pytest.raises(ValueError, match=r"one of \['head_features'"):
            split_model(model, "block4_pool", backbone="vgg16")

    @pytest.mark.parametrize("boundary", ["block4_pool", "block5_conv2", "block5_conv3"])
    def test_lower_then_upper_equals_the_model(self, boundary):
        model = build_classifier(2, (32, 64), backbone="vgg16", filters=TINY)
        x = np.random.default_rng(0).normal(0, 50, (2, 32, 64, 3)).astype("float32")
        lower, upper = split_model(model, boundary, backbone="vgg16")
        for a, b in zip(model.predict(x, verbose=0), upper.predict(lower.predict(x, verbose=0), verbose=0),
                        strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    def test_scores_are_logits(self):
        model = build_classifier(2, (32, 32), backbone="vgg16", filters=TINY)
        x = np.random.default_rng(0).normal(0, 50, (2, 32, 32, 3)).astype("float32")
        lower, upper = split_model(model, "block5_conv3", scores=True, backbone="vgg16")
        logits = np.asarray(upper(lower(x)))
        probabilities = model.predict(x, verbose=0)[0]
        np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), probabilities, rtol=1e-4)

    def test_bad_boundary(self):
        model = build_classifier(2, (32, 32), backbone="vgg16", filters=TINY)
        with pytest.raises(ValueError, match="boundary must name a layer before the class map"):
            split_model(model, "class_map", backbone="vgg16")


@pytest.mark.slow
def test_lse_model_converts_to_core_ml():
    import coremltools as ct

    model = build_classifier(2, (32, 64), backbone="vgg16", filters=TINY, pooling="lse")
    converted = ct.convert(model, inputs=[ct.TensorType(name="image", shape=(1, 32, 64, 3))],
                           convert_to="mlprogram")
    ops = {op.op_type for f in converted._mil_program.functions.values() for op in f.operations}
    assert {"reduce_max", "exp", "reduce_mean", "log", "softmax"} <= ops
    assert len(converted.get_spec().description.output) == 2


class TestSubModel:
    def test_cuts_a_graph_with_a_residual_add(self):
        """The cut follows the graph: a branch and an addition after the start are kept."""
        from classifier.model import sub_model

        image = keras.Input((8, 8, 3), name="image")
        a = keras.layers.Conv2D(4, 3, padding="same", name="a")(image)
        b = keras.layers.Conv2D(4, 3, padding="same", name="b")(a)
        added = keras.layers.Add(name="add")([a, b])
        out = keras.layers.Conv2D(2, 1, name="out")(added)
        model = keras.Model(image, out)
        upper = sub_model(model, "a", ["out"])
        assert {layer.name for layer in upper.layers} >= {"b", "add", "out"}
        assert "a" not in {layer.name for layer in upper.layers}
        x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
        lower = keras.Model(image, a)
        np.testing.assert_allclose(upper.predict(lower.predict(x, verbose=0), verbose=0),
                                   model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)

    def test_split_names_the_cut_points_of_the_backbone(self):
        from classifier.model import cut_points

        model = build_classifier(2, (32, 32), backbone="vgg16", filters=TINY)
        assert cut_points(model, "vgg16") == [*vgg16_layer_names(), "head_dropout"]
