import json

import numpy as np
import pytest
from PIL import Image

from boxstrap.cli import main
from classifier.heatmap_overlay import heatmap_overlay
from classifier.predict import Predictions, predict, upsample_class_maps
from classifier.trained_model import load_trained_model
from tests.classifier._model_dirs import write_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_model_dir(tmp_path_factory.mktemp("model") / "m", labels=("zebra", "apple"))


@pytest.fixture(scope="module")
def trained(model_dir):
    return load_trained_model(model_dir)


def _images(n, size=(32, 32), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


class TestPredict:
    def test_outputs(self, trained):
        result = predict(trained, _images(3))
        assert isinstance(result, Predictions)
        assert result.probabilities.shape == (3, 2) and result.probabilities.dtype == np.float32
        np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-5)
        assert result.class_labels == ("zebra", "apple")
        assert result.labels == tuple(result.class_labels[i] for i in result.probabilities.argmax(1))
        assert result.class_maps.shape == (3, 32, 32, 2)

    def test_matches_keras_on_preprocessed_input(self, trained):
        images = _images(2, size=(48, 40))
        pre = trained.preprocessing
        x = np.stack([pre.apply(pre.resize(image)) for image in images])
        expected, class_map = trained.model.predict_on_batch(x)
        result = predict(trained, images)
        np.testing.assert_allclose(result.probabilities, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(result.class_maps, upsample_class_maps(class_map, (32, 32)),
                                   rtol=1e-5, atol=1e-6)

    def test_images_of_any_size_and_batches(self, trained):
        images = _images(2, size=(20, 50)) + _images(3, size=(64, 64), seed=1)
        whole = predict(trained, images, batch_size=8)
        single = predict(trained, images, batch_size=1, class_maps=False)
        np.testing.assert_allclose(whole.probabilities, single.probabilities, rtol=1e-5, atol=1e-6)
        assert single.class_maps is None

    def test_stacked_array_and_progress(self, trained):
        done = []
        result = predict(trained, np.stack(_images(3)), batch_size=2, progress=done.append)
        assert done == [2, 1]
        assert len(result.labels) == 3

    def test_not_a_trained_model(self):
        with pytest.raises(TypeError, match="trained must be a TrainedModel"):
            predict("model_dir", _images(1))

    def test_empty(self, trained):
        with pytest.raises(ValueError, match="at least one image"):
            predict(trained, [])

    def test_wrong_dtype(self, trained):
        with pytest.raises(TypeError, match=r"images\[0\] must be a uint8"):
            predict(trained, [np.zeros((32, 32, 3), np.float32)])

    def test_wrong_shape(self, trained):
        with pytest.raises(ValueError, match=r"images\[1\] must be \(H, W, 3\)"):
            predict(trained, [np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.uint8)])

    def test_batch_size(self, trained):
        with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
            predict(trained, _images(1), batch_size=0)


class TestUpsampleClassMaps:
    def test_shape_and_constant(self):
        maps = np.full((2, 3, 4, 5), 7.0, np.float32)
        out = upsample_class_maps(maps, (12, 16))
        assert out.shape == (2, 12, 16, 5)
        np.testing.assert_allclose(out, 7.0)

    def test_interpolates_between_cell_centres(self):
        maps = np.array([0.0, 4.0], np.float32).reshape(1, 1, 2, 1)
        out = upsample_class_maps(maps, (1, 8))[0, 0, :, 0]
        # cell centres sit at x = 1.5 and 5.5; linear in between, constant outside
        np.testing.assert_allclose(out, [0, 0, 0.5, 1.5, 2.5, 3.5, 4, 4])

    def test_rank(self):
        with pytest.raises(ValueError, match=r"class_maps must be \(N, h, w, C\)"):
            upsample_class_maps(np.zeros((3, 4, 5)), (8, 8))


class TestHeatmapOverlay:
    def test_alpha_zero_is_the_image(self):
        image = _images(1, size=(8, 10))[0]
        np.testing.assert_array_equal(heatmap_overlay(image, np.eye(3), alpha=0.0), image)

    def test_hot_spot_is_red_cold_is_blue(self):
        heatmap = np.zeros((4, 4), np.float32)
        heatmap[0, 0] = 1.0
        out = heatmap_overlay(np.zeros((40, 40, 3), np.uint8), heatmap, alpha=1.0)
        assert out.shape == (40, 40, 3) and out.dtype == np.uint8
        red, green, blue = out[0, 0].astype(int)
        assert red > 100 and red > blue
        red, green, blue = out[-1, -1].astype(int)
        assert blue > 100 and blue > red

    def test_constant_heatmap(self):
        out = heatmap_overlay(np.zeros((4, 4, 3), np.uint8), np.ones((2, 2)), alpha=1.0)
        assert len(np.unique(out.reshape(-1, 3), axis=0)) == 1

    def test_errors(self):
        image = np.zeros((4, 4, 3), np.uint8)
        with pytest.raises(TypeError, match="image must be uint8"):
            heatmap_overlay(image.astype(np.float32), np.ones((2, 2)))
        with pytest.raises(ValueError, match=r"image must be \(H, W, 3\)"):
            heatmap_overlay(image[..., 0], np.ones((2, 2)))
        with pytest.raises(ValueError, match=r"heatmap must be \(h, w\)"):
            heatmap_overlay(image, np.ones((2, 2, 2)))
        with pytest.raises(ValueError, match="heatmap must be finite"):
            heatmap_overlay(image, np.array([[np.nan, 1.0]]))
        with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
            heatmap_overlay(image, np.ones((2, 2)), alpha=2.0)


class TestPredictCommand:
    @pytest.fixture
    def photos(self, tmp_path):
        folder = tmp_path / "photos"
        (folder / "sub").mkdir(parents=True)
        for i, image in enumerate(_images(2, size=(30, 40))):
            Image.fromarray(image).save(folder / ("sub" if i else "") / f"p{i}.png")
        (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
        (folder / "notes.txt").write_text("not an image")
        return folder

    def test_json_lines_overlays_and_unreadable(self, model_dir, photos, tmp_path, capsys):
        status = main(["predict", str(model_dir), str(photos), "--json", "--overlay-dir", str(tmp_path / "ov")])
        out, err = capsys.readouterr()
        assert status == 1
        assert f"Cannot read image {photos / 'broken.jpg'}" in err
        assert f"{photos / 'notes.txt'}: not an image (.txt); skipped" in err  # listed, not silently ignored
        rows = [json.loads(line) for line in out.splitlines()]
        assert [row["file"] for row in rows] == [str(photos / "p0.png"), str(photos / "sub" / "p1.png")]
        for row in rows:
            assert set(row["probabilities"]) == {"zebra", "apple"}
            assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)
        overlays = sorted(p.name for p in (tmp_path / "ov").iterdir())
        assert overlays == ["p0_overlay.png", "p1_overlay.png"]
        assert Image.open(tmp_path / "ov" / "p0_overlay.png").size == (40, 30)

    def test_plain_lines(self, model_dir, photos, capsys):
        status = main(["predict", str(model_dir), str(photos / "p0.png"), "--min-confidence", "0"])
        out, err = capsys.readouterr()
        assert status == 0
        path, label, probability = out.strip().split("\t")
        assert path == str(photos / "p0.png") and label in ("zebra", "apple") and 0.5 <= float(probability) <= 1
        assert "doubtful" not in err

    def test_doubtful_photos_are_marked_and_counted(self, model_dir, photos, capsys):
        # A two-class model's label has a probability of at least 0.5 and below 1 (float32 rounding
        # aside): with 1.0 every photo is doubtful, with 0.5 none.
        assert main(["predict", str(model_dir), str(photos / "p0.png"), str(photos / "sub"), "--min-confidence", "1"]) == 0
        out, err = capsys.readouterr()
        rows = [line.split("\t") for line in out.splitlines()]
        assert [len(row) for row in rows] == [4, 4] and {row[3] for row in rows} == {"doubtful"}
        assert "2 of 2 photos doubtful (their label's probability below 1)" in err
        assert main(["predict", str(model_dir), str(photos / "p0.png"), "--json", "--min-confidence", "0.5"]) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["doubtful"] is False and "doubtful" not in err

    def test_min_confidence_outside_zero_to_one_is_refused(self, model_dir, photos, capsys):
        assert main(["predict", str(model_dir), str(photos / "p0.png"), "--min-confidence", "90"]) != 0
        assert "--min-confidence must be a probability in [0, 1]. Received: 90.0" in capsys.readouterr().err

    def test_missing_input(self, model_dir, tmp_path, capsys):
        assert main(["predict", str(model_dir), str(tmp_path / "nope.jpg")]) == 1
        assert "does not exist" in capsys.readouterr().err

    def test_exif_orientation_applied(self, model_dir, tmp_path, capsys):
        from datasets.tf_input import read_rgb as _read_rgb

        image = Image.fromarray(_images(1, size=(20, 30))[0])
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
        image.save(tmp_path / "rotated.jpg", exif=exif)
        assert _read_rgb(tmp_path / "rotated.jpg").shape == (30, 20, 3)
