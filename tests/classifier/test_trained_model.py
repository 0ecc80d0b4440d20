import hashlib
import json

import pytest

from classifier.backbones.vgg16 import vgg16_preprocessing
from classifier.trained_model import TrainedModel, load_trained_model
from tests.classifier._model_dirs import lambda_model, tiny_model, write_model_dir


@pytest.fixture(scope="module")
def model():
    return tiny_model(2, (32, 32))


class TestLoadTrainedModel:
    def test_loads_everything(self, tmp_path, model):
        directory = write_model_dir(tmp_path / "m", model, labels=("zebra", "apple"))
        trained = load_trained_model(directory)
        assert isinstance(trained, TrainedModel)
        assert trained.labels == ("zebra", "apple")
        assert trained.num_classes == 2
        assert trained.preprocessing == vgg16_preprocessing((32, 32))
        assert trained.config["epochs"] == 1
        assert trained.metrics == {"valid": {"accuracy": 0.5}}
        assert trained.model_sha256 == hashlib.sha256((directory / "model.keras").read_bytes()).hexdigest()
        assert trained.model.count_params() == model.count_params()

    def test_optional_files_may_be_missing(self, tmp_path, model):
        directory = write_model_dir(tmp_path / "m", model, skip=("train_config.json", "metrics.json"))
        trained = load_trained_model(directory)
        assert trained.config == {} and trained.metrics == {}

    def test_missing_directory(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="not a directory"):
            load_trained_model(tmp_path / "nope")

    def test_missing_model_file(self, tmp_path):
        (tmp_path / "m").mkdir()
        with pytest.raises(FileNotFoundError, match="model.keras not found"):
            load_trained_model(tmp_path / "m")

    def test_missing_preprocessing(self, tmp_path, model):
        directory = write_model_dir(tmp_path / "m", model, skip=("preprocessing.json",))
        with pytest.raises(FileNotFoundError, match="preprocessing.json not found"):
            load_trained_model(directory)

    def test_missing_labels(self, tmp_path, model):
        directory = write_model_dir(tmp_path / "m", model, skip=("labels.json",))
        with pytest.raises(FileNotFoundError, match="labels.json not found"):
            load_trained_model(directory)

    @pytest.mark.parametrize("labels", [["one"], ["one", "one"], ["one", ""], {"a": 1}, ["one", 2]])
    def test_invalid_labels(self, tmp_path, model, labels):
        directory = write_model_dir(tmp_path / "m", model)
        (directory / "labels.json").write_text(json.dumps(labels))
        with pytest.raises(ValueError, match="distinct non-empty strings"):
            load_trained_model(directory)

    def test_labels_must_match_outputs(self, tmp_path, model):
        directory = write_model_dir(tmp_path / "m", model)
        (directory / "labels.json").write_text(json.dumps(["one", "ten", "hundred"]))
        with pytest.raises(ValueError, match="model has 2 classes, labels.json has 3"):
            load_trained_model(directory)

    def test_input_size_must_match_preprocessing(self, tmp_path, model):
        directory = write_model_dir(tmp_path / "m", model, preprocessing=vgg16_preprocessing((64, 64)))
        with pytest.raises(ValueError, match=r"input size \(32, 32\) does not match .* \(64, 64\)"):
            load_trained_model(directory)

    def test_lambda_layer_refused(self, tmp_path):
        directory = write_model_dir(tmp_path / "m", lambda_model())
        with pytest.raises(ValueError, match="Lambda"):
            load_trained_model(directory)

    def test_output_names_checked(self, tmp_path):
        import keras

        image = keras.Input((32, 32, 3), name="image")
        maps = keras.layers.Conv2D(2, 1, strides=16, name="maps")(image)
        scores = keras.layers.Activation("softmax", name="scores")(keras.layers.GlobalAveragePooling2D()(maps))
        directory = write_model_dir(tmp_path / "m", keras.Model(image, [scores, maps]))
        with pytest.raises(ValueError, match="outputs must be named"):
            load_trained_model(directory)

    def test_input_must_be_rgb(self, tmp_path):
        import keras

        image = keras.Input((32, 32, 1), name="image")
        class_map = keras.layers.Conv2D(2, 1, strides=16, name="class_map")(image)
        probabilities = keras.layers.Activation("softmax", name="probabilities")(
            keras.layers.GlobalAveragePooling2D()(class_map))
        directory = write_model_dir(tmp_path / "m", keras.Model(image, [probabilities, class_map]))
        with pytest.raises(ValueError, match=r"the input must be \(N, H, W, 3\)"):
            load_trained_model(directory)

    def test_output_shapes_checked(self, tmp_path):
        import keras

        image = keras.Input((32, 32, 3), name="image")
        x = keras.layers.Conv2D(2, 1, strides=16)(image)
        probabilities = keras.layers.Activation("softmax", name="probabilities")(keras.layers.GlobalAveragePooling2D()(x))
        class_map = keras.layers.GlobalMaxPooling2D(name="class_map")(x)  # rank 2: wrong
        directory = write_model_dir(tmp_path / "m", keras.Model(image, [probabilities, class_map]))
        with pytest.raises(ValueError, match=r"expected probabilities \(N, C\) and class_map \(N, h, w, C\)"):
            load_trained_model(directory)

    def test_broken_model_file(self, tmp_path, model):
        directory = write_model_dir(tmp_path / "m", model)
        (directory / "model.keras").write_bytes(b"not a zip file")
        with pytest.raises(ValueError, match="model.keras: the file is truncated or damaged, or not a .keras archive"):
            load_trained_model(directory)
