"""Tests of classifier.train: the two phases, the model folder, resume, and TrainConfig's errors."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import classifier.train as train_module
from classifier.backbones.vgg16 import vgg16_preprocessing
from classifier.train import train
from classifier.train_config import TrainConfig
from datasets.preprocessing import Preprocessing
from groundwork.config import load_config

from ._tiny_data import TINY_FILTERS, make_manifest


def tiny_config(**changes):
    base = dict(weights="none", input_size=(32, 32), filters=TINY_FILTERS, head_epochs=3, views=2,
                fine_tune_from="block5_conv3", fine_tune_epochs=2, batch_size=8)
    return TrainConfig(**{**base, **changes})


@pytest.fixture
def tiny_manifest(tmp_path):
    return make_manifest(tmp_path / "data")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny two-phase training run shared by the tests that only read its output."""
    root = tmp_path_factory.mktemp("trained")
    manifest = make_manifest(root / "data")
    return manifest, train(manifest.root, root / "model", tiny_config(), verbose=0)


class TestTrain:
    def test_writes_a_complete_model_folder(self, trained):
        _, out = trained
        names = {p.name for p in out.iterdir()}
        assert {"model.keras", "preprocessing.json", "labels.json", "train_config.json", "metrics.json",
                "training_curves.png", "confusion_matrix.png"} <= names
        assert json.loads((out / "labels.json").read_text()) == ["blue", "red"]
        assert Preprocessing.load(out) == vgg16_preprocessing((32, 32))
        assert load_config(TrainConfig, out / "train_config.json") == tiny_config()
        metrics = json.loads((out / "metrics.json").read_text())
        for split in ("valid", "test"):
            assert metrics[split]["count"] == 4
            assert np.asarray(metrics[split]["confusion_matrix"]).sum() == 4
            assert set(metrics[split]["per_class"]) == {"blue", "red"}
        assert metrics["epochs"] == {"head": 3, "fine_tune": 2}
        assert np.all(np.isfinite(metrics["history"]["loss"]))
        # Nothing is left beside the model folder.
        assert sorted(p.name for p in out.parent.iterdir()) == ["data", "model"]

    def test_saved_model_loads_in_safe_mode_and_matches_the_metrics(self, trained):
        from datasets.tf_input import load_split

        tiny_manifest, out = trained
        model = keras.saving.load_model(out / "model.keras", safe_mode=True)
        images, labels, _ = load_split(tiny_manifest, "test", vgg16_preprocessing((32, 32)))
        probabilities, class_map = model.predict(vgg16_preprocessing((32, 32)).apply(images), verbose=0)
        assert class_map.shape == (4, 2, 2, 2)
        metrics = json.loads((out / "metrics.json").read_text())
        assert np.mean(probabilities.argmax(1) == labels) == pytest.approx(metrics["test"]["accuracy"])

    @pytest.mark.slow
    def test_interrupted_run_resumes_with_cached_features(self, tiny_manifest, tmp_path, monkeypatch):
        out = tmp_path / "model"

        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(train_module, "_write_model_dir", interrupted)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_manifest.root, out, tiny_config(), verbose=0)
        assert not out.exists()
        work = tmp_path / ".model.partial"
        state = json.loads((work / "state.json").read_text())
        assert state["phase1"]["done"] and state["phase2"]["done"]

        monkeypatch.undo()
        calls = []
        import classifier.features

        real = classifier.features.extract_features
        monkeypatch.setattr(classifier.features, "extract_features", lambda *a, **k: calls.append(1) or real(*a, **k))
        train(tiny_manifest.root, out, tiny_config(), verbose=0)
        assert calls == []  # every feature came from the cache
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["epochs"] == {"head": 3, "fine_tune": 2}
        assert not work.exists()

    def test_multilevel_head_trains_and_saves_a_plain_model(self, tiny_manifest, tmp_path):
        from datasets.tf_input import load_split

        out = train(tiny_manifest.root, tmp_path / "model", tiny_config(head="multilevel", fine_tune_from=None,
                                                                        head_hidden=8), verbose=0)
        model = keras.saving.load_model(out / "model.keras", safe_mode=True)
        names = [layer.name for layer in model.layers]
        assert {"head_block3_pool", "head_block4_pool", "head_features", "head_hidden"} <= set(names)
        assert not any("standardis" in name for name in names)  # folded into head_hidden
        images, labels, _ = load_split(tiny_manifest, "test", vgg16_preprocessing((32, 32)))
        probabilities, class_map = model.predict(vgg16_preprocessing((32, 32)).apply(images), verbose=0)
        assert class_map.shape == (4, 2, 2, 2)
        metrics = json.loads((out / "metrics.json").read_text())
        assert np.mean(probabilities.argmax(1) == labels) == pytest.approx(metrics["test"]["accuracy"])
        assert metrics["epochs"] == {"head": 3, "fine_tune": 0}

    def test_refuses_to_overwrite(self, tiny_manifest, tmp_path):
        (tmp_path / "model").mkdir()
        with pytest.raises(FileExistsError, match="--overwrite"):
            train(tiny_manifest.root, tmp_path / "model", tiny_config(), verbose=0)

    def test_overwrite_replaces(self, tiny_manifest, tmp_path):
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "old.txt").write_text("old")
        out = train(tiny_manifest.root, tmp_path / "model", tiny_config(fine_tune_from=None), overwrite=True,
                    verbose=0)
        assert not (out / "old.txt").exists() and (out / "model.keras").is_file()

    def test_empty_valid_split(self, tmp_path):
        manifest = make_manifest(tmp_path / "data", per_split=(4, 0, 2))
        with pytest.raises(ValueError, match="'valid' split .* is empty"):
            train(manifest.root, tmp_path / "model", tiny_config(), verbose=0)

    def test_missing_manifest(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="No manifest"):
            train(tmp_path, tmp_path / "model", tiny_config(), verbose=0)

    def test_config_type(self, tiny_manifest, tmp_path):
        with pytest.raises(TypeError, match="config must be a TrainConfig"):
            train(tiny_manifest.root, tmp_path / "model", {"weights": "none"}, verbose=0)


class TestTrainConfig:
    def test_boundary(self):
        assert TrainConfig().boundary == "block5_conv3"
        assert TrainConfig(head="multilevel").boundary == "head_features"
        assert TrainConfig(head="block5", fine_tune_from="block5_conv3").boundary == "block5_conv2"
        assert TrainConfig(head="block5", fine_tune_from="block5_conv1").boundary == "block4_pool"

    @pytest.mark.parametrize(("changes", "match"), [
        ({"input_size": (240, 320)}, "multiple of 32"),
        ({"pooling": "median"}, "pooling must be one of"),
        ({"head_loss": "hinge"}, "head_loss must be one of"),
        ({"fine_tune_from": "block5_pool"}, "fine_tune_from must be None or a layer of the vgg16 backbone"),
        ({"head": "multilevel", "fine_tune_from": "block5_conv1"}, "fine_tune_from needs head='block5'"),
        ({"head": "resnet"}, "head must be one of"),
        ({"head_hidden": 0}, "head_hidden must be an int >= 1"),
        ({"views": 0}, "views must be an int >= 1"),
        ({"fine_tune_epochs": -1}, "fine_tune_epochs must be an int >= 0"),
        ({"head_learning_rate": 0}, "head_learning_rate must be > 0"),
        ({"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
        ({"weights": ""}, "weights must be"),
    ])
    def test_invalid(self, changes, match):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**changes)


@pytest.mark.slow
def test_cache_dir_is_reused_by_a_second_run(tmp_path, monkeypatch):
    import classifier.features

    manifest = make_manifest(tmp_path / "data")
    config = tiny_config(cache_dir=str(tmp_path / "cache"), fine_tune_from=None, head_epochs=1)
    train(manifest.root, tmp_path / "first", config, verbose=0)
    calls = []
    real = classifier.features.extract_features
    monkeypatch.setattr(classifier.features, "extract_features", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = train(manifest.root, tmp_path / "second", config, verbose=0)
    assert calls == [] and (out / "model.keras").is_file()
    assert json.loads((out / "metrics.json").read_text())["epochs"]["head"] == 1
