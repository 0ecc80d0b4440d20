"""load_box_model reads through classifier.model_dir: the same checks and errors as load_trained_model."""

import hashlib
import json
import shutil

import pytest

from classifier.backbones.vgg16 import VGG16, vgg16_preprocessing
from classifier.model import build_classifier
from classifier.trained_model import load_trained_model
from detector.box_model import build_box_model
from detector.box_model_dir import BoxModel, load_box_model, save_box_model
from detector.box_train_config import BoxTrainConfig
from tests.classifier._model_dirs import lambda_model, write_model_dir

TINY = (4, 4, 8, 8, 8)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A box model directory and a trained model directory, copied by the tests that spoil them."""
    root = tmp_path_factory.mktemp("dirs")
    classifier = build_classifier(2, (32, 32), backbone="vgg16", filters=TINY, weights="none")
    box_model, _ = build_box_model(classifier, BoxTrainConfig(head="cells", hidden=8, reduce_filters=4), feature_layer=VGG16.feature_layer)
    box_dir = save_box_model(box_model, root / "box", preprocessing=vgg16_preprocessing((32, 32)),
                             labels=("one", "ten"), config=BoxTrainConfig(head="cells", hidden=8, reduce_filters=4),
                             metrics={"images": 5})
    return {"box": box_dir, "trained": write_model_dir(root / "trained")}


# Each loader with the file it keeps its model in.
LOADERS = {"box": (load_box_model, "box_model.keras"), "trained": (load_trained_model, "model.keras")}


@pytest.fixture(params=sorted(LOADERS))
def kind(request):
    return request.param


@pytest.fixture
def directory(saved, kind, tmp_path):
    return shutil.copytree(saved[kind], tmp_path / kind)


class TestLoadBoxModel:
    def test_returns_a_box_model(self, saved):
        loaded = load_box_model(saved["box"])
        assert isinstance(loaded, BoxModel)
        assert loaded.labels == ("one", "ten") and loaded.metrics == {"images": 5}
        assert loaded.preprocessing == vgg16_preprocessing((32, 32))
        assert loaded.model_sha256 == hashlib.sha256((saved["box"] / "box_model.keras").read_bytes()).hexdigest()
        assert [tuple(t.shape[1:]) for t in loaded.model.outputs] == [(2,), (4,)]


class TestSameErrorsAsTheClassifierLoader:
    def test_missing_labels(self, directory, kind):
        load, _ = LOADERS[kind]
        (directory / "labels.json").unlink()
        with pytest.raises(FileNotFoundError, match="labels.json not found"):
            load(directory)

    @pytest.mark.parametrize("labels", [["one"], ["one", "one"], ["one", ""], {"a": 1}, ["one", 2]])
    def test_labels_not_a_list_of_strings(self, directory, kind, labels):
        load, _ = LOADERS[kind]
        (directory / "labels.json").write_text(json.dumps(labels))
        with pytest.raises(ValueError, match="distinct non-empty strings"):
            load(directory)

    def test_labels_not_json(self, directory, kind):
        load, _ = LOADERS[kind]
        (directory / "labels.json").write_text("one, ten")
        with pytest.raises(ValueError, match="labels.json is not valid JSON"):
            load(directory)

    def test_missing_preprocessing(self, directory, kind):
        load, _ = LOADERS[kind]
        (directory / "preprocessing.json").unlink()
        with pytest.raises(FileNotFoundError, match="preprocessing.json not found"):
            load(directory)

    def test_not_a_directory(self, tmp_path, kind):
        load, _ = LOADERS[kind]
        with pytest.raises(FileNotFoundError, match="not a directory"):
            load(tmp_path / "nope")

    @pytest.mark.parametrize("damage", ["garbage", "truncated"])
    def test_damaged_model_file(self, directory, kind, damage):
        load, filename = LOADERS[kind]
        path = directory / filename
        path.write_bytes(b"not a zip file" if damage == "garbage" else path.read_bytes()[:1000])
        with pytest.raises(ValueError, match=f"{filename}: the file is truncated or damaged, or not a .keras archive"):
            load(directory)

    def test_lambda_layer_refused(self, directory, kind):
        load, filename = LOADERS[kind]
        lambda_model().save(directory / filename)
        with pytest.raises(ValueError, match="refused to load with safe_mode=True: the model has a Lambda layer"):
            load(directory)

    def test_labels_must_match_the_outputs(self, saved, tmp_path):
        directory = shutil.copytree(saved["box"], tmp_path / "box")
        (directory / "labels.json").write_text(json.dumps(["one", "ten", "hundred"]))
        with pytest.raises(ValueError, match=r"a box model outputs probabilities \(3,\) and box \(4,\)"):
            load_box_model(directory)
