import numpy as np
import pytest

from classifier.backbones.vgg16 import vgg16_preprocessing
from verify.divergence import INPUT_NAME, locate_divergence, suspect_preprocessing
from verify.runtime_result import Intermediate


def _keras_like(values):
    return [(name, "Layer", value) for name, value in values]


class TestLocateDivergence:
    def setup_method(self):
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(1, 4, 4, 3)).astype(np.float32)
        self.conv = rng.normal(size=(1, 4, 4, 5)).astype(np.float32)
        self.probs = np.array([[0.3, 0.7]], np.float32)

    def _runtime(self, conv):
        return [Intermediate("image", "input", self.x.transpose(0, 3, 1, 2) * 2),  # raw, not the match
                Intermediate("biased", "add", self.x.transpose(0, 3, 1, 2)),
                Intermediate("conv", "conv", conv.transpose(0, 3, 1, 2)),
                Intermediate("softmax", "softmax", self.probs)]

    def test_everything_matches(self):
        keras = _keras_like([(INPUT_NAME, self.x), ("conv1", self.conv), ("probs", self.probs)])
        assert locate_divergence(keras, self._runtime(self.conv), rtol=1e-3) is None

    def test_names_the_first_diverging_layer(self):
        keras = _keras_like([(INPUT_NAME, self.x), ("conv1", self.conv), ("probs", self.probs)])
        found = locate_divergence(keras, self._runtime(self.conv + 1.0), rtol=1e-3)
        assert found["keras_layer"] == "conv1" and found["coreml_op"] == "conv"
        assert found["last_matching_layer"]["coreml_op"] == "biased"
        assert found["max_abs_diff"] == pytest.approx(1.0, abs=1e-5)

    def test_a_side_branch_run_earlier_by_core_ml_still_matches(self):
        # Keras lists the pooled tap of an early block after later layers (the multilevel head);
        # Core ML may run it right after its block. Still a match, and later layers still match.
        tap = self.x.mean(axis=(1, 2), keepdims=True)
        runtime = self._runtime(self.conv)
        runtime.insert(2, Intermediate("tap", "avg_pool", tap.transpose(0, 3, 1, 2)))
        keras = _keras_like([(INPUT_NAME, self.x), ("conv1", self.conv), ("tap", tap), ("probs", self.probs)])
        assert locate_divergence(keras, runtime, rtol=1e-3) is None
        # A wrong tap is still found.
        runtime[2] = Intermediate("tap", "avg_pool", (tap + 1.0).transpose(0, 3, 1, 2))
        found = locate_divergence(keras, runtime, rtol=1e-3)
        assert found["keras_layer"] == "tap" and found["last_matching_layer"]["keras_layer"] == "conv1"

    def test_layers_without_counterpart_are_skipped(self):
        keras = _keras_like([(INPUT_NAME, self.x), ("odd", np.zeros((1, 9))), ("probs", self.probs)])
        assert locate_divergence(keras, self._runtime(self.conv), rtol=1e-3) is None


class TestFoldedBatchNorm:
    """coremltools folds a BatchNormalization into the convolution before it: Core ML has no value
    for the convolution alone, and the pair is judged by the normalised output."""

    def setup_method(self):
        rng = np.random.default_rng(1)
        self.x = rng.normal(size=(1, 4, 4, 3)).astype(np.float32)
        self.conv = rng.normal(size=(1, 4, 4, 5)).astype(np.float32)
        self.bn = self.conv * 2.0 + 0.5
        self.relu = np.clip(self.bn, 0, 6)
        self.keras = [(INPUT_NAME, "Input", self.x), ("dw", "DepthwiseConv2D", self.conv),
                      ("dw_bn", "BatchNormalization", self.bn), ("dw_relu", "ReLU", self.relu)]

    def _runtime(self, bn):
        return [Intermediate("image", "input", self.x.transpose(0, 3, 1, 2)),
                Intermediate("dw_bn_batchnorm_add", "conv", bn.transpose(0, 3, 1, 2)),
                Intermediate("dw_relu_Relu6", "relu6", np.clip(bn, 0, 6).transpose(0, 3, 1, 2))]

    def test_a_folded_pair_matches(self):
        assert locate_divergence(self.keras, self._runtime(self.bn), rtol=1e-3) is None

    def test_a_fault_in_the_pair_names_its_first_layer(self):
        found = locate_divergence(self.keras, self._runtime(self.bn + 0.1), rtol=1e-3)
        assert (found["keras_layer"], found["keras_layer_type"]) == ("dw", "DepthwiseConv2D")
        assert found["folded_with"] == "dw_bn" and found["coreml_op"] == "dw_bn_batchnorm_add"
        assert found["last_matching_layer"]["keras_layer"] == INPUT_NAME

    def test_only_a_batch_norm_is_folded(self):
        keras = [(INPUT_NAME, "Input", self.x), ("dw", "DepthwiseConv2D", self.conv), ("dw_relu", "ReLU", self.bn)]
        found = locate_divergence(keras, self._runtime(self.bn), rtol=1e-3)
        assert found["keras_layer"] == "dw" and found["folded_with"] is None


class TestSuspectPreprocessing:
    def test_names_the_mistake_that_reproduces_the_outputs(self):
        pre = vgg16_preprocessing((2, 2))
        pixels = np.random.default_rng(0).integers(0, 256, (3, 2, 2, 3), dtype=np.uint8)

        def predict(x):  # a "model" whose output depends on every input value
            s = x.reshape(len(x), -1).sum(axis=1, keepdims=True) / 1000.0
            e = np.exp(np.concatenate([s, -s], axis=1))
            return e / e.sum(axis=1, keepdims=True)

        keras = predict(pre.apply(pixels))
        bias = np.asarray(pre.bias, np.float32)
        cases = {"bias applied twice": predict(pre.apply(pixels) + bias),
                 "bias missing (not applied)": predict(pre.apply(pixels) - bias),
                 "class labels reversed": keras[:, ::-1]}
        for cause, coreml in cases.items():
            assert suspect_preprocessing(predict, pixels, pre, keras, coreml, atol=1e-6)["cause"] == cause
        assert suspect_preprocessing(predict, pixels, pre, keras, keras * 0.5, atol=1e-6) is None
