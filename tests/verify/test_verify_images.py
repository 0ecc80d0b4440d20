import json

import numpy as np
import pytest
from PIL import Image

from classifier.backbones.vgg16 import vgg16_preprocessing
from verify.verify_images import load_verify_images

PRE = vgg16_preprocessing((8, 10))


def _write(path, color):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), color).save(path)


class TestLoadVerifyImages:
    def test_folder_recursive_sorted_and_resized(self, tmp_path):
        _write(tmp_path / "b" / "x.png", (255, 0, 0))
        _write(tmp_path / "a" / "y.jpg", (0, 0, 255))
        images = load_verify_images(tmp_path, PRE)
        assert images.names == ("a/y.jpg", "b/x.png")
        assert images.pixels.shape == (2, 8, 10, 3) and images.pixels.dtype == np.uint8
        assert tuple(images.pixels[1, 0, 0]) == (255, 0, 0)

    def test_broken_files_are_skipped_and_reported(self, tmp_path):
        _write(tmp_path / "ok.png", (1, 2, 3))
        (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
        images = load_verify_images(tmp_path, PRE)
        assert images.names == ("ok.png",)
        assert [s["file"] for s in images.skipped] == ["broken.jpg"]

    def test_hidden_files_are_not_images(self, tmp_path):
        _write(tmp_path / "one" / "IMG_1.jpg", (1, 2, 3))
        (tmp_path / "one" / "._IMG_1.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
        (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        images = load_verify_images(tmp_path, PRE)
        assert images.names == ("one/IMG_1.jpg",) and images.skipped == ()

    def test_truncated_jpeg_is_skipped_with_its_name(self, tmp_path):
        _write(tmp_path / "ok.png", (1, 2, 3))
        _write(tmp_path / "full.jpg", (4, 5, 6))
        data = (tmp_path / "full.jpg").read_bytes()
        (tmp_path / "full.jpg").unlink()
        (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
        images = load_verify_images(tmp_path, PRE)
        assert images.names == ("ok.png",)
        assert images.skipped[0]["file"] == "cut.jpg" and "cut.jpg" in images.skipped[0]["reason"]

    def test_max_images(self, tmp_path):
        for i in range(3):
            _write(tmp_path / f"{i}.png", (i, i, i))
        assert len(load_verify_images(tmp_path, PRE, max_images=2).names) == 2

    def test_prepared_dataset_split(self, tmp_path):
        _write(tmp_path / "images" / "v.png", (9, 9, 9))
        _write(tmp_path / "images" / "t.png", (8, 8, 8))
        record = {"label": "one", "source": "/s", "sha256": "0", "source_size": [20, 16], "size": [20, 16],
                  "phash": "0"}
        manifest = {"labels": ["one"], "records": [{**record, "path": "images/v.png", "split": "valid"},
                                                   {**record, "path": "images/t.png", "split": "train"}]}
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
        assert load_verify_images(tmp_path, PRE).names == ("images/v.png",)
        assert load_verify_images(tmp_path, PRE, split="train").names == ("images/t.png",)
        assert load_verify_images(f"{tmp_path}:train", PRE).names == ("images/t.png",)

    def test_unknown_split(self, tmp_path):
        (tmp_path / "manifest.json").write_text(json.dumps({"labels": ["one"], "records": []}))
        with pytest.raises(ValueError, match="split must be one of"):
            load_verify_images(f"{tmp_path}:dev", PRE)

    def test_missing_folder(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="images: no such folder"):
            load_verify_images(tmp_path / "nope", PRE)

    def test_no_readable_image(self, tmp_path):
        (tmp_path / "a.txt").write_text("x")
        with pytest.raises(FileNotFoundError, match="no readable image"):
            load_verify_images(tmp_path, PRE)
