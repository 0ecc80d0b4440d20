"""Tests of classifier.backbones: the spec, the registry and the VGG16 entry."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from classifier.backbones.registry import BACKBONES, DEFAULT_BACKBONE, get_backbone
from classifier.backbones.vgg16 import VGG16, VGG16_BGR_BIAS, vgg16_layer_names, vgg16_preprocessing


class TestGetBackbone:
    def test_default_is_registered(self):
        assert get_backbone(DEFAULT_BACKBONE) is BACKBONES[DEFAULT_BACKBONE]

    @pytest.mark.parametrize("name", ["resnet50", "", None])
    def test_unknown_name_lists_the_choices(self, name):
        with pytest.raises(ValueError, match=r"backbone must be one of \['efficientnet-lite0', 'vgg16'\]. Received"):
            get_backbone(name)


class TestBackboneSpec:
    def test_default_weights_must_be_a_choice(self):
        with pytest.raises(ValueError, match="default_weights must be one of weight_choices"):
            dataclasses.replace(VGG16, default_weights="imagenet21k")

    def test_cuts_must_be_boundaries_ending_at_the_feature_layer(self):
        with pytest.raises(ValueError, match="boundaries must end at feature_layer 'block5_conv3'"):
            dataclasses.replace(VGG16, boundaries=VGG16.boundaries[:-1])
        with pytest.raises(ValueError, match=r"fine_tune_cuts must cut at boundaries; \['block4_pool'\]"):
            dataclasses.replace(VGG16, boundaries=tuple(b for b in VGG16.boundaries if b != "block4_pool"))

    def test_boundaries_end_at_the_feature_layer_in_network_order(self):
        names = vgg16_layer_names()
        assert VGG16.boundaries[-1] == VGG16.feature_layer == names[-1]
        assert list(VGG16.boundaries) == names  # a chain: every layer is a cut

    def test_boundary_before(self):
        assert VGG16.boundary_before("block5_conv1") == "block4_pool"
        assert VGG16.boundary_before("block5_conv3") == "block5_conv2"
        with pytest.raises(ValueError, match=r"one of \['block1_conv2'.*Received: 'block1_conv1'"):
            VGG16.boundary_before("block1_conv1")  # nothing before the first layer to cache

    @pytest.mark.parametrize(("size", "match"), [
        ((100, 96), r"multiple of 32 \(the vgg16 backbone halves it 5 times\).*nearest valid: \(96, 96\)"),
        ((224,), r"Received: \(224,\); nearest valid: \(224, 224\)"),
    ])
    def test_check_input_size(self, size, match):
        with pytest.raises(ValueError, match=match):
            VGG16.check_input_size(size)


class TestVGG16:
    def test_preprocessing_matches_keras_caffe_mode(self):
        rgb = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
        expected = keras.applications.vgg16.preprocess_input(rgb.astype(np.float32))
        np.testing.assert_allclose(vgg16_preprocessing((8, 8)).apply(rgb), expected, atol=1e-4)

    def test_preprocessing_is_the_caffe_one(self):
        pre = vgg16_preprocessing((4, 6))
        assert (pre.input_size, pre.color_order, pre.bias, pre.scale) == ((4, 6), "BGR", VGG16_BGR_BIAS, 1.0)
        assert VGG16.preprocessing((4, 6)) == pre

    def test_build_returns_every_layer_and_the_feature_stride_holds(self):
        image = keras.Input((64, 96, 3))
        taps = VGG16.build(image, (2, 2, 2, 2, 2))
        assert list(taps) == vgg16_layer_names()
        feature = taps[VGG16.feature_layer]
        assert tuple(feature.shape[1:3]) == (64 // VGG16.feature_stride, 96 // VGG16.feature_stride)
        for name, factor in VGG16.multilevel_taps:
            assert tuple(taps[name].shape[1:3]) == (64 // VGG16.feature_stride * factor,
                                                    96 // VGG16.feature_stride * factor)

    def test_none_weights_leave_random_initialisation(self):
        layers = [keras.layers.Conv2D(2, 3, name="block1_conv1")]
        layers[0].build((None, 8, 8, 3))
        before = layers[0].get_weights()[0].copy()
        assert VGG16.load_weights(layers, "none").startswith("none")
        np.testing.assert_array_equal(layers[0].get_weights()[0], before)
        assert VGG16.resolve_weights("none") is None
