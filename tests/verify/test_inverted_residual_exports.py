"""The reference runtimes on an EfficientNet-Lite-like network, exported by ``classifier.export``.

A tiny network of exactly EfficientNet-Lite0's layer kinds (``Conv2D``/``DepthwiseConv2D`` with
``padding="same"`` and no bias, ``BatchNormalization(epsilon=1e-3)``, ``ReLU(6)``, a residual
``Add``) under boxstrap's class-map head, with the backbone's preprocessing (RGB, scale 1/128,
bias -127/128), at an even-sized and an odd-sized input so that TensorFlow's asymmetric ``same``
padding (the odd pixel at the bottom/right) is exercised in stride-2 convolutions. Exported to
both formats in FP32 and FP16 by the project's exporter.

What coremltools 9.0 makes of it (checked in :class:`TestExportedOps`): the batch
normalisations are folded into the convolutions' weights and bias (no ``batch_norm`` op or
``batchnorm`` layer); ML Program: ``conv`` (depthwise: ``groups`` = channels), ``relu6``,
``add``; NeuralNetwork: ``convolution`` (``nGroups`` = channels), ReLU6 as ``activation`` ReLU,
``activation`` linear (-x), ``unary`` threshold (max(x, -6)), ``activation`` linear (-x), and
``add``.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from datasets.preprocessing import Preprocessing
from tests.verify.conftest import LABELS, make_images
from verify.divergence import keras_layer_outputs, locate_divergence
from verify.model_info import read_model_info
from verify.nn_runtime import neural_network
from verify.reference_runtime import reference_runtime
from verify.static_checks import static_checks
from verify.verify import verify_model
from verify.verify_config import VerifyConfig

SIZES = [(32, 48), (36, 44)]  # even and odd: stride-2 "same" convolutions pad 0/1 and 1/1, then 1/2 and 2/2


def has_context(size: tuple[int, int]) -> bool:
    """The even size also gets the context path (a stride-2 block upsampled back and concatenated, as
    the default head reads EfficientNet-Lite0's block 13); on the odd size the grids would not meet."""
    return size[0] % 8 == 0 and size[1] % 8 == 0
EXPORTS = [("mlprogram", "float32"), ("mlprogram", "float16"), ("neuralnetwork", "float32"),
           ("neuralnetwork", "float16")]
EXTENSIONS = {"mlprogram": ".mlpackage", "neuralnetwork": ".mlmodel"}
DEPTHWISE_CHANNELS = 16


def lite_preprocessing(size: tuple[int, int]) -> Preprocessing:
    """EfficientNet-Lite's input: RGB, ``(pixel - 127) / 128``."""
    return Preprocessing(size, color_order="RGB", bias=(-127 / 128,) * 3, scale=1 / 128)


def build_lite_model(size: tuple[int, int], seed: int = 0):
    """Stem, an inverted-residual block with a residual add (depthwise 3x3, stride 1) and one without
    (depthwise 5x5, stride 2), then the project's class-map head (``classifier.model``'s); with
    :func:`has_context`, the head reads those features and a deeper stride-2 convolution's, upsampled
    (``context_upsample``) and concatenated (``head_context``), as ``build_classifier`` does."""
    import keras

    from classifier.model import _head_layers, _run_head

    keras.utils.set_random_seed(seed)

    def conv_bn(x, filters, kernel, name, *, strides=1, depthwise=False, relu=True):
        if depthwise:
            x = keras.layers.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
        else:
            x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=name)(x)
        x = keras.layers.BatchNormalization(epsilon=1e-3, name=f"{name}_bn")(x)
        return keras.layers.ReLU(6.0, name=f"{name}_relu")(x) if relu else x

    image = keras.Input((*size, 3), name="image")
    stem = conv_bn(image, 8, 3, "stem", strides=2)
    x = conv_bn(stem, DEPTHWISE_CHANNELS, 1, "b1_expand")
    x = conv_bn(x, None, 3, "b1_dw", depthwise=True)
    x = conv_bn(x, 8, 1, "b1_project", relu=False)
    x = keras.layers.Add(name="b1_add")([stem, x])
    x = conv_bn(x, DEPTHWISE_CHANNELS, 1, "b2_expand")
    x = conv_bn(x, None, 5, "b2_dw", strides=2, depthwise=True)
    features = conv_bn(x, 12, 1, "b2_project", relu=False)
    if has_context(size):
        context = conv_bn(features, 8, 3, "b3", strides=2)
        upsampled = keras.layers.UpSampling2D(2, name="context_upsample")(context)
        features = keras.layers.Concatenate(name="head_context")([features, upsampled])
    outputs = _run_head(features, _head_layers(len(LABELS), "lse", 5.0, 0.0, seed))
    model = keras.Model(image, outputs, name="lite_like")
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # trained-looking statistics, so that folding them is not a no-op
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.gamma.shape
            layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.3, shape),
                               rng.normal(0, 0.3, shape), rng.uniform(0.5, 2.0, shape)])
    return model


def make_decisive(model, x: np.ndarray) -> None:
    """Set the class map so that the images split between the classes with clear margins (FP16 must
    agree on every top-1) and small class maps (large ones amplify rounding): the two classes read
    the features' main direction of variation between images, with opposite signs, and are split
    at the widest gap between the images' score differences."""
    import keras

    layer = model.get_layer("class_map")
    pooled = np.asarray(keras.Model(model.input, layer.input)(x)).mean(axis=(1, 2))
    direction = np.linalg.svd(pooled - pooled.mean(axis=0), full_matrices=False)[2][0]
    gain = 1.0 / np.std(pooled @ direction)
    kernel = (np.stack([-direction, direction], axis=1) * gain / 2)[None, None].astype(np.float32)
    layer.set_weights([kernel, np.zeros(2, np.float32)])
    margins = np.sort(np.diff(np.asarray(keras.Model(model.input, model.get_layer("class_scores").output)(x)))[:, 0])
    split = max(range(len(margins) // 4, len(margins) - len(margins) // 4 - 1), key=lambda i: margins[i + 1] - margins[i])
    threshold = float(margins[split] + margins[split + 1]) / 2  # adding b to a map adds b to its score
    layer.set_weights([kernel, np.array([threshold / 2, -threshold / 2], np.float32)])


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_images(tmp_path_factory.mktemp("lite_images") / "images")


@pytest.fixture(scope="module", params=SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def lite(request, images, tmp_path_factory):
    """A model directory of the tiny Lite-like model, its four exports and Keras' outputs."""
    from classifier.export import ExportConfig, export_coreml

    size = request.param
    preprocessing = lite_preprocessing(size)
    pixels = np.stack([preprocessing.resize(Image.open(p)) for p in sorted(images.glob("*.png"))])
    model = build_lite_model(size)
    make_decisive(model, preprocessing.apply(pixels))
    directory = tmp_path_factory.mktemp(f"lite_{size[0]}x{size[1]}")
    model.save(directory / "model.keras")
    preprocessing.save(directory)
    (directory / "labels.json").write_text(json.dumps(list(LABELS)))
    exports = {}
    for precision in ("float32", "float16"):
        result = export_coreml(directory, directory / "coreml",
                               ExportConfig(format="both", precision=precision, heatmap=True, name=precision))
        exports.update({(fmt, precision): path for fmt, path in result.paths.items()})
    probabilities, class_maps = model.predict(preprocessing.apply(pixels), verbose=0)
    return SimpleNamespace(size=size, dir=directory, model=model, preprocessing=preprocessing, pixels=pixels,
                           exports=exports, probabilities=probabilities, class_maps=class_maps)


def _run(path: Path, pixels: np.ndarray, class_map_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    runtime = reference_runtime(path)
    probabilities, class_maps = [], []
    for rgb in pixels:
        outputs = runtime.run(rgb).outputs
        probabilities.append([outputs["classLabelProbs"][label] for label in LABELS])
        class_maps.append(np.asarray(outputs["class_map"]).reshape(class_map_shape))
    return np.array(probabilities), np.stack(class_maps)


class TestExportedOps:
    def test_ml_program(self, lite):
        ops = list(read_model_info(lite.exports["mlprogram", "float32"]).program.functions["main"].operations)
        depthwise = [op for op in ops if op.op_type == "conv" and int(op.inputs["groups"].val) > 1]
        assert [(op.inputs["weight"].shape, tuple(op.inputs["strides"].val)) for op in depthwise] == [
            ((DEPTHWISE_CHANNELS, 1, 3, 3), (1, 1)), ((DEPTHWISE_CHANNELS, 1, 5, 5), (2, 2))]
        assert all(op.inputs["pad_type"].val == "same" and int(op.inputs["groups"].val) == DEPTHWISE_CHANNELS
                   for op in depthwise)
        kinds = {op.op_type for op in ops}
        assert {"relu6", "add", "mul"} <= kinds
        assert "batch_norm" not in kinds  # folded into the convolutions by coremltools
        assert ({"tile", "concat"} <= kinds) == has_context(lite.size)  # the nearest upsampling, as converted

    def test_neural_network(self, lite):
        layers = neural_network(read_model_info(lite.exports["neuralnetwork", "float32"]).spec).layers
        depthwise = [layer.convolution for layer in layers
                     if layer.WhichOneof("layer") == "convolution" and layer.convolution.nGroups > 1]
        assert [(c.nGroups, tuple(c.kernelSize), tuple(c.stride), c.WhichOneof("ConvolutionPaddingType"))
                for c in depthwise] == [(DEPTHWISE_CHANNELS, (3, 3), (1, 1), "same"),
                                        (DEPTHWISE_CHANNELS, (5, 5), (2, 2), "same")]
        kinds = {layer.WhichOneof("layer") for layer in layers}
        assert {"add", "unary", "activation"} <= kinds
        assert "batchnorm" not in kinds
        assert ({"tile", "concatND"} <= kinds) == has_context(lite.size)


class TestParityWithKeras:
    @pytest.mark.parametrize("fmt,precision", EXPORTS)
    def test_probabilities_and_class_maps(self, lite, fmt, precision):
        probabilities, class_maps = _run(lite.exports[fmt, precision], lite.pixels, lite.class_maps.shape[1:])
        np.testing.assert_array_equal(probabilities.argmax(axis=1), lite.probabilities.argmax(axis=1))
        # FP16 (ML Program: float16 compute, emulated; NeuralNetwork: float16 weights): verify's
        # default FP16 tolerances (VerifyConfig: probabilities 1e-2, class maps 5e-2 relative).
        atol, rtol = (1e-5, 1e-4) if precision == "float32" else (1e-2, 5e-2)
        np.testing.assert_allclose(probabilities, lite.probabilities, atol=atol)
        scale = np.abs(lite.class_maps).max()
        np.testing.assert_allclose(class_maps, lite.class_maps, atol=rtol * scale)

    def test_both_classes_are_predicted(self, lite):
        assert set(lite.probabilities.argmax(axis=1)) == {0, 1}
        assert np.abs(lite.probabilities[:, 0] - 0.5).min() > 0.02  # no near ties: FP16 must agree

    def test_verify_passes_every_export(self, lite, images, tmp_path):
        result = verify_model(lite.dir, None, images, VerifyConfig(backend="reference"), output_dir=tmp_path)
        assert result.passed, result.table
        entries = result.report["exports"]
        assert len(entries) == 4
        assert all(e["parity"]["top1_agreement"] == 1.0 and e["parity"]["divergence"] is None for e in entries)


class TestStaticChecks:
    @pytest.mark.parametrize("fmt,precision", EXPORTS)
    def test_the_lite_preprocessing_passes(self, lite, fmt, precision):
        info = read_model_info(lite.exports[fmt, precision])
        assert info.image_inputs[0].color_layout == "RGB"
        assert info.image_inputs[0].scale == pytest.approx(1 / 128)
        np.testing.assert_allclose(info.image_inputs[0].bias, [-127 / 128] * 3, atol=1e-6)
        checks = static_checks(info, lite.preprocessing, LABELS, VerifyConfig())
        assert all(c.status == "pass" for c in checks), [c for c in checks if c.status != "pass"]

    def test_the_checks_compare_with_the_saved_preprocessing(self, lite):
        from classifier.backbones.vgg16 import vgg16_preprocessing

        info = read_model_info(lite.exports["mlprogram", "float32"])

        def failed(preprocessing):
            return {c.name for c in static_checks(info, preprocessing, LABELS, VerifyConfig()) if c.failed}

        unscaled = Preprocessing(lite.size, color_order="RGB", bias=(-127 / 128,) * 3, scale=1.0)
        assert failed(unscaled) == {"scale", "metadata_preprocessing"}
        assert failed(vgg16_preprocessing(lite.size)) == {"color_layout", "bias", "scale", "metadata_preprocessing"}


# --- a seeded fault: one depthwise weight changed in the saved files -----------------------------
def _perturb_ml_program(source: Path, target: Path, op_words: str, index: int, delta: float) -> None:
    """Copy an FP32 ``.mlpackage`` and add ``delta`` to element ``index`` of the weight of the ``conv``
    named with ``op_words``, in ``weight.bin`` (the blob's header says where its data starts)."""
    import coremltools as ct

    shutil.copytree(source, target)
    spec = ct.models.MLModel(str(target), skip_model_load=True).get_spec()
    (block,) = spec.mlProgram.functions["main"].block_specializations.values()
    (conv,) = [op for op in block.operations if op.type == "conv" and op_words in op.outputs[0].name]
    weight_name = conv.inputs["weight"].arguments[0].name
    (offset,) = [op.attributes["val"].blobFileValue.offset for op in block.operations
                 if op.type == "const" and op.outputs[0].name == weight_name]
    weights = next(target.rglob("weight.bin"))
    blob = bytearray(weights.read_bytes())
    sentinel, _, size, data = struct.unpack_from("<IIQQ", blob, offset)
    assert sentinel == 0xDEADBEEF and size >= 4 * (index + 1)
    (value,) = struct.unpack_from("<f", blob, data + 4 * index)
    struct.pack_into("<f", blob, data + 4 * index, value + delta)
    weights.write_bytes(bytes(blob))


def _perturb_neural_network(source: Path, target: Path, layer_words: str, index: int, delta: float) -> None:
    """Copy an FP32 ``.mlmodel`` with ``delta`` added to weight ``index`` of the layer named with ``layer_words``."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(source))
    (layer,) = [layer for layer in neural_network(spec).layers if layer_words in layer.name]
    layer.convolution.weights.floatValue[index] += delta
    ct.utils.save_spec(spec, str(target))


class TestSeededFault:
    """The centre tap of the first depthwise kernel, off by 1 in each FP32 export, on its channel with
    the largest input (a channel ReLU6 zeroes everywhere would hide it). The converter folded
    ``b1_dw_bn`` into ``b1_dw``: the pair is named, not the layer after it."""

    @pytest.fixture(scope="class")
    def faulty(self, lite, tmp_path_factory):
        import keras

        root = tmp_path_factory.mktemp("faulty")
        x = lite.preprocessing.apply(lite.pixels[:1])
        inputs = np.asarray(keras.Model(lite.model.input, lite.model.get_layer("b1_expand_relu").output)(x))
        channel = int(np.argmax(inputs.mean(axis=(0, 1, 2))))
        centre = channel * 9 + 4  # (16, 1, 3, 3) weight, channel-major in both formats
        package, mlmodel = root / "faulty.mlpackage", root / "faulty.mlmodel"
        _perturb_ml_program(lite.exports["mlprogram", "float32"], package, "b1_dw_bn", centre, 1.0)
        _perturb_neural_network(lite.exports["neuralnetwork", "float32"], mlmodel, "b1_dw_bn", centre, 1.0)
        return {"mlprogram": package, "neuralnetwork": mlmodel}

    @pytest.mark.parametrize("fmt", ["mlprogram", "neuralnetwork"])
    def test_names_the_folded_depthwise_layer(self, lite, faulty, fmt):
        x = lite.preprocessing.apply(lite.pixels[:1])
        intermediates = reference_runtime(faulty[fmt]).run(lite.pixels[0], keep_intermediates=True).intermediates
        found = locate_divergence(keras_layer_outputs(lite.model, x), intermediates, rtol=1e-3)
        assert found["keras_layer"] == "b1_dw" and found["folded_with"] == "b1_dw_bn"
        assert "b1_dw_bn" in found["coreml_op"]
        assert found["last_matching_layer"]["keras_layer"] == "b1_expand_relu"
        assert found["max_abs_diff"] > 1e-2

    def test_verify_fails_and_says_where(self, lite, faulty, images, tmp_path):
        result = verify_model(lite.dir, list(faulty.values()), images, VerifyConfig(backend="reference"),
                              output_dir=tmp_path)
        assert not result.passed
        for entry in result.report["exports"]:
            divergence = entry["parity"]["divergence"]
            assert (divergence["keras_layer"], divergence["folded_with"]) == ("b1_dw", "b1_dw_bn")
            assert not any(c["status"] == "fail" for c in entry["static_checks"])
        assert "first divergence at Keras layer 'b1_dw' (DepthwiseConv2D, folded with 'b1_dw_bn' into one op)" \
            in result.table
