import dataclasses
import json

import pytest

from groundwork.config import load_config, save_config


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
