"""Core ML export, checked by reading the written spec back (MLModel.predict needs macOS; not used)."""

import json
from pathlib import Path

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.frontend.milproto.load import load as load_mil

from boxstrap.cli import main
from classifier import coreml_toolkit as toolkit
from classifier import export as export_module
from classifier.backbones.vgg16 import vgg16_preprocessing
from classifier.export import ExportConfig, export_coreml
from classifier.export_metadata import read_export_metadata
from classifier.trained_model import load_trained_model
from datasets.preprocessing import Preprocessing
from groundwork.config import load_config
from groundwork.files import disk_size
from tests.classifier._model_dirs import lambda_model, write_model_dir

LABELS = ("zebra", "apple")  # not sorted: the order must survive


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_model_dir(tmp_path_factory.mktemp("model") / "m", labels=LABELS)


@pytest.fixture(scope="module")
def trained(model_dir):
    return load_trained_model(model_dir)


@pytest.fixture(scope="module")
def both(trained, tmp_path_factory):
    """Both formats with the heatmap output, default precision (FP16)."""
    config = ExportConfig(format="both", heatmap=True, author="A. Author", license="MIT", version="1.2")
    out = tmp_path_factory.mktemp("both")
    return out, export_coreml(trained, out, config)


def _program(path):
    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    program = load_mil(spec, specification_version=spec.specificationVersion, file_weights_dir=model.weights_dir)
    return spec, program.functions["main"]


def _image_ops(function):
    """The preprocessing ops: the chain of mul/add right after the image input."""
    ops, var = {}, function.inputs["image"]
    while True:
        users = [op for op in var.child_ops if op.op_type in ("mul", "add")]
        if not users:
            return ops
        op = users[0]
        ops[op.op_type] = op.inputs["y"].val
        var = op.outputs[0]


class TestMLProgram:
    def test_classifier_outputs_and_labels(self, both):
        _, result = both
        spec, function = _program(result.paths["mlprogram"])
        assert spec.WhichOneof("Type") == "mlProgram"
        assert [o.name for o in spec.description.output] == ["classLabel", "classLabelProbs", "class_map"]
        assert spec.description.predictedFeatureName == "classLabel"
        assert spec.description.predictedProbabilitiesName == "classLabelProbs"
        (classify,) = [op for op in function.operations if op.op_type == "classify"]
        assert list(classify.inputs["classes"].val) == list(LABELS)
        class_map = spec.description.output[2].type.multiArrayType
        assert list(class_map.shape) == [1, 2, 2, 2]

    def test_image_input_and_preprocessing(self, both):
        _, result = both
        spec, function = _program(result.paths["mlprogram"])
        image = spec.description.input[0]
        assert image.name == "image"
        assert image.type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.BGR
        assert (image.type.imageType.height, image.type.imageType.width) == (32, 32)
        ops = _image_ops(function)
        assert "mul" not in ops  # scale 1
        np.testing.assert_allclose(ops["add"].reshape(-1), vgg16_preprocessing().bias, rtol=1e-6)

    def test_fp16_compute(self, both):
        _, result = both
        _, function = _program(result.paths["mlprogram"])
        casts = [op.inputs["dtype"].val for op in function.operations if op.op_type == "cast"]
        assert "fp16" in casts
        conv_weights = [op.inputs["weight"] for op in function.operations if op.op_type == "conv"]
        assert all(w.dtype == ct.converters.mil.mil.types.fp16 for w in conv_weights)

    def test_metadata(self, both, trained):
        _, result = both
        meta = read_export_metadata(result.paths["mlprogram"])
        assert meta["labels"] == list(LABELS)
        assert Preprocessing.from_dict(meta["preprocessing"]) == trained.preprocessing
        assert meta["input_size"] == [32, 32]
        assert meta["metrics"] == trained.metrics
        assert meta["source_model_sha256"] == trained.model_sha256
        assert meta["outputs"] == {"label": "classLabel", "probabilities": "classLabelProbs", "class_map": "class_map"}
        assert meta["format"] == "mlprogram"
        assert (meta["author"], meta["license"], meta["version"]) == ("A. Author", "MIT", "1.2")
        assert "zebra, apple" in meta["short_description"]
        assert meta["boxstrap_version"]
        assert meta["export_config"]["heatmap"] is True


class TestNeuralNetwork:
    def test_classifier_and_scaler(self, both):
        _, result = both
        spec = ct.utils.load_spec(str(result.paths["neuralnetwork"]))
        assert spec.WhichOneof("Type") == "neuralNetworkClassifier"
        nn = spec.neuralNetworkClassifier
        assert list(nn.stringClassLabels.vector) == list(LABELS)
        assert nn.labelProbabilityLayerName == "classLabelProbs"
        assert nn.layers[-1].WhichOneof("layer") == "softmaxND" or any(
            layer.output[0] == "classLabelProbs" and layer.WhichOneof("layer") == "softmaxND" for layer in nn.layers)
        outputs = {o.name: o.type.WhichOneof("Type") for o in spec.description.output}
        assert outputs == {"classLabelProbs": "dictionaryType", "class_map": "multiArrayType", "classLabel": "stringType"}
        scaler = nn.preprocessing[0].scaler
        bias = vgg16_preprocessing().bias  # BGR order
        np.testing.assert_allclose([scaler.blueBias, scaler.greenBias, scaler.redBias], bias, rtol=1e-6)
        assert scaler.channelScale == 1.0
        assert spec.description.input[0].type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.BGR

    def test_fp16_weights_and_metadata(self, both):
        _, result = both
        spec = ct.utils.load_spec(str(result.paths["neuralnetwork"]))
        convs = [layer.convolution for layer in spec.neuralNetworkClassifier.layers
                 if layer.WhichOneof("layer") == "convolution"]
        assert all(len(c.weights.float16Value) > 0 and len(c.weights.floatValue) == 0 for c in convs)
        assert spec.specificationVersion == 4  # iOS 13
        assert read_export_metadata(result.paths["neuralnetwork"])["labels"] == list(LABELS)


class TestExportFiles:
    def test_config_saved_and_no_temporaries(self, both):
        out, result = both
        assert result.config_path == out / "export_config.json"
        assert load_config(ExportConfig, result.config_path) == ExportConfig(
            format="both", heatmap=True, author="A. Author", license="MIT", version="1.2")
        assert sorted(p.name for p in out.iterdir()) == [
            "BoxstrapClassifier.mlmodel", "BoxstrapClassifier.mlpackage", "export_config.json"]
        assert result.sizes["mlprogram"] == disk_size(out / "BoxstrapClassifier.mlpackage")

    def test_existing_output_refused_then_overwritten(self, trained, tmp_path):
        config = ExportConfig(format="neuralnetwork", precision="float32", author="first")
        export_coreml(trained, tmp_path, config)
        with pytest.raises(FileExistsError, match="overwrite"):
            export_coreml(trained, tmp_path, config)
        result = export_coreml(trained, tmp_path, ExportConfig(format="neuralnetwork", author="second"),
                               overwrite=True)
        assert read_export_metadata(result.paths["neuralnetwork"])["author"] == "second"
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    def test_failure_leaves_nothing(self, trained, tmp_path, monkeypatch):
        class Converted:  # stands in for a converted MLModel (no conversion: fast)
            def save(self, path):
                (Path(path) / "Data").mkdir(parents=True)

        def broken(*args, **kwargs):
            raise RuntimeError("disk full")

        monkeypatch.setattr(export_module, "_convert", lambda *args: (Converted(), None))
        monkeypatch.setattr(export_module, "_describe", broken)
        with pytest.raises(RuntimeError, match="disk full"):
            export_coreml(trained, tmp_path / "out", ExportConfig())
        assert list((tmp_path / "out").iterdir()) == []


class TestOptions:
    def test_rgb_scale_float32_mlprogram(self, tmp_path):
        pre = Preprocessing(input_size=(32, 32), color_order="RGB", bias=(-1.0, -2.0, -3.0), scale=1 / 127.5)
        directory = write_model_dir(tmp_path / "m", labels=LABELS, preprocessing=pre)
        result = export_coreml(directory, tmp_path / "out", ExportConfig(format="both", precision="float32"))
        spec, function = _program(result.paths["mlprogram"])
        assert spec.description.input[0].type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
        ops = _image_ops(function)
        np.testing.assert_allclose(float(ops["mul"]), 1 / 127.5, rtol=1e-6)
        np.testing.assert_allclose(ops["add"].reshape(-1), [-1.0, -2.0, -3.0], rtol=1e-6)
        assert "fp16" not in [op.inputs["dtype"].val for op in function.operations if op.op_type == "cast"]
        assert [o.name for o in spec.description.output] == ["classLabel", "classLabelProbs"]
        nn_spec = ct.utils.load_spec(str(result.paths["neuralnetwork"]))
        scaler = nn_spec.neuralNetworkClassifier.preprocessing[0].scaler
        np.testing.assert_allclose([scaler.redBias, scaler.greenBias, scaler.blueBias, scaler.channelScale],
                                   [-1.0, -2.0, -3.0, 1 / 127.5], rtol=1e-6)
        convs = [layer.convolution for layer in nn_spec.neuralNetworkClassifier.layers
                 if layer.WhichOneof("layer") == "convolution"]
        assert all(len(c.weights.floatValue) > 0 for c in convs)

    @pytest.mark.slow
    def test_int8(self, trained, tmp_path):
        result = export_coreml(trained, tmp_path, ExportConfig(format="both", quantize="int8"))
        assert set(result.unquantized_sizes) == {"mlprogram", "neuralnetwork"}
        assert result.sizes["neuralnetwork"] < result.unquantized_sizes["neuralnetwork"]
        spec, function = _program(result.paths["mlprogram"])
        kinds = {op.op_type for op in function.operations}
        assert any(kind.startswith("constexpr_") for kind in kinds), kinds
        assert spec.description.predictedProbabilitiesName == "classLabelProbs"
        nn_spec = ct.utils.load_spec(str(result.paths["neuralnetwork"]))
        bits = [layer.convolution.weights.quantization.numberOfBits
                for layer in nn_spec.neuralNetworkClassifier.layers if layer.WhichOneof("layer") == "convolution"]
        assert bits and set(bits) == {8}
        assert read_export_metadata(result.paths["mlprogram"])["export_config"]["quantize"] == "int8"

    @pytest.mark.slow
    def test_heatmap_with_int8_weights(self, trained, tmp_path):
        # The NeuralNetwork takes both. The ML Program is refused (ExportConfig) because coremltools
        # cannot save it: when this stops raising, the refusal can go.
        result = export_coreml(trained, tmp_path, ExportConfig(format="neuralnetwork", heatmap=True, quantize="int8"))
        nn_spec = ct.utils.load_spec(str(result.paths["neuralnetwork"]))
        assert "class_map" in [o.name for o in nn_spec.description.output]
        assert result.sizes["neuralnetwork"] < result.unquantized_sizes["neuralnetwork"]
        plain = export_coreml(trained, tmp_path / "plain", ExportConfig(heatmap=True)).paths["mlprogram"]
        with pytest.raises(ValueError, match="Unknown map from SSA type"):
            toolkit.quantize_int8(ct.models.MLModel(str(plain), skip_model_load=True), "mlprogram")

    @pytest.mark.slow
    def test_other_input_size(self, trained, tmp_path):
        result = export_coreml(trained, tmp_path, ExportConfig(input_size=(64, 96), heatmap=True))
        spec, _ = _program(result.paths["mlprogram"])
        image = spec.description.input[0].type.imageType
        assert (image.height, image.width) == (64, 96)
        assert list(spec.description.output[2].type.multiArrayType.shape) == [1, 4, 6, 2]
        assert read_export_metadata(result.paths["mlprogram"])["preprocessing"]["input_size"] == [64, 96]


class TestErrors:
    def test_missing_preprocessing(self, tmp_path):
        directory = write_model_dir(tmp_path / "m", skip=("preprocessing.json",))
        with pytest.raises(FileNotFoundError, match="preprocessing.json not found"):
            export_coreml(directory, tmp_path / "out")

    def test_labels_do_not_match_outputs(self, tmp_path):
        directory = write_model_dir(tmp_path / "m")
        (directory / "labels.json").write_text(json.dumps(["one", "ten", "hundred"]))
        with pytest.raises(ValueError, match="model has 2 classes, labels.json has 3"):
            export_coreml(directory, tmp_path / "out")

    def test_vgg_input_size_not_multiple_of_32(self, trained, tmp_path):
        with pytest.raises(ValueError, match="multiple of 32"):
            export_coreml(trained, tmp_path, ExportConfig(input_size=(100, 100)))

    def test_input_size_not_multiple_of_stride(self, tmp_path):
        import keras

        image = keras.Input((32, 32, 3), name="image")
        x = keras.layers.Conv2D(4, 3, strides=4, padding="same", activation="relu")(image)
        class_map = keras.layers.Conv2D(2, 1, name="class_map")(x)
        probs = keras.layers.Activation("softmax", name="probabilities")(keras.layers.GlobalAveragePooling2D()(class_map))
        # Not trained by boxstrap (no train_config.json): no backbone spec, only the stride rule.
        directory = write_model_dir(tmp_path / "m", keras.Model(image, [probs, class_map]),
                                    skip=("train_config.json",))
        with pytest.raises(ValueError, match="multiple of the network's stride 4"):
            export_coreml(directory, tmp_path / "out", ExportConfig(input_size=(34, 32)))

    def test_lambda_layer(self, tmp_path):
        directory = write_model_dir(tmp_path / "m", lambda_model())
        with pytest.raises(ValueError, match="Lambda"):
            export_coreml(directory, tmp_path / "out")

    def test_config_type(self, trained, tmp_path):
        with pytest.raises(TypeError, match="config must be an ExportConfig"):
            export_coreml(trained, tmp_path, {"format": "mlprogram"})

    @pytest.mark.parametrize("kwargs, match", [
        ({"format": "onnx"}, "format must be one of"),
        ({"precision": "int8"}, "precision must be one of"),
        ({"quantize": "int4"}, "quantize must be one of"),
        ({"name": "a/b"}, "name must be a plain file stem"),
        ({"input_size": (0, 32)}, "input_size must be"),
        ({"heatmap": True, "quantize": "int8"}, "heatmap with quantize='int8' cannot be exported as an ML Program"),
        ({"heatmap": True, "quantize": "int8", "format": "both"}, r"as a NeuralNetwork \(format='neuralnetwork'"),
    ])
    def test_config_values(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            ExportConfig(**kwargs)


class TestExportCommand:
    def test_writes_and_refuses_existing(self, model_dir, tmp_path, capsys):
        args = ["export", str(model_dir), "--out", str(tmp_path), "--format", "neuralnetwork", "--precision",
                "float32", "--author", "me", "--version", "2.0"]
        assert main(args) == 0
        out = capsys.readouterr().out
        assert f"wrote neuralnetwork to {tmp_path / 'BoxstrapClassifier.mlmodel'}" in out
        meta = read_export_metadata(tmp_path / "BoxstrapClassifier.mlmodel")
        assert (meta["author"], meta["version"], meta["export_config"]["precision"]) == ("me", "2.0", "float32")
        assert main(args) == 1
        assert "--overwrite" in capsys.readouterr().err


class TestReadExportMetadata:
    def test_missing(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            read_export_metadata(tmp_path / "nope.mlmodel")

    def test_not_core_ml(self, tmp_path):
        (tmp_path / "x.mlmodel").write_bytes(b"\x00garbage")
        with pytest.raises(ValueError, match="not a readable Core ML model"):
            read_export_metadata(tmp_path / "x.mlmodel")

    def _resaved(self, both, tmp_path, edit):
        _, result = both
        spec = ct.utils.load_spec(str(result.paths["neuralnetwork"]))
        edit(spec.description.metadata.userDefined)
        ct.utils.save_spec(spec, str(tmp_path / "edited.mlmodel"))
        return tmp_path / "edited.mlmodel"

    def test_not_from_boxstrap(self, both, tmp_path):
        path = self._resaved(both, tmp_path, lambda user: user.pop("boxstrap.labels"))
        with pytest.raises(ValueError, match="was it exported by `boxstrap export`"):
            read_export_metadata(path)

    def test_invalid_json(self, both, tmp_path):
        path = self._resaved(both, tmp_path, lambda user: user.update({"boxstrap.preprocessing": "{oops"}))
        with pytest.raises(ValueError, match="'boxstrap.preprocessing' is not valid JSON"):
            read_export_metadata(path)
