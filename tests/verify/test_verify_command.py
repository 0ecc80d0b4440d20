"""``boxstrap verify``: flags to VerifyConfig, exit status, printed table."""

import json

from boxstrap.cli import main


class TestVerifyCommand:
    def test_passes_with_exit_status_0(self, model_dir, exports, images_dir, tmp_path, capsys):
        status = main(["verify", str(model_dir), "--images", str(images_dir), "--coreml",
                       str(exports["mlprogram_fp32"]), "--coreml", str(exports["neuralnetwork"]),
                       "--backend", "reference", "--output", str(tmp_path)])
        out = capsys.readouterr().out
        assert status == 0
        assert "overall: PASS" in out and f"wrote the verify report to {tmp_path}" in out

    def test_fails_with_exit_status_1(self, model_dir, exports, images_dir, tmp_path, capsys):
        status = main(["verify", str(model_dir), "--images", str(images_dir), "--coreml",
                       str(exports["swapped_colour"]), "--backend", "reference", "--output", str(tmp_path)])
        assert status == 1
        assert "static check color_layout" in capsys.readouterr().out

    def test_config_file_then_flags(self, model_dir, exports, images_dir, tmp_path):
        config = tmp_path / "verify_config.json"
        config.write_text(json.dumps({"backend": "reference", "fp16_max_abs_diff": 1e-6, "max_images": 2}))
        status = main(["verify", str(model_dir), "--images", str(images_dir), "--coreml",
                       str(exports["mlprogram_fp16"]), "--config", str(config), "--output", str(tmp_path)])
        assert status == 1
        status = main(["verify", str(model_dir), "--images", str(images_dir), "--coreml",
                       str(exports["mlprogram_fp16"]), "--config", str(config), "--fp16-tol", "0.01",
                       "--output", str(tmp_path)])
        assert status == 0
        report = json.loads((tmp_path / "verify_report.json").read_text())
        assert report["config"]["fp16_max_abs_diff"] == 0.01 and report["images"]["count"] == 2

    def test_missing_model_dir_is_a_clear_error(self, images_dir, tmp_path, capsys):
        assert main(["verify", str(tmp_path / "none"), "--images", str(images_dir)]) == 1
        assert "verify: error:" in capsys.readouterr().err
