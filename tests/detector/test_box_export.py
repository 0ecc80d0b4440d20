import numpy as np
import pytest

from classifier.backbones.vgg16 import VGG16, vgg16_preprocessing
from classifier.model import build_classifier
from detector.box_export import BoxExportConfig, export_box_model
from detector.box_model import build_box_model
from detector.box_model_dir import load_box_model, save_box_model
from detector.box_train_config import BoxTrainConfig

TINY = (4, 4, 8, 8, 8)


@pytest.fixture(scope="module")
def box_dir(tmp_path_factory):
    classifier = build_classifier(2, (64, 96), backbone="vgg16", filters=TINY, weights="none")
    box_model, _ = build_box_model(classifier, BoxTrainConfig(head="cells", hidden=8, reduce_filters=4), feature_layer=VGG16.feature_layer)
    directory = tmp_path_factory.mktemp("box") / "box_model"
    save_box_model(box_model, directory, preprocessing=vgg16_preprocessing((64, 96)), labels=("one", "ten"),
                   config=BoxTrainConfig(head="cells", hidden=8, reduce_filters=4), metrics={"corloc": 0.5})
    return directory


class TestBoxModelDir:
    def test_round_trip(self, box_dir):
        loaded = load_box_model(box_dir)
        assert loaded.labels == ("one", "ten")
        assert loaded.preprocessing.input_size == (64, 96)
        x = np.zeros((1, 64, 96, 3), np.float32)
        assert [o.shape for o in loaded.model.predict(x, verbose=0)] == [(1, 2), (1, 4)]

    def test_refuses_to_overwrite(self, box_dir):
        with pytest.raises(FileExistsError, match="already exists"):
            save_box_model(None, box_dir, preprocessing=vgg16_preprocessing(), labels=(), config=BoxTrainConfig(),
                           metrics={})

    def test_missing_dir(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="box_model.keras not found"):
            load_box_model(tmp_path)


class TestExportBoxModel:
    @pytest.mark.parametrize("fmt", ["mlprogram", "neuralnetwork"])
    def test_vision_detector_pipeline(self, box_dir, tmp_path, fmt):
        import coremltools as ct

        from classifier.export_metadata import read_export_metadata

        path = export_box_model(box_dir, tmp_path, BoxExportConfig(format=fmt, confidence_threshold=0.3))
        spec = ct.utils.load_spec(str(path))
        assert spec.WhichOneof("Type") == "pipeline"
        network, nms = spec.pipeline.models
        assert network.WhichOneof("Type") == ("mlProgram" if fmt == "mlprogram" else "neuralNetwork")
        assert list(nms.nonMaximumSuppression.stringClassLabels.vector) == ["one", "ten"]
        assert nms.nonMaximumSuppression.confidenceThreshold == pytest.approx(0.3)
        assert [o.name for o in spec.description.output] == ["confidence", "coordinates"]
        assert [i.name for i in spec.description.input] == ["image", "iouThreshold", "confidenceThreshold"]
        image = spec.description.input[0].type.imageType
        assert (image.height, image.width) == (64, 96)
        assert image.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.BGR
        metadata = read_export_metadata(path)
        assert metadata["labels"] == ["one", "ten"]
        assert metadata["preprocessing"]["bias"] == list(vgg16_preprocessing().bias)

    def test_refuses_existing(self, box_dir, tmp_path):
        export_box_model(box_dir, tmp_path)
        with pytest.raises(FileExistsError, match="overwrite"):
            export_box_model(box_dir, tmp_path)

    def test_bad_config(self):
        with pytest.raises(ValueError, match="confidence_threshold must be in"):
            BoxExportConfig(confidence_threshold=2.0)
