import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier.backbones.vgg16 import VGG16, vgg16_preprocessing
from classifier.model import build_classifier
from detector.box_decode import non_max_suppression
from detector.box_export import BoxExportConfig, export_box_model
from detector.box_model import build_box_model
from detector.box_model_dir import save_box_model
from detector.box_train_config import BoxTrainConfig
from verify.box_parity import verify_box_model
from verify.verify_config import VerifyConfig

SIZE = (64, 64)


@pytest.fixture(scope="module", params=["cells", "centres"])
def box_dir(request, tmp_path_factory):
    """A box model of each kind: one box per photo, and a box per cell (several kept)."""
    classifier = build_classifier(2, SIZE, backbone="vgg16", filters=(4, 4, 8, 8, 8), weights="none", pooling="max", seed=3)
    config = BoxTrainConfig(hidden=8, reduce_filters=4, head=request.param)
    box_model, _ = build_box_model(classifier, config, feature_scale=0.05, feature_layer=VGG16.feature_layer)
    # Random head weights: the untrained head gives every photo the same centred box, which any
    # export would match.
    rng = np.random.default_rng(4)
    for name, std in (("box_reduce", 2.0), ("box_logit", 2.0), ("box_reach", 0.3)):
        layer = box_model.get_layer(name)
        kernel, bias = layer.get_weights()
        layer.set_weights([rng.normal(0, std, kernel.shape).astype(np.float32), bias])
    boxes = box_model.predict(rng.integers(0, 256, (4, *SIZE, 3)).astype(np.float32), verbose=0)[-1]
    assert np.ptp(boxes[..., :2], axis=0).max() > 1e-3, boxes  # the boxes differ from photo to photo
    directory = tmp_path_factory.mktemp(f"box_{request.param}") / "model"
    save_box_model(box_model, directory, preprocessing=vgg16_preprocessing(SIZE), labels=("one", "ten"),
                   config=config, metrics={})
    return directory


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def _neural_network(box_dir, tmp_path_factory):
    config = BoxExportConfig(format="neuralnetwork", precision="float32", confidence_threshold=0.0)
    return export_box_model(box_dir, tmp_path_factory.mktemp("nn"), config)


@pytest.fixture()
def neural_network(_neural_network, tmp_path):
    """The box model's NeuralNetwork export in FP32, a copy of its own for each test to spoil."""
    return Path(shutil.copy(_neural_network, tmp_path / _neural_network.name))


class TestNonMaxSuppression:
    def test_keeps_confident_non_overlapping_boxes(self):
        confidence = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.15], [0.3, 0.7]])
        coordinates = np.array([[0.5, 0.5, 0.2, 0.2], [0.51, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1],
                                [0.2, 0.2, 0.1, 0.1]])
        conf, coords = non_max_suppression(confidence, coordinates, iou_threshold=0.45, confidence_threshold=0.25)
        np.testing.assert_allclose(conf, confidence[[0, 3]])
        np.testing.assert_allclose(coords, coordinates[[0, 3]])


class TestVerifyBoxModel:
    @pytest.mark.parametrize("fmt, precision", [("mlprogram", "float32"), ("mlprogram", "float16")])
    def test_export_passes(self, box_dir, images, tmp_path, fmt, precision):
        export = export_box_model(box_dir, tmp_path, BoxExportConfig(format=fmt, precision=precision,
                                                                     confidence_threshold=0.0))
        self.check_passes(box_dir, export, images, tmp_path, precision)

    def test_neural_network_export_passes(self, box_dir, neural_network, images, tmp_path):
        self.check_passes(box_dir, neural_network, images, tmp_path, "float32")

    @staticmethod
    def check_passes(box_dir, export, images, tmp_path, precision):
        report = verify_box_model(box_dir, export, images, VerifyConfig(backend="reference"), output_dir=tmp_path)
        assert report.passed, report.table
        assert report.report["exports"][0]["precision"] == ("FP32" if precision == "float32" else "FP16")
        parity = report.report["exports"][0]["parity"]
        assert parity["images"] == 4 and parity["top1_agreement"] == 1.0
        assert parity["min_box_iou"] > (0.999 if precision == "float32" else 0.95)
        if "centres" in str(box_dir):  # several boxes per photo, each matched
            assert parity["images_with_several_boxes"] >= 1 and parity["kept_by_suppression"] > 4

    def test_swapped_colour_order_fails(self, box_dir, neural_network, images, tmp_path):
        import coremltools as ct

        spec = ct.utils.load_spec(str(neural_network))
        for feature in (spec.description.input[0], spec.pipeline.models[0].description.input[0]):
            feature.type.imageType.colorSpace = ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
        ct.utils.save_spec(spec, str(neural_network))
        report = verify_box_model(box_dir, neural_network, images, VerifyConfig(backend="reference"), output_dir=tmp_path)
        assert not report.passed
        failures = report.report["exports"][0]["failures"]
        assert any("color_layout" in f for f in failures)
        assert any("max abs diff" in f for f in failures)

    def test_reversed_labels_fail(self, box_dir, neural_network, images, tmp_path):
        import coremltools as ct

        spec = ct.utils.load_spec(str(neural_network))
        labels = spec.pipeline.models[1].nonMaximumSuppression.stringClassLabels.vector
        reversed_labels = list(labels)[::-1]
        del labels[:]
        labels.extend(reversed_labels)
        ct.utils.save_spec(spec, str(neural_network))
        report = verify_box_model(box_dir, neural_network, images, VerifyConfig(backend="reference"), output_dir=tmp_path)
        assert not report.passed
        assert any("class_labels" in f for f in report.report["exports"][0]["failures"])

    def test_not_a_detector(self, box_dir, images, tmp_path):
        with pytest.raises(FileNotFoundError, match="no Core ML model"):
            verify_box_model(box_dir, tmp_path / "nope.mlpackage", images)

    def test_box_model_directory_checked_like_a_trained_model(self, box_dir, images, tmp_path):
        # Read by classifier.model_dir (verify does not import localize): labels are validated.
        spoiled = shutil.copytree(box_dir, tmp_path / "model")
        (spoiled / "labels.json").write_text('["one", "one"]')
        with pytest.raises(ValueError, match="labels must be a list of at least 2 distinct non-empty strings"):
            verify_box_model(spoiled, tmp_path / "nope.mlpackage", images)
        (spoiled / "box_model.keras").write_bytes(b"not a zip file")
        (spoiled / "labels.json").write_text('["one", "ten"]')
        with pytest.raises(ValueError, match=r"box_model.keras: the file is truncated or damaged, or not a \.keras archive"):
            verify_box_model(spoiled, tmp_path / "nope.mlpackage", images)


class TestVerifyCommand:
    def test_a_box_model_directory_is_checked_against_the_detector_named(self, box_dir, neural_network, images,
                                                                         tmp_path, capsys):
        from boxstrap.cli import main

        args = ["verify", str(box_dir), "--images", str(images), "--backend", "reference", "--output",
                str(tmp_path / "report")]
        assert main(args + ["--coreml", str(neural_network)]) == 0
        out = capsys.readouterr().out
        assert "min_box_iou" in out and (tmp_path / "report" / "verify_report.json").is_file()
        assert main(args) == 1  # which export to check is not guessed
        assert "is a box model directory: name its one detector export with --coreml PATH" in capsys.readouterr().err


class TestNearTieCells:
    def test_a_swap_between_overlapping_cells_of_equal_confidence_is_a_tie(self):
        from verify.box_parity import _near_tie_cells

        confidence = np.array([[0.800, 0.0], [0.795, 0.0], [0.6, 0.0]])
        boxes = np.array([[0.5, 0.5, 0.2, 0.2], [0.51, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]])
        thresholds = {"iou_threshold": 0.45, "confidence_threshold": 0.3}
        # Keras keeps cells 0 and 2, the export 1 and 2: cells 0 and 1 overlap, 0.005 apart.
        assert _near_tie_cells(confidence, boxes, np.array([0, 2]), np.array([1, 2]), 0.01, thresholds)
        assert not _near_tie_cells(confidence, boxes, np.array([0, 2]), np.array([1, 2]), 0.001, thresholds)
        # A box kept on one side only, far from the threshold and from any other: not a tie.
        assert not _near_tie_cells(confidence, boxes, np.array([0, 2]), np.array([0]), 0.01, thresholds)
        # ... unless its confidence is within 2 * tolerance of the threshold.
        assert _near_tie_cells(confidence, boxes, np.array([0, 2]), np.array([0]), 0.2, thresholds)

    def test_what_a_swap_stops_suppressing_follows_from_the_tie(self):
        from verify.box_parity import _near_tie_cells

        # Cells 0 and 1 overlap and tie (0.005 apart); cell 2 overlaps cell 0 (IoU 0.54) but not
        # cell 1 (IoU 0.38). Keras keeps 0, which suppresses 1 and 2; the export keeps 1, and so 2.
        confidence = np.array([[0.800, 0.0], [0.795, 0.0], [0.6, 0.0]])
        boxes = np.array([[0.5, 0.5, 0.2, 0.2], [0.47, 0.5, 0.2, 0.2], [0.56, 0.5, 0.2, 0.2]])
        thresholds = {"iou_threshold": 0.45, "confidence_threshold": 0.3}
        assert _near_tie_cells(confidence, boxes, np.array([0]), np.array([1, 2]), 0.01, thresholds)
        # No tie to follow from: cell 2's swap is unexplained too.
        assert not _near_tie_cells(confidence, boxes, np.array([0]), np.array([1, 2]), 0.001, thresholds)
        # A cell kept on the same side as the tie was not suppressed by it on the other side.
        assert not _near_tie_cells(confidence, boxes, np.array([0, 2]), np.array([1]), 0.01, thresholds)
        # A swapped cell far from every explained one is not a knock-on effect.
        apart = boxes.copy()
        apart[2, 0] = 0.8
        assert not _near_tie_cells(confidence, apart, np.array([0]), np.array([1, 2]), 0.01, thresholds)

    def test_an_overlap_at_the_iou_threshold_is_a_tie(self):
        from verify.box_parity import _near_tie_cells

        # Two boxes of IoU 0.45 (the threshold) far apart in confidence: whether the second is kept
        # turns on the last digit of the coordinates.
        confidence = np.array([[0.74, 0.0], [0.39, 0.0]])
        boxes = np.array([[0.5, 0.5, 0.2, 0.2], [0.5 + 0.2 * (1 - 0.45) / (1 + 0.45), 0.5, 0.2, 0.2]])
        thresholds = {"iou_threshold": 0.45, "confidence_threshold": 0.3}
        assert _near_tie_cells(confidence, boxes, np.array([0]), np.array([0, 1]), 0.01, thresholds)
        apart = boxes.copy()
        apart[1, 0] = 0.65  # IoU 0.14: the second box should have been kept by both
        assert not _near_tie_cells(confidence, apart, np.array([0]), np.array([0, 1]), 0.01, thresholds)
