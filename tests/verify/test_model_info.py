import pytest

from classifier.backbones.vgg16 import VGG16_BGR_BIAS
from verify.model_info import read_model_info


class TestReadModelInfo:
    @pytest.mark.parametrize("name,kind,precision", [("mlprogram_fp32", "mlprogram", "FP32"),
                                                     ("mlprogram_fp16", "mlprogram", "FP16"),
                                                     ("neuralnetwork", "neuralnetwork", "FP32")])
    def test_reads_the_spec(self, exports, name, kind, precision):
        info = read_model_info(exports[name])
        assert (info.kind, info.precision) == (kind, precision)
        (image,) = info.image_inputs
        assert (image.name, image.height, image.width, image.color_layout) == ("image", 32, 32, "BGR")
        assert image.bias == pytest.approx(VGG16_BGR_BIAS, abs=1e-4)
        assert image.scale == 1.0
        assert info.labels == ("one", "ten")
        assert info.predicted_feature == "classLabel"
        assert info.probabilities_output in info.output_names
        assert info.metadata_json("boxstrap.labels") == ["one", "ten"]
        assert info.file_size > 0
        assert info.deployment_target.startswith("iOS")

    def test_faults_show_in_the_spec(self, exports):
        assert read_model_info(exports["swapped_colour"]).image_inputs[0].color_layout == "RGB"
        assert read_model_info(exports["nn_swapped_colour"]).image_inputs[0].bias == pytest.approx(
            VGG16_BGR_BIAS, abs=1e-4)
        assert read_model_info(exports["missing_bias"]).image_inputs[0].bias == (0.0, 0.0, 0.0)
        assert read_model_info(exports["reversed_labels"]).labels == ("ten", "one")

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="No Core ML model at"):
            read_model_info(tmp_path / "x.mlmodel")

    def test_bad_metadata_json(self, exports):
        info = read_model_info(exports["mlprogram_fp32"])
        info.metadata["broken"] = "{"
        with pytest.raises(ValueError, match="metadata 'broken' is not valid JSON"):
            info.metadata_json("broken")
        assert info.metadata_json("absent") is None
