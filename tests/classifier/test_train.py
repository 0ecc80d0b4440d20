"""Tests of classifier.train: the two phases, the refit on every split, the model folder, resume, and
TrainConfig's errors."""

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
    base = dict(backbone="vgg16", weights="none", input_size=(32, 32), filters=TINY_FILTERS, head_epochs=3, views=2,
                fine_tune_from="block5_conv3", fine_tune_epochs=2, batch_size=8)
    return TrainConfig(**{**base, **changes})


@pytest.fixture
def tiny_manifest(tmp_path):
    return make_manifest(tmp_path / "data")


def _layer_weights(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


def _train_measured(root, config):
    """Train; return the manifest, the model folder, the split run's probabilities per measured split
    and the weights by layer after each fit (the split run's, then the refit's if any)."""
    import classifier.metrics

    manifest = make_manifest(root / "data")
    measured, fitted = {}, []
    real_metrics, real_recipe = classifier.metrics.classification_metrics, train_module._fit_recipe

    def metrics_spy(y_true, probabilities, labels):
        measured[("valid", "test")[len(measured)]] = np.asarray(probabilities)  # train() measures in this order
        return real_metrics(y_true, probabilities, labels)

    def recipe_spy(model, *args, **kwargs):
        best = real_recipe(model, *args, **kwargs)
        fitted.append(_layer_weights(model))
        return best

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(classifier.metrics, "classification_metrics", metrics_spy)
        patch.setattr(train_module, "_fit_recipe", recipe_spy)
        out = train(manifest.root, root / "model", config, verbose=0)
    return manifest, out, measured, fitted


def _max_difference(a: dict, b: dict, names) -> float:
    return max(float(np.abs(x - y).max()) for name in names for x, y in zip(a[name], b[name], strict=True))


@pytest.fixture(scope="module")
def trained_measured(tmp_path_factory):
    """One tiny two-phase training run that ships the model refitted on every split (the default)."""
    return _train_measured(tmp_path_factory.mktemp("trained"), tiny_config())


@pytest.fixture(scope="module")
def trained(trained_measured):
    """The manifest and model folder of ``trained_measured``, for the tests that only read its output."""
    return trained_measured[:2]


@pytest.fixture(scope="module")
def trained_split(tmp_path_factory):
    """The same run with ``ship="split"``: the model saved is the one measured."""
    return _train_measured(tmp_path_factory.mktemp("trained_split"), tiny_config(ship="split"))


def _test_probabilities(manifest, out):
    from datasets.tf_input import load_split

    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    images, labels, _ = load_split(manifest, "test", vgg16_preprocessing((32, 32)))
    probabilities, class_map = model.predict(vgg16_preprocessing((32, 32)).apply(images), verbose=0)
    return probabilities, class_map, labels


def _best_epochs(history):
    """The epoch (from 1) of the lowest valid loss of phases 1 and 2 of a split run's history."""
    phase, val_loss = np.asarray(history["phase"]), np.asarray(history["val_loss"])
    return {name: int(np.argmin(val_loss[phase == p])) + 1 if np.any(phase == p) else 0
            for name, p in (("head", 1), ("fine_tune", 2))}


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

    def test_split_model_loads_in_safe_mode_and_matches_the_metrics(self, trained_split):
        tiny_manifest, out, measured, fitted = trained_split
        probabilities, class_map, labels = _test_probabilities(tiny_manifest, out)
        assert class_map.shape == (4, 2, 2, 2)
        metrics = json.loads((out / "metrics.json").read_text())
        assert np.mean(probabilities.argmax(1) == labels) == pytest.approx(metrics["test"]["accuracy"])
        # The model saved is the one the test metrics were computed from (from float16 features).
        np.testing.assert_allclose(probabilities, measured["test"], rtol=1e-4, atol=1e-5)
        (split_run,) = fitted  # no refit
        saved = _layer_weights(keras.saving.load_model(out / "model.keras", safe_mode=True))
        assert saved.keys() == split_run.keys()
        assert _max_difference(saved, split_run, saved) == 0.0
        assert metrics["shipped_model"] == {"trained_on": ["train"], "images": 8,
                                            "epochs": _best_epochs(metrics["history"])}


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
        assert all(state[f"phase{p}"]["done"] for p in (1, 2, 3, 4))  # the split run and the refit

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

    @pytest.mark.parametrize("ship", ["split", "all"])
    def test_multilevel_head_trains_and_saves_a_plain_model(self, tiny_manifest, tmp_path, monkeypatch, ship):
        folded = []
        real = train_module.fold_standardisation
        monkeypatch.setattr(train_module, "fold_standardisation",
                            lambda kernel, bias, mean, std: folded.append(mean) or real(kernel, bias, mean, std))
        out = train(tiny_manifest.root, tmp_path / "model", tiny_config(head="multilevel", fine_tune_from=None,
                                                                        head_hidden=8, ship=ship), verbose=0)
        model = keras.saving.load_model(out / "model.keras", safe_mode=True)
        names = [layer.name for layer in model.layers]
        assert {"head_block3_pool", "head_block4_pool", "head_features", "head_hidden"} <= set(names)
        assert not any("standardis" in name for name in names)  # folded into head_hidden
        probabilities, class_map, labels = _test_probabilities(tiny_manifest, out)
        assert class_map.shape == (4, 2, 2, 2)
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["epochs"] == {"head": 3, "fine_tune": 0}
        if ship == "split":
            assert np.mean(probabilities.argmax(1) == labels) == pytest.approx(metrics["test"]["accuracy"])
            assert len(folded) == 1
        else:
            # The refit standardises with its own statistics (of every split), folded the same way.
            assert len(folded) == 2 and not np.allclose(folded[0], folded[1])
            np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
            assert metrics["shipped_model"]["epochs"]["head"] == len(metrics["shipped_model"]["history"]["phase"])

    def test_refuses_to_overwrite(self, tiny_manifest, tmp_path):
        (tmp_path / "model").mkdir()
        with pytest.raises(FileExistsError, match="--overwrite"):
            train(tiny_manifest.root, tmp_path / "model", tiny_config(), verbose=0)

    def test_overwrite_replaces(self, tiny_manifest, tmp_path):
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "model.keras").write_text("an earlier model")
        (tmp_path / "model" / "old.txt").write_text("old")
        out = train(tiny_manifest.root, tmp_path / "model", tiny_config(fine_tune_from=None), overwrite=True,
                    verbose=0)
        assert not (out / "old.txt").exists() and (out / "model.keras").stat().st_size > 100

    def test_overwrite_never_empties_a_folder_that_is_not_a_model(self, tiny_manifest, tmp_path):
        (tmp_path / "photos").mkdir()
        (tmp_path / "photos" / "IMG_1.jpg").write_bytes(b"a photo")
        with pytest.raises(FileExistsError, match="is not a model folder written by boxstrap train"):
            train(tiny_manifest.root, tmp_path / "photos", tiny_config(), overwrite=True, verbose=0)
        assert (tmp_path / "photos" / "IMG_1.jpg").read_bytes() == b"a photo"

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


class TestShipAll:
    """``ship="all"``: the split run measures, then a model fitted on every split is saved."""

    def test_metrics_say_what_the_shipped_model_saw(self, trained):
        _, out = trained
        metrics = json.loads((out / "metrics.json").read_text())
        shipped = metrics["shipped_model"]
        assert shipped["trained_on"] == ["train", "valid", "test"]
        assert shipped["images"] == 8 + 4 + 4
        # The refit ran exactly the epochs the split run's kept weights came from, per phase.
        best = _best_epochs(metrics["history"])
        assert shipped["epochs"] == best and best["head"] >= 1 and best["fine_tune"] >= 1
        assert shipped["history"]["phase"] == [3] * best["head"] + [4] * best["fine_tune"]
        assert "val_loss" not in shipped["history"]  # no validation data in the refit
        # The split run's numbers are unchanged: its epochs and its valid/test metrics.
        assert metrics["epochs"] == {"head": 3, "fine_tune": 2}
        assert metrics["valid"]["count"] == metrics["test"]["count"] == 4

    def test_saved_model_is_the_refit_from_the_same_start(self, trained_measured):
        manifest, out, _, fitted = trained_measured
        probabilities, class_map, _ = _test_probabilities(manifest, out)
        assert class_map.shape == (4, 2, 2, 2)
        np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
        split_run, refit = fitted
        saved = _layer_weights(keras.saving.load_model(out / "model.keras", safe_mode=True))
        assert _max_difference(saved, refit, saved) == 0.0  # the refit is what was saved
        trained_layers = ["block5_conv3", "class_map"]  # fine_tune_from on
        frozen = [name for name in saved if name not in trained_layers]
        assert _max_difference(saved, split_run, trained_layers) > 1e-4
        # Both started from the same weights: the layers neither trained are identical.
        assert frozen and _max_difference(saved, split_run, frozen) == 0.0

    def test_split_run_is_the_same_whatever_is_shipped(self, trained_measured, trained_split):
        _, out_all, measured_all, fitted_all = trained_measured
        _, out_split, measured_split, fitted_split = trained_split
        assert _max_difference(fitted_all[0], fitted_split[0], fitted_split[0]) < 1e-6
        for split in ("valid", "test"):
            np.testing.assert_allclose(measured_all[split], measured_split[split], rtol=1e-4, atol=1e-5)
        history_all = json.loads((out_all / "metrics.json").read_text())["history"]
        history_split = json.loads((out_split / "metrics.json").read_text())["history"]
        np.testing.assert_allclose(history_all["val_loss"], history_split["val_loss"], rtol=1e-5)


class TestTrainConfig:
    def test_ships_the_model_trained_on_every_split_by_default(self):
        assert TrainConfig().ship == "all"
        assert TrainConfig(ship="split").ship == "split"

    def test_the_default_backbone_is_efficientnet_lite0_with_imagenet_weights(self):
        config = TrainConfig()
        assert (config.backbone, config.weights, config.boundary) == ("efficientnet-lite0", "imagenet", "head_context")
        assert TrainConfig(fine_tune_from="block10_expand_conv").boundary == "block9_add"

    def test_a_config_saved_with_the_former_head_name_reads_as_the_feature_layer_head(self, tmp_path):
        """train_config.json files written before the default head was renamed say "block5"."""
        path = tmp_path / "train_config.json"
        path.write_text('{"backbone": "vgg16", "head": "block5"}', encoding="utf-8")
        assert load_config(TrainConfig, path).head == "feature_layer"
        assert TrainConfig(backbone="vgg16", head="block5") == TrainConfig(backbone="vgg16")

    def test_boundary(self):
        vgg = {"backbone": "vgg16"}
        assert TrainConfig(**vgg).boundary == "block5_conv3"
        assert TrainConfig(**vgg, head="multilevel").boundary == "head_features"
        assert TrainConfig(**vgg, head="feature_layer", fine_tune_from="block5_conv3").boundary == "block5_conv2"
        assert TrainConfig(**vgg, head="block5", fine_tune_from="block5_conv1").boundary == "block4_pool"

    @pytest.mark.parametrize(("changes", "match"), [
        ({"input_size": (240, 320)}, "multiple of 32"),
        ({"pooling": "median"}, "pooling must be one of"),
        ({"head_loss": "hinge"}, "head_loss must be one of"),
        ({"fine_tune_from": "block5_pool"}, "fine_tune_from must be None or a layer of the vgg16 backbone"),
        ({"head": "multilevel", "fine_tune_from": "block5_conv1"}, "fine_tune_from needs head='feature_layer'"),
        ({"head": "resnet"}, "head must be one of"),
        ({"head_hidden": 0}, "head_hidden must be an int >= 1"),
        ({"views": 0}, "views must be an int >= 1"),
        ({"fine_tune_epochs": -1}, "fine_tune_epochs must be an int >= 0"),
        ({"head_learning_rate": 0}, "head_learning_rate must be > 0"),
        ({"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
        ({"weights": ""}, "weights must be"),
        ({"ship": "valid"}, r"ship must be one of \('all', 'split'\)"),
    ])
    def test_invalid(self, changes, match):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**{"backbone": "vgg16", **changes})


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
