"""Tests of the ``boxstrap train`` command (boxstrap/commands/train.py)."""

from __future__ import annotations

import json

import pytest

from boxstrap.cli import build_parser, main
from classifier.train_config import TrainConfig
from groundwork.config import save_config

from ._tiny_data import TINY_FILTERS, make_manifest


def parse(*argv):
    return build_parser().parse_args(["train", *argv])


class TestBuildConfig:
    def test_defaults(self, tmp_path):
        from boxstrap.commands.train import build_config

        assert build_config(parse("data", "--out", str(tmp_path))) == TrainConfig()

    def test_flags_override_the_config_file(self, tmp_path):
        from boxstrap.commands.train import build_config

        save_config(TrainConfig(backbone="vgg16", dropout=0.6, views=3), tmp_path / "c.json")
        config = build_config(parse("data", "--out", "m", "--config", str(tmp_path / "c.json"), "--views", "4",
                                    "--input-size", "288", "384", "--fine-tune-from", "block5_conv3"))
        assert (config.dropout, config.views, config.input_size) == (0.6, 4, (288, 384))
        assert config.fine_tune_from == "block5_conv3"
        assert config.backbone == "vgg16"  # the file's
        config = build_config(parse("data", "--out", "m", "--fine-tune-from", "none", "--no-class-weights"))
        assert config.fine_tune_from is None and config.class_weights is False

    @pytest.mark.parametrize(("start", "other"), [("vgg16", "efficientnet-lite0"), ("efficientnet-lite0", "vgg16")])
    def test_another_backbone_takes_its_own_defaults(self, tmp_path, start, other):
        from boxstrap.commands.train import build_config

        save_config(TrainConfig(backbone=start, views=3), tmp_path / "c.json")
        config = build_config(parse("data", "--out", "m", "--config", str(tmp_path / "c.json"), "--backbone", other))
        assert config == TrainConfig(backbone=other, views=3)  # its weights and widths, not the file's
        config = build_config(parse("data", "--out", "m", "--backbone", other, "--weights", "none"))
        assert (config.backbone, config.weights) == (other, "none")

    def test_ship_flag_reaches_the_config(self, tmp_path):
        from boxstrap.commands.train import build_config

        assert build_config(parse("data", "--out", "m", "--ship", "split")).ship == "split"
        save_config(TrainConfig(ship="split"), tmp_path / "c.json")
        assert build_config(parse("data", "--out", "m", "--config", str(tmp_path / "c.json"))).ship == "split"
        assert build_config(parse("data", "--out", "m", "--config", str(tmp_path / "c.json"),
                                  "--ship", "all")).ship == "all"
        with pytest.raises(SystemExit):
            parse("data", "--out", "m", "--ship", "test")

    def test_bad_flag_value_is_a_clear_error(self, tmp_path, capsys):
        assert main(["train", str(tmp_path), "--out", str(tmp_path / "m"), "--input-size", "100", "100"]) == 1
        assert "multiple of 32 (the efficientnet-lite0 backbone" in capsys.readouterr().err


def test_train_command_end_to_end(tmp_path, capsys):
    manifest = make_manifest(tmp_path / "data")
    save_config(TrainConfig(backbone="vgg16", weights="none", input_size=(32, 32), filters=TINY_FILTERS, head_epochs=2),
                tmp_path / "tiny.json")
    out = tmp_path / "model"
    assert main(["train", str(manifest.root), "--out", str(out), "--config", str(tmp_path / "tiny.json"),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote model to {out}" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    # It says which photos the shipped model saw, and that the accuracy is the split run's estimate.
    # With the photos it rests on and its 95% interval.
    valid = metrics["valid"]
    low, high = valid["accuracy_interval"]
    assert (f"accuracy (split run's estimate): valid {valid['accuracy']:.3f} ({valid['count']} photos; "
            f"95% interval {low:.2f}-{high:.2f})") in printed
    assert "trained on all 16 photos (train, valid and test)" in printed
    assert json.loads((out / "train_config.json").read_text())["filters"] == list(TINY_FILTERS)
    assert main(["train", str(manifest.root), "--out", str(out), "--config", str(tmp_path / "tiny.json")]) == 1
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--weights", "--pooling", "--head-loss", "--fine-tune-from", "--ship"])
def test_help_mentions_the_defaults(flag, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert flag in capsys.readouterr().out
