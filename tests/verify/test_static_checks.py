import dataclasses
import re

import pytest

from classifier.backbones.vgg16 import vgg16_preprocessing
from tests.verify.conftest import LABELS, SIZE
from verify.model_info import read_model_info
from verify.static_checks import static_checks
from verify.verify_config import VerifyConfig

PRE = vgg16_preprocessing(SIZE)


def _failed(path, config=VerifyConfig(), preprocessing=PRE, labels=LABELS):
    checks = static_checks(read_model_info(path), preprocessing, labels, config)
    return {c.name: c.message for c in checks if c.failed}


class TestStaticChecks:
    @pytest.mark.parametrize("name", ["mlprogram_fp32", "mlprogram_fp16", "neuralnetwork"])
    def test_a_correct_export_passes(self, exports, name):
        checks = static_checks(read_model_info(exports[name]), PRE, LABELS, VerifyConfig())
        assert [c.name for c in checks] == ["input_name", "input_size", "color_layout", "bias", "scale",
                                            "class_labels", "output_names", "metadata_preprocessing",
                                            "metadata_labels", "deployment_target", "file_size"]
        assert all(c.status == "pass" for c in checks)

    @pytest.mark.parametrize("name,check,match", [
        ("swapped_colour", "color_layout", "colour layout is RGB.*trained on BGR"),
        ("nn_swapped_colour", "color_layout", "colour layout is RGB.*trained on BGR"),
        ("missing_bias", "bias", r"image bias is missing \(0, 0, 0\)"),
        ("reversed_labels", "class_labels", "class labels are in reversed order"),
        ("wrong_size", "input_size", "image input is 40x40 .*resizes to 32x32"),
    ])
    def test_each_fault_fails_its_check(self, exports, name, check, match):
        failed = _failed(exports[name])
        assert list(failed) == [check]
        assert re.search(match, failed[check])

    def test_bias_twice_in_the_spec(self, exports):
        doubled = dataclasses.replace(PRE, bias=tuple(b / 2 for b in PRE.bias))
        failed = _failed(exports["mlprogram_fp32"], preprocessing=doubled)
        assert "bias applied twice" in failed["bias"]

    def test_other_labels(self, exports):
        assert "differ from the saved labels" in _failed(exports["mlprogram_fp32"], labels=("a", "b"))["class_labels"]

    def test_deployment_target_and_file_size(self, exports):
        failed = _failed(exports["mlprogram_fp32"], VerifyConfig(deployment_target="iOS14", max_file_size_mb=1e-6))
        assert "it must run on iOS14" in failed["deployment_target"]
        assert "more than max_file_size_mb" in failed["file_size"]
        assert not _failed(exports["neuralnetwork"], VerifyConfig(deployment_target="iOS14"))

    def test_input_and_output_names(self, exports):
        failed = _failed(exports["mlprogram_fp32"], VerifyConfig(input_name="photo", heatmap_output="class_map"))
        assert "no image input named 'photo'" in failed["input_name"]
        assert "heatmap output 'class_map'" in failed["output_names"]

    def test_missing_metadata_is_a_warning(self, exports, keras_model, tmp_path):
        from tests.verify.conftest import export

        path = export(keras_model, tmp_path / "plain.mlpackage", metadata=False)
        checks = {c.name: c for c in static_checks(read_model_info(path), PRE, LABELS, VerifyConfig())}
        assert checks["metadata_labels"].status == "warn"
        assert checks["metadata_preprocessing"].status == "warn"
        assert not any(c.failed for c in checks.values())
