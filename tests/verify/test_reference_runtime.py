"""The reference runtimes (NeuralNetwork and ML Program) against Keras on tiny exports."""

import warnings

import numpy as np
import pytest
from PIL import Image

from classifier.backbones.vgg16 import vgg16_preprocessing
from tests.verify.conftest import SIZE
from verify.mil_runtime import MilRuntime
from verify.model_info import read_model_info
from verify.nn_runtime import NeuralNetworkRuntime
from verify.reference_runtime import reference_runtime
from verify.runtime_result import UnsupportedOperationError, image_tensor


@pytest.fixture(scope="module")
def pixels(images_dir):
    preprocessing = vgg16_preprocessing(SIZE)
    return np.stack([preprocessing.resize(Image.open(p)) for p in sorted(images_dir.glob("*.png"))])


@pytest.fixture(scope="module")
def keras_probabilities(keras_model, pixels):
    return keras_model.predict(vgg16_preprocessing(SIZE).apply(pixels), verbose=0)["probabilities"]


def _probabilities(runtime, pixels):
    rows = []
    for rgb in pixels:
        outputs = runtime.run(rgb).outputs
        table = next(v for v in outputs.values() if isinstance(v, dict))
        rows.append([table["one"], table["ten"]])
        assert outputs["classLabel"] == max(table, key=table.get)
    return np.array(rows)


class TestAgainstKeras:
    @pytest.mark.parametrize("name,atol", [("neuralnetwork", 1e-5), ("mlprogram_fp32", 1e-5),
                                           ("mlprogram_fp16", 5e-3)])
    def test_probabilities_match(self, exports, pixels, keras_probabilities, name, atol):
        runtime = reference_runtime(exports[name])
        np.testing.assert_allclose(_probabilities(runtime, pixels), keras_probabilities, atol=atol)

    def test_fp16_emulation_rounds_every_op(self, exports, pixels, keras_probabilities):
        info = read_model_info(exports["mlprogram_fp16"])
        emulated = _probabilities(MilRuntime(info), pixels)
        plain = _probabilities(MilRuntime(info, emulate_fp16=False), pixels)
        assert not np.array_equal(emulated, plain)  # the rounding after each op changes the numbers
        assert np.abs(emulated - keras_probabilities).max() < 1e-2
        intermediates = MilRuntime(info).run(pixels[0], keep_intermediates=True).intermediates
        conv = next(i.value for i in intermediates if i.op_type == "conv")
        np.testing.assert_array_equal(conv, conv.astype(np.float16).astype(np.float32))

    def test_picks_the_runtime_by_kind(self, exports):
        assert isinstance(reference_runtime(exports["neuralnetwork"]), NeuralNetworkRuntime)
        assert isinstance(reference_runtime(exports["mlprogram_fp32"]), MilRuntime)

    @pytest.mark.parametrize("name", ["neuralnetwork", "mlprogram_fp32"])
    def test_intermediates_start_with_the_input(self, exports, pixels, name):
        result = reference_runtime(exports[name]).run(pixels[0], keep_intermediates=True)
        assert result.intermediates[0].name == "image"
        assert result.intermediates[0].value.shape == (1, 3, *SIZE)
        assert len(result.intermediates) > 5

    def test_preprocessing_from_the_spec(self, exports, pixels):
        """The NeuralNetwork runtime's first value is the scaler's output: BGR plus the bias."""
        result = reference_runtime(exports["neuralnetwork"]).run(pixels[0], keep_intermediates=True)
        expected = vgg16_preprocessing(SIZE).apply(pixels[0]).transpose(2, 0, 1)[None]
        np.testing.assert_allclose(result.intermediates[0].value, expected, atol=1e-4)


class TestErrors:
    def test_wrong_kind(self, exports):
        with pytest.raises(ValueError, match="must describe a NeuralNetwork"):
            NeuralNetworkRuntime(read_model_info(exports["mlprogram_fp32"]))
        with pytest.raises(ValueError, match="must describe an ML Program"):
            MilRuntime(read_model_info(exports["neuralnetwork"]))

    def test_wrong_image_shape(self, exports):
        runtime = reference_runtime(exports["mlprogram_fp32"])
        with pytest.raises(ValueError, match=r"must have the shape of image input 'image', \(32, 32, 3\)"):
            runtime.run(np.zeros((16, 16, 3), np.uint8))
        with pytest.raises(TypeError, match="rgb must be uint8"):
            image_tensor(np.zeros((32, 32, 3), np.float32), runtime.image_input)

    def test_missing_model(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="No Core ML model"):
            reference_runtime(tmp_path / "nothing.mlpackage")

    @pytest.mark.parametrize("kind,match", [("mlprogram", "op .* has type 'slice_by_index', which the reference runtime does not implement"),
                                            ("neuralnetwork", "layer .* has type 'sliceStatic', which the reference runtime does not implement")])
    def test_unknown_op_is_named(self, tmp_path, kind, match):
        import coremltools as ct
        import keras

        image = keras.Input((8, 8, 3), name="image")
        out = keras.layers.Cropping2D(1)(keras.layers.Conv2D(2, 1)(image))
        model = keras.Model(image, keras.layers.GlobalAveragePooling2D()(out))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlmodel = ct.convert(model, inputs=[ct.ImageType(name="image", shape=(1, 8, 8, 3))], convert_to=kind,
                                 classifier_config=ct.ClassifierConfig(["a", "b"]))
        path = tmp_path / ("m.mlpackage" if kind == "mlprogram" else "m.mlmodel")
        mlmodel.save(str(path))
        with pytest.raises(UnsupportedOperationError, match=match):
            reference_runtime(path)
