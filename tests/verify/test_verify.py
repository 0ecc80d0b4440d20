"""The parity check end to end: passes on correct exports, fails with the right reason on each fault."""

import json
import re

import pytest

from verify.verify import find_exports, verify_model
from verify.verify_config import VerifyConfig

ALL = ["mlprogram_fp32", "mlprogram_fp16", "neuralnetwork", "swapped_colour", "nn_swapped_colour", "missing_bias",
       "bias_twice", "reversed_labels", "wrong_size"]


@pytest.fixture(scope="module")
def report(model_dir, exports, images_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("verify")
    result = verify_model(model_dir, [exports[name] for name in ALL], images_dir,
                          VerifyConfig(backend="reference"), output_dir=out)
    return result, {name: entry for name, entry in zip(ALL, result.report["exports"], strict=True)}


def _text(entry):
    return "\n".join(entry["failures"])


class TestVerifyModel:
    @pytest.mark.parametrize("name", ["mlprogram_fp32", "mlprogram_fp16", "neuralnetwork"])
    def test_correct_exports_pass(self, report, name):
        entry = report[1][name]
        assert entry["passed"], entry["failures"]
        parity = entry["parity"]
        assert parity["top1_agreement"] == 1.0
        assert parity["max_abs_diff"] <= parity["tolerance"]["max_abs_diff"]
        assert parity["images"] == 8 and len(parity["per_image"]) == 8
        assert parity["disagreeing_images"] == []

    def test_tolerance_follows_precision(self, report):
        assert report[1]["mlprogram_fp32"]["parity"]["tolerance"]["max_abs_diff"] == 1e-4
        assert report[1]["mlprogram_fp16"]["parity"]["tolerance"]["max_abs_diff"] == 1e-2

    def test_overall_result_and_files(self, report):
        result, _ = report
        assert not result.passed
        saved = json.loads(result.report_path.read_text())
        assert saved["passed"] is False and len(saved["exports"]) == len(ALL)
        assert "overall: FAIL" in result.table_path.read_text()
        assert (result.report_path.parent / "verify_config.json").is_file()

    def test_swapped_colour(self, report):
        for name in ("swapped_colour", "nn_swapped_colour"):
            entry = report[1][name]
            assert not entry["passed"]
            assert "static check color_layout" in _text(entry)
            assert entry["parity"]["suspected_cause"]["cause"].startswith("colour order swapped")
            assert entry["parity"]["divergence"]["keras_layer"] == "input (image preprocessing)"

    def test_missing_bias(self, report):
        entry = report[1]["missing_bias"]
        assert "static check bias: image bias is missing" in _text(entry)
        assert entry["parity"]["suspected_cause"]["cause"] == "bias missing (not applied)"
        assert entry["parity"]["divergence"]["keras_layer"] == "input (image preprocessing)"

    def test_bias_applied_twice(self, report):
        """The spec's bias is right; the graph adds it again. Only parity can see it, at the first conv."""
        entry = report[1]["bias_twice"]
        assert not entry["passed"]
        assert not any(c["status"] == "fail" for c in entry["static_checks"])
        assert "probabilities max abs diff" in _text(entry)
        assert entry["parity"]["suspected_cause"]["cause"] == "bias applied twice"
        assert entry["parity"]["divergence"]["keras_layer"] == "conv1"

    def test_reversed_labels(self, report):
        entry = report[1]["reversed_labels"]
        assert "static check class_labels: class labels are in reversed order" in _text(entry)
        assert "top-1 agreement 0.0000" in _text(entry)
        assert entry["parity"]["suspected_cause"]["cause"] == "class labels reversed"
        assert entry["parity"]["divergence"] is None  # every layer matches: the fault is in the labels
        assert len(entry["parity"]["disagreeing_images"]) == 8

    def test_input_size_mismatch(self, report):
        entry = report[1]["wrong_size"]
        assert "static check input_size: image input is 40x40" in _text(entry)
        assert "parity not run" in _text(entry)
        assert "parity" not in entry

    def test_table_names_the_faults(self, report):
        table = report[0].table
        assert "fp32.mlpackage" in table and "PASS" in table
        assert "suspected cause: bias applied twice" in table
        assert "first divergence at Keras layer 'conv1'" in table


class TestFp16Drift:
    def test_drift_past_a_tight_tolerance_fails(self, model_dir, exports, images_dir, tmp_path):
        result = verify_model(model_dir, [exports["mlprogram_fp16"]], images_dir,
                              VerifyConfig(backend="reference", fp16_max_abs_diff=1e-6), output_dir=tmp_path)
        (entry,) = result.report["exports"]
        assert not result.passed
        assert entry["precision"] == "FP16"
        assert "(FP16 tolerance)" in _text(entry)
        assert entry["parity"]["top1_agreement"] == 1.0
        assert not any(c["status"] == "fail" for c in entry["static_checks"])


class TestLayerParity:
    def test_a_fault_the_outputs_hide_fails_at_its_layer(self, model_dir, exports, images_dir, tmp_path):
        """With tolerances too loose to see it in the outputs, "bias applied twice" still fails at conv1."""
        loose = VerifyConfig(backend="reference", fp32_max_abs_diff=1.0, min_top1_agreement=0.0)
        result = verify_model(model_dir, [exports["bias_twice"]], images_dir, loose, output_dir=tmp_path)
        (entry,) = result.report["exports"]
        assert not result.passed
        assert entry["failures"] == [entry["failures"][0]]
        assert entry["failures"][0].startswith("layer parity: Keras layer 'conv1' diverges")
        assert entry["parity"]["divergence"]["image"] == "img0.png"

    def test_can_be_switched_off(self, model_dir, exports, images_dir, tmp_path):
        loose = VerifyConfig(backend="reference", fp32_max_abs_diff=1.0, min_top1_agreement=0.0,
                             check_layers=False)
        assert verify_model(model_dir, [exports["bias_twice"]], images_dir, loose, output_dir=tmp_path).passed


class TestNonFiniteOutputs:
    def test_nan_outputs_fail_and_the_report_stays_json(self, model_dir, exports, images_dir, tmp_path, monkeypatch):
        """Damaged weights can make an export compute NaN: never "within tolerance"."""
        import numpy as np

        from verify import backends

        real = backends.ReferenceBackend.run

        def nan_run(self, rgb, *, keep_intermediates=False):
            result = real(self, rgb, keep_intermediates=keep_intermediates)
            for key, value in result.outputs.items():
                if isinstance(value, dict):
                    result.outputs[key] = {k: float("nan") for k in value}
                elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
                    result.outputs[key] = np.full_like(value, np.nan)
            return result

        monkeypatch.setattr(backends.ReferenceBackend, "run", nan_run)
        config = VerifyConfig(backend="reference", check_layers=False)
        result = verify_model(model_dir, [exports["mlprogram_fp32"]], images_dir, config, output_dir=tmp_path)
        (entry,) = result.report["exports"]
        assert not result.passed
        assert any("images give NaN or Inf probabilities" in f for f in entry["failures"])

        def refuse(constant):
            raise AssertionError(f"bare {constant} in verify_report.json")

        saved = json.loads(result.report_path.read_text(), parse_constant=refuse)
        assert saved["exports"][0]["parity"]["max_abs_diff"] is None
        assert saved["exports"][0]["parity"]["non_finite_images"]
        assert "nan/inf" in result.table


class TestDamagedExports:
    """A damaged or incomplete export is a verify failure naming the file and the problem, not a traceback."""

    @pytest.mark.parametrize(("damage", "message"), [
        ("weights missing", r"(cannot read it|do not load) .*weight\.bin"),
        ("weights truncated", r"its program or weights .* do not load"),
        ("manifest missing", r"Manifest.json is missing"),
        ("spec missing", r"Data/com.apple.CoreML/model.mlmodel is missing"),
        ("spec garbage", r"a damaged or incomplete Core ML model, coremltools cannot read it"),
        ("mlmodel empty", r"is empty \(0 bytes\)"),
        ("mlmodel garbage", r"a damaged or incomplete Core ML model, coremltools cannot read it"),
    ])
    def test_fails_naming_the_file(self, model_dir, exports, images_dir, tmp_path, damage, message):
        import shutil

        source = exports["neuralnetwork" if damage.startswith("mlmodel") else "mlprogram_fp16"]
        export = tmp_path / source.name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, export)
        data = export / "Data" / "com.apple.CoreML"
        if damage == "weights missing":
            (data / "weights" / "weight.bin").unlink()
        elif damage == "weights truncated":
            weights = data / "weights" / "weight.bin"
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
        elif damage == "manifest missing":
            (export / "Manifest.json").unlink()
        elif damage == "spec missing":
            (data / "model.mlmodel").unlink()
        elif damage == "spec garbage":
            (data / "model.mlmodel").write_bytes(b"\x08\x01garbage" * 10)
        elif damage == "mlmodel empty":
            export.write_bytes(b"")
        else:
            export.write_bytes(b"not a protobuf at all \xff\xfe" * 20)
        result = verify_model(model_dir, [export], images_dir, VerifyConfig(backend="reference"),
                              output_dir=tmp_path / "report")
        (entry,) = result.report["exports"]
        assert not result.passed
        assert entry["failures"][0].startswith(f"cannot read the model: {export}")
        assert re.search(message, entry["failures"][0]), entry["failures"][0]

    def test_the_command_exits_1(self, model_dir, exports, images_dir, tmp_path, capsys):
        import shutil

        from boxstrap.cli import main

        export = tmp_path / "Broken.mlpackage"
        shutil.copytree(exports["mlprogram_fp16"], export)
        (export / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").unlink()
        assert main(["verify", str(model_dir), "--coreml", str(export), "--images", str(images_dir)]) == 1
        captured = capsys.readouterr()
        assert "Broken.mlpackage: a damaged or incomplete Core ML model" in captured.out + captured.err
        assert "weight.bin" in captured.out + captured.err


class TestInputs:
    def test_finds_exports_in_the_model_dir(self, tmp_path):
        (tmp_path / "coreml").mkdir()
        (tmp_path / "coreml" / "a.mlmodel").write_bytes(b"")
        (tmp_path / "b.mlpackage").mkdir()
        assert [p.name for p in find_exports(tmp_path)] == ["b.mlpackage", "a.mlmodel"]

    def test_no_images(self, model_dir, exports):
        with pytest.raises(ValueError, match="images must be a folder"):
            verify_model(model_dir, [exports["neuralnetwork"]], None)

    def test_missing_export(self, model_dir, images_dir, tmp_path):
        with pytest.raises(FileNotFoundError, match="exports: no Core ML model"):
            verify_model(model_dir, [tmp_path / "x.mlpackage"], images_dir, output_dir=tmp_path)

    def test_no_exports_found(self, model_dir, images_dir, tmp_path):
        with pytest.raises(FileNotFoundError, match="No .mlpackage or .mlmodel"):
            verify_model(model_dir, None, images_dir, output_dir=tmp_path)

    def test_bad_config_type(self, model_dir, images_dir):
        with pytest.raises(TypeError, match="config must be a VerifyConfig"):
            verify_model(model_dir, None, images_dir, {"backend": "reference"})
