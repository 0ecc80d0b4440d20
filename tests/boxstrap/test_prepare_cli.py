import json

import numpy as np
import pytest
from PIL import Image

from boxstrap.cli import main
from datasets.manifest import load_manifest
from datasets.prepare_config import PrepareConfig
from groundwork.config import save_config


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "src"
    for k, label in enumerate(("one", "ten")):
        for i in range(4):
            pixels = np.random.default_rng(10 * k + i).integers(0, 255, (3, 4, 3), dtype=np.uint8)
            path = root / label / f"IMG_{100 * k + 10 * i:04d}.JPG"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).resize((32, 24), Image.Resampling.NEAREST).save(path)
    (root / "one" / "notes.txt").write_text("not a photo")
    return root


class TestPrepareCommand:
    def test_prepares_and_prints_counts_and_outputs(self, src, tmp_path, capsys):
        out = tmp_path / "out"
        assert main(["prepare", str(src), "--out", str(out), "--valid", "0.25", "--test", "0.25",
                     "--max-side", "16", "--seed", "3"]) == 0
        printed = capsys.readouterr().out
        assert "8 images in 2 classes" in printed and "capture groups" in printed
        assert "notes.txt: not an image file" in printed
        assert f"the manifest to {out.resolve() / 'manifest.json'}" in printed
        manifest = load_manifest(out)
        assert manifest.settings["max_side"] == 16 and manifest.settings["seed"] == 3
        assert {r.size for r in manifest.records} == {(16, 12)}

    def test_burst_rules_can_be_switched_off(self, src, tmp_path):
        out = tmp_path / "out"
        assert main(["prepare", str(src), "--out", str(out), "--burst-gap", "none",
                     "--burst-seconds", "none", "--burst-max-distance", "none"]) == 0
        config = json.loads((out / "prepare_config.json").read_text())
        assert config["burst_gap"] is None and config["burst_seconds"] is None
        assert config["burst_max_distance"] is None

    def test_config_file_then_flags(self, src, tmp_path):
        saved = tmp_path / "base.json"
        save_config(PrepareConfig(src=src, out=tmp_path / "ignored", seed=7, max_side=20), saved)
        out = tmp_path / "out"
        assert main(["prepare", str(src), "--out", str(out), "--config", str(saved), "--max-side", "24"]) == 0
        config = json.loads((out / "prepare_config.json").read_text())
        assert config["seed"] == 7 and config["max_side"] == 24 and config["out"] == str(out)

    def test_error_is_printed_not_raised(self, tmp_path, capsys):
        (tmp_path / "only" / "one").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "only" / "one" / "a.png")
        assert main(["prepare", str(tmp_path / "only"), "--out", str(tmp_path / "out")]) == 1
        assert "need at least 2 classes" in capsys.readouterr().err

    def test_second_different_run_needs_overwrite(self, src, tmp_path, capsys):
        out = tmp_path / "out"
        assert main(["prepare", str(src), "--out", str(out)]) == 0
        assert main(["prepare", str(src), "--out", str(out), "--seed", "5"]) == 1
        assert "--overwrite" in capsys.readouterr().err
        assert main(["prepare", str(src), "--out", str(out), "--seed", "5", "--overwrite"]) == 0

    def test_given_layout_prints_leakage(self, tmp_path, capsys):
        root = tmp_path / "src"
        for split in ("training", "valid"):
            for label in ("one", "ten"):
                for i in range(2):
                    # valid images repeat the first training image of their class: leakage
                    seed = {"one": 0, "ten": 50}[label] + (i if split == "training" else 0)
                    pixels = np.random.default_rng(seed).integers(0, 255, (3, 4, 3), dtype=np.uint8)
                    path = root / split / label / f"{split}_{i}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(pixels).resize((32, 24), Image.Resampling.NEAREST).save(path)
        assert main(["prepare", str(root), "--out", str(tmp_path / "out")]) == 0
        assert "leakage:" in capsys.readouterr().out
