import dataclasses
import json
import os
import sys

import pytest

from boxstrap import atomic
from boxstrap.config import load_config, save_config
from boxstrap.environment import EnvironmentClash, check_stage_packages


class TestAtomic:
    def test_write_json(self, tmp_path):
        path = atomic.write_json(tmp_path / "sub" / "a.json", {"x": [1, 2]})
        assert json.loads(path.read_text()) == {"x": [1, 2]}

    def test_interrupted_write_keeps_old_content(self, tmp_path):
        path = tmp_path / "a.txt"
        path.write_text("old")
        with pytest.raises(KeyboardInterrupt):
            with atomic.atomic_open(path) as handle:
                handle.write(b"new, half")
                raise KeyboardInterrupt
        assert path.read_text() == "old"
        assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]

    @pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
    def test_unwritable_folder_is_named(self, tmp_path):
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(PermissionError, match="locked"):
                atomic.write_text(locked / "a.txt", "x")
        finally:
            locked.chmod(0o700)


@dataclasses.dataclass(frozen=True)
class _Config:
    name: str = "a"
    size: tuple[int, int] = (2, 3)

    def __post_init__(self):
        if len(self.size) != 2:
            raise ValueError(f"size must be 2 ints. Received: {self.size}")


class TestConfig:
    def test_round_trip(self, tmp_path):
        save_config(_Config(size=(4, 5)), tmp_path / "c.json")
        assert json.loads((tmp_path / "c.json").read_text())["config"] == "_Config"
        assert load_config(_Config, tmp_path / "c.json") == _Config(size=(4, 5))

    def test_unknown_field_is_named(self, tmp_path):
        (tmp_path / "c.json").write_text('{"name": "a", "colour": 1}')
        with pytest.raises(ValueError, match=r"unknown _Config fields \['colour'\]"):
            load_config(_Config, tmp_path / "c.json")

    def test_other_config_class_or_refused_value_names_the_file(self, tmp_path):
        path = tmp_path / "c.json"
        path.write_text('{"config": "TrainConfig", "name": "a"}')
        with pytest.raises(ValueError, match=r"c\.json holds a TrainConfig, not a _Config"):
            load_config(_Config, path)
        path.write_text("[1, 2]")
        with pytest.raises(ValueError, match=r"c\.json: a _Config file holds a JSON object"):
            load_config(_Config, path)
        path.write_text('{"config": "_Config", "size": [1, 2, 3]}')
        with pytest.raises(ValueError, match=r"c\.json: size must be 2 ints"):
            load_config(_Config, path)

    def test_not_a_dataclass(self, tmp_path):
        with pytest.raises(TypeError, match="Received: dict"):
            save_config({}, tmp_path / "c.json")


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


def test_atomic_output_has_the_usual_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        path = atomic.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
