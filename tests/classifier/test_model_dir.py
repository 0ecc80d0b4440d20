import hashlib
import json
import shutil

import pytest

from classifier.backbones.vgg16 import vgg16_preprocessing
from classifier.model_dir import ModelDir, load_model_dir
from classifier.trained_model import TRAINED_MODEL_LAYOUT
from detector.box_model_dir import BOX_MODEL_LAYOUT, check_box_model_contract
from tests.classifier._model_dirs import tiny_model, write_model_dir

LAYOUTS = {"trained": TRAINED_MODEL_LAYOUT, "box": BOX_MODEL_LAYOUT}


def box_shaped_model(num_classes: int = 2, input_size: tuple[int, int] = (32, 32)):
    """image -> [probabilities (N, C), box (N, 4)], as a box model is."""
    import keras

    image = keras.Input((*input_size, 3), name="image")
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, strides=4, name="features")(image))
    probabilities = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(pooled)
    box = keras.layers.Dense(4, activation="sigmoid", name="box")(pooled)
    return keras.Model(image, [probabilities, box])


def write_box_dir(directory, model, labels=("one", "ten")):
    directory.mkdir(parents=True)
    model.save(directory / "box_model.keras")
    vgg16_preprocessing((32, 32)).save(directory)
    (directory / "labels.json").write_text(json.dumps(list(labels)))
    (directory / "box_train_config.json").write_text(json.dumps({"config": "BoxTrainConfig", "epochs": 3}))
    (directory / "box_metrics.json").write_text(json.dumps({"images": 5}))
    return directory


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One valid directory of each kind, copied by the tests that spoil them."""
    root = tmp_path_factory.mktemp("model_dirs")
    return {"trained": write_model_dir(root / "trained", tiny_model(2, (32, 32))),
            "box": write_box_dir(root / "box", box_shaped_model())}


@pytest.fixture(params=sorted(LAYOUTS))
def kind(request):
    return request.param


@pytest.fixture
def directory(saved, kind, tmp_path):
    return shutil.copytree(saved[kind], tmp_path / kind)


class TestLoadModelDir:
    def test_loads_everything(self, directory, kind):
        layout = LAYOUTS[kind]
        loaded = load_model_dir(directory, layout)
        assert isinstance(loaded, ModelDir) and loaded.layout is layout
        assert loaded.labels == ("one", "ten")
        assert loaded.preprocessing == vgg16_preprocessing((32, 32))
        assert loaded.config["epochs"] == (1 if kind == "trained" else 3)
        assert loaded.metrics == ({"valid": {"accuracy": 0.5}} if kind == "trained" else {"images": 5})
        assert loaded.model_path == directory / layout.model_filename
        assert loaded.model_sha256 == hashlib.sha256(loaded.model_path.read_bytes()).hexdigest()

    def test_optional_files_may_be_missing(self, directory, kind):
        layout = LAYOUTS[kind]
        (directory / layout.config_filename).unlink()
        (directory / layout.metrics_filename).unlink()
        loaded = load_model_dir(directory, layout)
        assert loaded.config == {} and loaded.metrics == {}

    def test_missing_directory(self, tmp_path, kind):
        with pytest.raises(FileNotFoundError, match=f"must be a {LAYOUTS[kind].kind}.*not a directory"):
            load_model_dir(tmp_path / "nope", LAYOUTS[kind])

    def test_missing_model_file_names_it_and_the_command(self, directory, kind):
        layout = LAYOUTS[kind]
        (directory / layout.model_filename).unlink()
        with pytest.raises(FileNotFoundError, match=rf"{layout.model_filename} not found.*`{layout.written_by}`"):
            load_model_dir(directory, layout)

    @pytest.mark.parametrize("name", ["preprocessing.json", "labels.json"])
    def test_missing_required_file(self, directory, kind, name):
        (directory / name).unlink()
        with pytest.raises(FileNotFoundError, match=f"{name} not found"):
            load_model_dir(directory, LAYOUTS[kind])

    @pytest.mark.parametrize("labels", [["one"], ["one", "one"], ["one", ""], {"a": 1}, ["one", 2], "one ten"])
    def test_invalid_labels(self, directory, kind, labels):
        (directory / "labels.json").write_text(json.dumps(labels))
        with pytest.raises(ValueError, match="labels must be a list of at least 2 distinct non-empty strings"):
            load_model_dir(directory, LAYOUTS[kind])

    def test_labels_not_json(self, directory, kind):
        (directory / "labels.json").write_text("[one, ten")
        with pytest.raises(ValueError, match="labels.json is not valid JSON"):
            load_model_dir(directory, LAYOUTS[kind])

    def test_metrics_not_an_object(self, directory, kind):
        layout = LAYOUTS[kind]
        (directory / layout.metrics_filename).write_text("[1, 2]")
        with pytest.raises(ValueError, match=f"{layout.metrics_filename} must hold a JSON object. Received: list"):
            load_model_dir(directory, layout)

    @pytest.mark.parametrize("damage", ["garbage", "truncated", "corrupted"])
    def test_damaged_model_file(self, directory, kind, damage):
        layout = LAYOUTS[kind]
        path = directory / layout.model_filename
        data = path.read_bytes()
        if damage == "garbage":
            data = b"not a zip file"
        elif damage == "truncated":
            data = data[: len(data) // 2]
        else:  # a zip whose member fails its CRC (Keras lets zipfile.BadZipFile through)
            data = data[:len(data) // 2] + bytes(50) + data[len(data) // 2 + 50:]
        path.write_bytes(data)
        # Keras itself says "File not found" for a truncated file that is there.
        why = "fails its checksum" if damage == "corrupted" else "no zip directory at its end"
        with pytest.raises(ValueError, match=f"{layout.model_filename}: the file is truncated or damaged, or not "
                                             rf"a \.keras archive \(.*{why}"):
            load_model_dir(directory, layout)

    def test_labels_must_match_the_outputs(self, directory, kind):
        (directory / "labels.json").write_text(json.dumps(["one", "ten", "hundred"]))
        match = "model has 2 classes, labels.json has 3" if kind == "trained" else r"probabilities \(3,\)"
        with pytest.raises(ValueError, match=match):
            load_model_dir(directory, LAYOUTS[kind])

    def test_a_classifier_is_not_a_box_model(self, saved, tmp_path):
        directory = shutil.copytree(saved["trained"], tmp_path / "m")
        (directory / "model.keras").rename(directory / "box_model.keras")
        with pytest.raises(ValueError, match=r"box_model.keras: a box model outputs probabilities \(2,\) and box"):
            load_model_dir(directory, BOX_MODEL_LAYOUT)


class TestCheckBoxModelContract:
    def test_passes_a_box_model(self):
        check_box_model_contract(box_shaped_model(3), ("a", "b", "c"), vgg16_preprocessing((32, 32)))

    def test_names_the_shapes_found(self):
        with pytest.raises(ValueError, match=r"m.keras: .* Received output shapes: \[\(2,\), \(4,\)\]"):
            check_box_model_contract(box_shaped_model(2), ("a", "b", "c"), vgg16_preprocessing((32, 32)),
                                     source="m.keras")
