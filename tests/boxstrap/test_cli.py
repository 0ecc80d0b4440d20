import sys
from pathlib import Path

import pytest

from boxstrap.environment import EnvironmentClash, check_stage_packages


class TestEnvironment:
    def test_own_packages_pass(self):
        check_stage_packages()

    def test_hugging_face_datasets_is_detected(self, tmp_path, monkeypatch):
        fake = tmp_path / "datasets"
        fake.mkdir()
        (fake / "__init__.py").write_text("# Hugging Face datasets\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "datasets", raising=False)
        with pytest.raises(EnvironmentClash, match="Hugging Face's `datasets`.*own virtual environment"):
            check_stage_packages()

    def test_cli_reports_the_clash(self, tmp_path, monkeypatch, capsys):
        from boxstrap.cli import main

        fake = tmp_path / "datasets"
        fake.mkdir()
        (fake / "__init__.py").write_text("")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "datasets", raising=False)
        assert main(["--help"]) == 2
        assert "pip uninstall datasets" in capsys.readouterr().err


class TestCli:
    def test_help_lists_commands(self, capsys):
        from boxstrap.cli import main

        with pytest.raises(SystemExit) as exit_info:
            main(["--help"])
        assert exit_info.value.code == 0
        assert "COMMAND" in capsys.readouterr().out

    def test_no_command_prints_help(self, capsys):
        from boxstrap.cli import main

        assert main([]) == 2
        assert "usage: boxstrap" in capsys.readouterr().out

    def test_train_boxes_passes_its_settings_to_the_box_training(self, monkeypatch, tmp_path, capsys):
        import detector.train_box_model
        from boxstrap.cli import main

        seen = {}

        def fake(model, boxes, images, out, config, **kwargs):
            out = Path(out)
            seen["config"] = config
            out.mkdir()
            (out / "box_metrics.json").write_text("{}")
            return out

        monkeypatch.setattr(detector.train_box_model, "train_box_model", fake)
        assert main(["train-boxes", "M", "B.json", "I", "--out", str(tmp_path / "box"), "--paste-photos", "1",
                     "--rounds", "3"]) == 0
        assert (seen["config"].paste_photos, seen["config"].rounds) == (1, 3)
        assert "wrote the box model" in capsys.readouterr().out
