"""boxstrap detect: the box model on new photos, written and reviewed as localize writes pseudo boxes."""

import json

import numpy as np
import pytest

from classifier.backbones.vgg16 import VGG16, vgg16_preprocessing
from classifier.model import build_classifier
from datasets.annotations import read_annotations
from datasets.synthetic import DemoDataConfig, write_demo_data
from detector.box_model import build_box_model
from detector.box_model_dir import load_box_model, save_box_model
from detector.box_predictions import predict_boxes
from detector.box_train_config import BoxTrainConfig
from detector.detect_photos import DetectConfig, detect_photos

TINY = (4, 4, 8, 8, 8)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    write_demo_data(out, DemoDataConfig(per_class=3, size=(64, 80)), progress=False)
    return out


@pytest.fixture(scope="module")
def box_dir(tmp_path_factory):
    classifier = build_classifier(2, (64, 64), backbone="vgg16", filters=TINY, weights="none")
    config = BoxTrainConfig(head="cells", hidden=8, reduce_filters=4)
    box_model, _ = build_box_model(classifier, config, feature_layer=VGG16.feature_layer)
    return save_box_model(box_model, tmp_path_factory.mktemp("box") / "box", labels=("one", "ten"),
                          preprocessing=vgg16_preprocessing((64, 64)), config=config, metrics={})


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class TestDetectImages:
    def test_writes_the_box_models_boxes_in_every_format_and_scores(self, demo, box_dir, tmp_path):
        before = snapshot(demo)
        out = tmp_path / "det"
        result = detect_photos(box_dir, demo, out, ground_truth=demo / "boxes.json", progress=False)
        for path in ("detections.json", "annotations/coco.json", "annotations/createml.json",
                     "annotations/yolo/data.yaml", "review.json", "contact_sheets/sheet_001.png",
                     "detect_config.json", "scores.json", "skipped.json"):
            assert (out / path).exists(), path
        assert len(list((out / "annotations" / "voc").rglob("*.xml"))) == 6
        assert len(list((out / "overlays").rglob("*.png"))) == 6
        # The boxes written are the box model's, scaled to each photo.
        from datasets.tf_input import read_rgb

        box_model = load_box_model(box_dir)
        images = [read_rgb(item.path) for item in result.items]
        probabilities, boxes, box_scores = predict_boxes(box_model, images)
        written = read_annotations(out / "detections.json")
        assert [a.image for a in written] == [it.name for it in result.items]
        for a, b, s, p in zip(written, boxes, box_scores, probabilities, strict=True):
            assert len(b) == 1
            np.testing.assert_allclose(a.xyxy(), b, atol=1.0)  # boxes JSON stores whole pixels
            np.testing.assert_allclose(a.scores(), s, atol=1e-4)
            np.testing.assert_allclose(s, p.max(keepdims=True), atol=1e-6)  # a one-box model: the class probability
            assert a.boxes[0].label == box_model.labels[int(np.argmax(p))]
        scores = json.loads((out / "scores.json").read_text())
        assert scores["n_images"] == 6 and 0 <= scores["corloc"] <= 1
        assert snapshot(demo) == before  # the photos are only read

    def test_a_centres_model_writes_every_box_suppression_keeps(self, tmp_path):
        """Three blocks per photo and a box model with a box per cell: detect writes every box
        Core ML's suppression would keep, not the first alone, each scored by its own confidence
        times the cells' agreement on it, best score first."""
        from datasets.tf_input import read_rgb
        from detector.box_decode import box_agreement, non_max_suppression

        photos = tmp_path / "photos"
        write_demo_data(photos, DemoDataConfig(per_class=3, size=(64, 80), objects=3), progress=False)
        assert max(len(a.boxes) for a in read_annotations(photos / "boxes.json")) == 3  # a three-object photo
        classifier = build_classifier(2, (64, 64), backbone="vgg16", filters=TINY, weights="none", seed=1)
        config = BoxTrainConfig(head="centres", reduce_filters=4)
        box_model, _ = build_box_model(classifier, config, feature_layer=VGG16.feature_layer, feature_scale=0.05)
        rng = np.random.default_rng(0)
        for name, std in (("box_reduce", 2.0), ("box_logit", 2.0), ("box_reach", 0.3)):
            layer = box_model.get_layer(name)
            kernel, bias = layer.get_weights()
            # Centre scores near 1 (bias 3): a cell's confidence (its score times the class probability,
            # about 0.5 here) clears suppression's threshold.
            layer.set_weights([rng.normal(0, std, kernel.shape).astype(np.float32), np.full_like(bias, 3.0 * (name == "box_logit"))])
        box_dir = save_box_model(box_model, tmp_path / "box", labels=("one", "ten"),
                                 preprocessing=vgg16_preprocessing((64, 64)), config=config, metrics={})
        result = detect_photos(box_dir, photos, tmp_path / "det", DetectConfig(overlays=False), progress=False)
        written = read_annotations(tmp_path / "det" / "detections.json")
        assert max(len(a.boxes) for a in written) >= 2
        x = np.stack([vgg16_preprocessing((64, 64)).apply(vgg16_preprocessing((64, 64)).resize(read_rgb(it.path)))
                      for it in result.items])
        _, confidence, cells = load_box_model(box_dir).model.predict(x, verbose=0)
        agreements = []
        for a, c, b in zip(written, confidence, cells, strict=True):
            kept_confidence, kept, index = non_max_suppression(c, b, return_index=True)
            assert len(a.boxes) == len(kept)
            agreement = box_agreement(c, b)[index]
            agreements += agreement.tolist()
            expected = kept_confidence.max(axis=1) * agreement
            order = np.argsort(-expected, kind="stable")
            kept = kept[order]
            np.testing.assert_allclose(a.scores(), expected[order], atol=1e-4)
            np.testing.assert_allclose(a.xyxy() / [80, 64, 80, 64],
                                       np.clip(np.c_[kept[:, :2] - kept[:, 2:] / 2, kept[:, :2] + kept[:, 2:] / 2], 0, 1),
                                       atol=1 / 64)
        assert min(agreements) < 1  # the agreement moved some score: the check above compares something

    def test_a_photo_without_a_box_is_flagged(self, demo, tmp_path, capsys):
        """A box model that keeps no box (every centre score near 0) flags every photo for review,
        as localize flags a photo it could not box; the command counts them."""
        from boxstrap.cli import main

        classifier = build_classifier(2, (64, 64), backbone="vgg16", filters=TINY, weights="none")
        config = BoxTrainConfig(head="centres", reduce_filters=4)
        box_model, _ = build_box_model(classifier, config, feature_layer=VGG16.feature_layer)
        layer = box_model.get_layer("box_logit")
        kernel, bias = layer.get_weights()
        layer.set_weights([np.zeros_like(kernel), np.full_like(bias, -20.0)])  # every centre score ~2e-9
        box_dir = save_box_model(box_model, tmp_path / "box", labels=("one", "ten"),
                                 preprocessing=vgg16_preprocessing((64, 64)), config=config, metrics={})
        result = detect_photos(box_dir, demo, tmp_path / "det", DetectConfig(overlays=False, min_confidence=0.0),
                               progress=False)
        assert all(len(a.boxes) == 0 for a in result.annotations)
        assert result.notes == ("no box: the box model found no object",) * 6
        review = json.loads((tmp_path / "det" / "review.json").read_text())
        assert [r["note"] for r in review] == list(result.notes)
        assert main(["detect", str(box_dir), str(demo), "--out", str(tmp_path / "cli"), "--no-overlays"]) == 0
        out = capsys.readouterr().out
        assert "boxed 6 photos" in out and ", 6 flagged for review" in out

    def test_outputs_are_checked_before_any_photo_is_read(self, demo, box_dir, tmp_path):
        a_file = tmp_path / "f.txt"
        a_file.write_text("keep")
        with pytest.raises(NotADirectoryError, match="is a file"):
            detect_photos(box_dir, demo, a_file, progress=False)
        assert a_file.read_text() == "keep"
        with pytest.raises(ValueError, match="inside the photo folder"):
            detect_photos(box_dir, demo, demo / "out", progress=False)
        assert not (demo / "out").exists()
        detect_photos(box_dir, demo, tmp_path / "d", DetectConfig(overlays=False), progress=False)
        with pytest.raises(FileExistsError, match="already holds detections"):
            detect_photos(box_dir, demo, tmp_path / "d", progress=False)
        detect_photos(box_dir, demo, tmp_path / "d", DetectConfig(overlays=False), overwrite=True, progress=False)

    def test_cli_lists_unreadable_photos_and_exits_1(self, demo, box_dir, tmp_path, capsys):
        import shutil

        from boxstrap.cli import main

        photos = tmp_path / "photos"
        shutil.copytree(demo, photos)
        (photos / "one" / "notes.jpg").write_text("not a photo")
        status = main(["detect", str(box_dir), str(photos), "--out", str(tmp_path / "out"), "--no-overlays"])
        captured = capsys.readouterr()
        assert status == 1
        assert "boxed 6 photos" in captured.out and "notes.jpg" in captured.err
        assert json.loads((tmp_path / "out" / "skipped.json").read_text())[0]["image"] == "one/notes.jpg"

    def test_config_is_checked(self):
        with pytest.raises(ValueError, match="formats"):
            DetectConfig(formats=("pdf",))
        assert DetectConfig(formats=("voc",)).formats == ("voc", "boxes-json")
