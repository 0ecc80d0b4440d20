"""verify_model on what ``classifier.export`` writes: the boxstrap classifier (log-sum-exp pooling,
class-map heatmap output), ML Program and NeuralNetwork, FP32 and FP16."""

import json

import numpy as np
import pytest

from classifier.backbones.vgg16 import vgg16_preprocessing
from tests.verify.conftest import LABELS, SIZE
from verify.parity import near_ties
from verify.verify import verify_model


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    from classifier.export import ExportConfig, export_coreml
    from classifier.model import build_classifier

    directory = tmp_path_factory.mktemp("classifier")
    model = build_classifier(len(LABELS), SIZE, pooling="lse", backbone="vgg16", filters=(4, 4, 8, 8, 8))
    model.save(directory / "model.keras")
    vgg16_preprocessing(SIZE).save(directory)
    (directory / "labels.json").write_text(json.dumps(list(LABELS)))
    for precision in ("float32", "float16"):
        export_coreml(directory, directory / "coreml",
                      ExportConfig(format="both", precision=precision, heatmap=True, name=precision))
    return directory


class TestRealExports:
    def test_all_exports_pass_with_the_heatmap_compared(self, classifier_dir, images_dir, tmp_path):
        result = verify_model(classifier_dir, None, images_dir, output_dir=tmp_path)
        exports = result.report["exports"]
        assert len(exports) == 4
        assert result.passed, result.table
        for entry in exports:
            heatmap = entry["parity"]["heatmap"]
            assert heatmap is not None and heatmap["relative_max_diff"] <= heatmap["rtol"]
            assert entry["parity"]["top1_agreement_raw"] <= entry["parity"]["top1_agreement"]
        assert sorted(e["precision"] for e in exports) == ["FP16", "FP16", "FP32", "FP32"]


class TestOtherInputSize:
    def test_an_export_at_another_size_is_compared_with_the_network_rebuilt_there(self, classifier_dir, images_dir,
                                                                                  tmp_path):
        from classifier.export import ExportConfig, export_coreml

        big = export_coreml(classifier_dir, tmp_path / "big", ExportConfig(input_size=(64, 96), heatmap=True))
        result = verify_model(classifier_dir, list(big.paths.values()), images_dir, output_dir=tmp_path / "report")
        assert result.passed, result.table
        for entry in result.report["exports"]:
            assert entry["input_size"] == [64, 96]
            assert entry["parity"]["heatmap"]["relative_max_diff"] <= entry["parity"]["heatmap"]["rtol"]
        assert "exported at 64x96: compared with the Keras model rebuilt at that size" in result.table


class TestNearTies:
    def test_only_flips_within_twice_the_tolerance_are_ties(self):
        keras = np.array([[0.5004, 0.4996], [0.6, 0.4], [0.9, 0.1]])
        coreml = np.array([[0.4996, 0.5004], [0.4, 0.6], [0.9, 0.1]])
        assert near_ties(keras, coreml, [0, 1], tolerance=1e-3) == [0]


@pytest.mark.slow
def test_default_classifier_with_int8_weights_passes(tmp_path):
    """The default network (EfficientNet-Lite0, ImageNet weights) exported with 8-bit weights
    (ML Program; NeuralNetwork with the class map) agrees with Keras on photos, and its layers
    and class map stay within the INT8 tolerances: weight quantization alone moves a middle
    block's activations by up to 0.42 of their range (benchmarks/NOTES.md, "8-bit weights and the
    layer check")."""
    import skimage.data
    from PIL import Image

    from classifier.backbones.registry import get_backbone
    from classifier.export import ExportConfig, export_coreml
    from classifier.model import build_classifier
    from classifier.train_config import TrainConfig
    from verify.verify_config import VerifyConfig

    config = TrainConfig()
    model = build_classifier(2, config.input_size, backbone=config.backbone, context=config.context,
                             weights="imagenet")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model.save(model_dir / "model.keras")
    get_backbone(config.backbone).preprocessing(config.input_size).save(model_dir)
    (model_dir / "labels.json").write_text(json.dumps(["cat", "coffee"]))
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        Image.fromarray(getattr(skimage.data, name)()).save(photos / f"{name}.png")
    export_coreml(model_dir, model_dir / "coreml", ExportConfig(format="mlprogram", quantize="int8"))
    export_coreml(model_dir, model_dir / "coreml", ExportConfig(format="neuralnetwork", quantize="int8", heatmap=True))
    result = verify_model(model_dir, None, photos, VerifyConfig(backend="reference"), output_dir=tmp_path / "report")
    assert sorted((e["kind"], e["precision"]) for e in result.report["exports"]) == [
        ("mlprogram", "INT8"), ("neuralnetwork", "INT8")]
    assert result.passed, result.table
    for entry in result.report["exports"]:
        assert entry["parity"]["divergence"] is None
    (heatmap,) = [e["parity"]["heatmap"] for e in result.report["exports"] if e["kind"] == "neuralnetwork"]
    assert heatmap is not None and heatmap["relative_max_diff"] <= heatmap["rtol"] == 0.2
