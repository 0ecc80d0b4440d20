"""Tests of classifier.coreml_toolkit's pure parts: tables, validation, metadata, files, quieting.

The conversions themselves are checked through both exporters (tests/classifier/test_export.py,
tests/localize/test_box_export.py), by reading the written specs back.
"""

from __future__ import annotations

import doctest
import json
import logging
import os
import re
import sys
from pathlib import Path

import pytest

from classifier import coreml_toolkit as toolkit
from classifier.export import ExportConfig
from classifier.export_metadata import read_export_metadata
from datasets.preprocessing import Preprocessing
from detector.box_export import BoxExportConfig

PRE = Preprocessing(input_size=(32, 64), color_order="RGB", bias=(-1.0, -2.0, -3.0), scale=0.5)


def _tiny_mlmodel():
    """A one-layer NeuralNetwork model built from its spec (no conversion: fast)."""
    import coremltools as ct
    import numpy as np
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    builder = NeuralNetworkBuilder([("x", datatypes.Array(4))], [("y", datatypes.Array(2))])
    builder.add_inner_product("dense", W=np.arange(8, dtype=np.float32).reshape(2, 4) / 8, b=None,
                              input_channels=4, output_channels=2, has_bias=False, input_name="x",
                              output_name="y")
    return ct.models.MLModel(builder.spec, skip_model_load=True)


def _metadata(**changes):
    arguments = dict(preprocessing=PRE, labels=("zebra", "apple"), metrics={"accuracy": 0.5},
                     outputs={"label": "classLabel", "class_map": None}, fmt="mlprogram",
                     config=ExportConfig(author="A"), source_sha256="ab" * 32, preview_type="imageClassifier")
    arguments.update(changes)
    return toolkit.boxstrap_metadata(**arguments)


class TestTables:
    def test_every_format_has_an_extension(self):
        assert set(toolkit.EXTENSIONS) == set(toolkit.FORMATS)
        assert toolkit.EXTENSIONS == {"mlprogram": ".mlpackage", "neuralnetwork": ".mlmodel"}

    def test_both_exporters_take_the_toolkit_choices(self):
        for fmt in toolkit.FORMATS:
            for precision in toolkit.PRECISIONS:
                assert ExportConfig(format=fmt, precision=precision).formats == (fmt,)
                assert BoxExportConfig(format=fmt, precision=precision).format == fmt
        for quantize in toolkit.QUANTIZATIONS:
            assert ExportConfig(quantize=quantize).quantize == quantize

    def test_only_the_classifier_writes_both_formats(self):
        assert ExportConfig(format="both").formats == toolkit.FORMATS
        with pytest.raises(ValueError, match=re.escape("format must be one of ('mlprogram', 'neuralnetwork'). "
                                                       "Received: 'both'")):
            BoxExportConfig(format="both")


class TestCheckChoice:
    def test_returns_the_value(self):
        assert toolkit.check_choice("format", "mlprogram", toolkit.FORMATS) == "mlprogram"
        assert toolkit.check_choice("quantize", None, toolkit.QUANTIZATIONS) is None

    def test_names_argument_choices_and_value(self):
        with pytest.raises(ValueError, match=re.escape("precision must be one of ('float16', 'float32'). "
                                                       "Received: 'int8'")):
            toolkit.check_choice("precision", "int8", toolkit.PRECISIONS)

    def test_choices_given_as_a_list_are_shown_as_a_tuple(self):
        with pytest.raises(ValueError, match=re.escape("nbits must be one of (16, 8). Received: 4")):
            toolkit.check_choice("nbits", 4, [16, 8])


class TestCheckFileStem:
    @pytest.mark.parametrize("name", ["BoxstrapClassifier", "my model", "v1.2"])
    def test_accepts_plain_stems(self, name):
        assert toolkit.check_file_stem(name) == name

    @pytest.mark.parametrize("name", ["", "a/b", "a\\b", ".hidden", None, 3])
    def test_refuses(self, name):
        with pytest.raises(ValueError, match=re.escape(f"name must be a plain file stem. Received: {name!r}")):
            toolkit.check_file_stem(name)


class TestConversionArguments:
    """The conversions refuse a bad format, precision or quantization before touching coremltools."""

    def test_convert_to_mil(self):
        with pytest.raises(ValueError, match=re.escape("fmt must be one of ('mlprogram', 'neuralnetwork'). "
                                                       "Received: 'both'")):
            toolkit.convert_to_mil(None, PRE, "both", "float16")
        with pytest.raises(ValueError, match="precision must be one of .* Received: 'fp16'"):
            toolkit.convert_to_mil(None, PRE, "mlprogram", "fp16")

    def test_convert_from_mil(self):
        with pytest.raises(ValueError, match="fmt must be one of .* Received: 'onnx'"):
            toolkit.convert_from_mil(None, "onnx", {}, precision="float16")
        with pytest.raises(ValueError, match="quantize must be one of .* Received: 'int4'"):
            toolkit.convert_from_mil(None, "mlprogram", {}, precision="float16", quantize="int4")

    def test_quantize_int8(self):
        with pytest.raises(ValueError, match="fmt must be one of .* Received: 'mlpackage'"):
            toolkit.quantize_int8(None, "mlpackage")


class TestQuantizeNeuralNetworkWeights:
    def test_fp16_weights(self):
        spec = toolkit.quantize_neuralnetwork_weights(_tiny_mlmodel(), 16).get_spec()
        weights = spec.neuralNetwork.layers[0].innerProduct.weights
        assert len(weights.floatValue) == 0
        assert len(weights.float16Value) == 8 * 2  # 8 weights, 2 bytes each

    def test_int8_weights(self):
        spec = toolkit.quantize_neuralnetwork_weights(_tiny_mlmodel(), 8).get_spec()
        assert spec.neuralNetwork.layers[0].innerProduct.weights.quantization.numberOfBits == 8

    def test_refuses_other_bits(self):
        with pytest.raises(ValueError, match=re.escape("nbits must be one of (16, 8). Received: 4")):
            toolkit.quantize_neuralnetwork_weights(_tiny_mlmodel(), 4)


class TestImageInputDescription:
    def test_size_and_preprocessing(self):
        assert toolkit.image_input_description(PRE) == (
            "Photo, scaled to 64x32; Core ML applies the preprocessing (RGB, scale 0.5, bias [-1.0, -2.0, -3.0]).")


def test_docstring_examples():
    results = doctest.testmod(toolkit, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert results.attempted >= 2 and results.failed == 0


class TestBoxstrapMetadata:
    def test_keys_in_order_and_json_values(self):
        metadata = _metadata()
        assert list(metadata) == [
            "boxstrap.preprocessing", "boxstrap.labels", "boxstrap.input_size", "boxstrap.metrics",
            "boxstrap.outputs", "boxstrap.format", "boxstrap.export_config", "boxstrap.source_model_sha256",
            "boxstrap.version", "com.apple.coreml.model.preview.type"]
        assert all(isinstance(v, str) for v in metadata.values())
        assert Preprocessing.from_dict(json.loads(metadata["boxstrap.preprocessing"])) == PRE
        assert json.loads(metadata["boxstrap.labels"]) == ["zebra", "apple"]
        assert json.loads(metadata["boxstrap.input_size"]) == [32, 64]
        assert json.loads(metadata["boxstrap.metrics"]) == {"accuracy": 0.5}
        assert json.loads(metadata["boxstrap.outputs"]) == {"label": "classLabel", "class_map": None}
        assert json.loads(metadata["boxstrap.export_config"])["author"] == "A"

    def test_plain_text_values(self):
        metadata = _metadata(fmt="neuralnetwork", preview_type="objectDetector")
        assert metadata["boxstrap.format"] == "neuralnetwork"
        assert metadata["boxstrap.source_model_sha256"] == "ab" * 32
        assert metadata["com.apple.coreml.model.preview.type"] == "objectDetector"
        assert metadata["boxstrap.version"] and not metadata["boxstrap.version"].startswith('"')

    def test_missing_metrics_are_null(self):
        assert _metadata(metrics=None)["boxstrap.metrics"] == "null"

    def test_refuses_bad_format_and_preview(self):
        with pytest.raises(ValueError, match="fmt must be one of .* Received: 'both'"):
            _metadata(fmt="both")
        with pytest.raises(ValueError, match="preview_type must be one of .* Received: 'detector'"):
            _metadata(preview_type="detector")


class TestWriteMetadata:
    def test_read_back(self, tmp_path):
        mlmodel = _tiny_mlmodel()
        toolkit.write_metadata(mlmodel, _metadata(), short_description="Finds things", author="A. Author",
                               license="MIT", version="1.2")
        mlmodel.save(str(tmp_path / "m.mlmodel"))
        meta = read_export_metadata(tmp_path / "m.mlmodel")
        assert (meta["short_description"], meta["author"], meta["license"], meta["version"]) == (
            "Finds things", "A. Author", "MIT", "1.2")
        assert meta["labels"] == ["zebra", "apple"]
        assert Preprocessing.from_dict(meta["preprocessing"]) == PRE
        assert meta["format"] == "mlprogram"
        assert meta["source_model_sha256"] == "ab" * 32
        assert meta["user_defined"]["com.apple.coreml.model.preview.type"] == "imageClassifier"

    def test_refuses_values_that_are_not_text(self):
        mlmodel = _tiny_mlmodel()
        with pytest.raises(TypeError, match=re.escape("metadata keys and values must be str. Received: "
                                                      "'boxstrap.labels': ['a']")):
            toolkit.write_metadata(mlmodel, {"boxstrap.labels": ["a"]}, short_description="")
        assert dict(mlmodel.user_defined_metadata) == {}  # nothing written


def _package(path: Path, text: str) -> Path:
    """A stand-in .mlpackage: a folder with two files."""
    (path / "Data").mkdir(parents=True)
    (path / "Data" / "model.mlmodel").write_text(text)
    (path / "Manifest.json").write_text(text)
    return path


def _contents(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


class TestMoveIntoPlace:
    def test_package_replaces_package(self, tmp_path):
        staging = tmp_path / "staging"
        staging.mkdir()
        target = _package(tmp_path / "M.mlpackage", "old")
        (target / "only-in-old").write_text("old")
        staged = _package(staging / "M.mlpackage", "new")
        toolkit.move_into_place(staged, target, staging)
        assert _contents(target) == {"Data/model.mlmodel": "new", "Manifest.json": "new"}
        assert list(staging.iterdir()) == []  # the old package moved aside was removed

    def test_target_holds_one_whole_package_at_every_rename(self, tmp_path, monkeypatch):
        staging = tmp_path / "staging"
        staging.mkdir()
        target = _package(tmp_path / "M.mlpackage", "old")
        staged = _package(staging / "M.mlpackage", "new")
        whole = ({"Data/model.mlmodel": "old", "Manifest.json": "old"},
                 {"Data/model.mlmodel": "new", "Manifest.json": "new"}, {})
        seen = []
        real_replace = os.replace

        def replace(source, destination):
            seen.append(_contents(target) if target.exists() else {})
            real_replace(source, destination)

        monkeypatch.setattr(os, "replace", replace)
        toolkit.move_into_place(staged, target, staging)
        seen.append(_contents(target))
        assert seen[0] == whole[0] and seen[-1] == whole[1]
        assert all(state in whole for state in seen), seen

    def test_package_into_empty_place(self, tmp_path):
        staged = _package(tmp_path / "staging" / "M.mlpackage", "new")
        toolkit.move_into_place(staged, tmp_path / "M.mlpackage", tmp_path / "staging")
        assert _contents(tmp_path / "M.mlpackage")["Manifest.json"] == "new"
        assert not staged.exists()

    def test_file_replaces_file(self, tmp_path):
        (tmp_path / "M.mlmodel").write_text("old")
        (tmp_path / "staged.mlmodel").write_text("new")
        toolkit.move_into_place(tmp_path / "staged.mlmodel", tmp_path / "M.mlmodel", tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["M.mlmodel"]
        assert (tmp_path / "M.mlmodel").read_text() == "new"

    def test_file_replaces_folder(self, tmp_path):
        _package(tmp_path / "M.mlmodel", "old")
        (tmp_path / "staged.mlmodel").write_text("new")
        toolkit.move_into_place(tmp_path / "staged.mlmodel", tmp_path / "M.mlmodel", tmp_path)
        assert (tmp_path / "M.mlmodel").read_text() == "new"

    def test_missing_staged_leaves_target(self, tmp_path):
        target = _package(tmp_path / "M.mlmodel", "old")
        with pytest.raises(FileNotFoundError, match="staged must be the file or folder to move into place. "
                                                    "Received: .*nope.mlmodel"):
            toolkit.move_into_place(tmp_path / "nope.mlmodel", target, tmp_path)
        assert _contents(target)["Manifest.json"] == "old"


class _Saves:
    """Stands in for an MLModel: ``save`` writes a package, or fails."""

    def __init__(self, text: str | None):
        self.text = text

    def save(self, path: str) -> None:
        if self.text is None:
            raise OSError("disk full")
        _package(Path(path), self.text)


class TestStagingAndSave:
    def test_staging_folder_is_hidden_beside_target_and_removed(self, tmp_path):
        target = tmp_path / "M.mlpackage"
        with toolkit.staging_folder(target) as staging:
            assert staging.parent == tmp_path
            assert staging.name.startswith(".M.mlpackage.") and staging.name.endswith(".part")
            (staging / "left-over").write_text("x")
        assert list(tmp_path.iterdir()) == []

    def test_save_into_place_replaces_existing(self, tmp_path):
        target = _package(tmp_path / "M.mlpackage", "old")
        with toolkit.staging_folder(target) as staging:
            assert toolkit.save_into_place(_Saves("new"), target, staging) == target
        assert _contents(target)["Manifest.json"] == "new"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["M.mlpackage"]

    def test_failed_save_keeps_old_and_leaves_nothing(self, tmp_path):
        target = _package(tmp_path / "M.mlpackage", "old")
        with pytest.raises(OSError, match="disk full"), toolkit.staging_folder(target) as staging:
            toolkit.save_into_place(_Saves(None), target, staging)
        assert _contents(target)["Manifest.json"] == "old"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["M.mlpackage"]


@pytest.fixture
def ct_log():
    """coremltools' logger at INFO for the test, its level restored after."""
    log = logging.getLogger("coremltools")
    level = log.level
    log.setLevel(logging.INFO)
    yield log
    log.setLevel(level)


class TestQuietCoremltools:
    def test_holds_back_stderr_and_restores_the_log_level(self, ct_log, capsys):
        with toolkit.quiet_coremltools():
            assert ct_log.level == logging.ERROR
            sys.stderr.write("progress bar\n")
        assert ct_log.level == logging.INFO
        assert "progress bar" not in capsys.readouterr().err

    def test_shows_what_it_held_when_the_block_fails(self, ct_log, capsys):
        with pytest.raises(RuntimeError, match="conversion failed"), toolkit.quiet_coremltools():
            sys.stderr.write("the warning that explains it\n")
            raise RuntimeError("conversion failed")
        assert "the warning that explains it" in capsys.readouterr().err
        assert ct_log.level == logging.INFO
