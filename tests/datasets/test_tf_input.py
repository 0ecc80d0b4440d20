import numpy as np
import pytest
from PIL import Image

from classifier.backbones.vgg16 import vgg16_preprocessing
from datasets.manifest import Manifest, Record
from datasets.tf_input import Augmentation, augment_rgb, load_split, read_rgb


def _manifest(tmp_path, n_per_class=3, size=(40, 30)):
    records = []
    rng = np.random.default_rng(0)
    for label, colour in (("one", (0, 200, 0)), ("ten", (0, 0, 220))):
        for i in range(n_per_class):
            pixels = rng.integers(0, 60, (size[1], size[0], 3), dtype=np.uint8)
            pixels[10:20, 10:30] = colour
            path = tmp_path / "images" / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
            records.append(Record(path=f"images/{label}/{i}.png", label=label, source=str(path),
                                  sha256="0" * 64, source_size=size, size=size, phash="0" * 16,
                                  group=len(records), split="train" if i else "valid"))
    return Manifest(root=tmp_path, records=tuple(records), labels=("one", "ten"))


class TestReadRgb:
    def test_resizes_to_input_size(self, tmp_path):
        manifest = _manifest(tmp_path)
        image = read_rgb(manifest.image_path(manifest.records[0]), vgg16_preprocessing((16, 32)))
        assert image.shape == (16, 32, 3) and image.dtype == np.uint8

    def test_unreadable_file_is_named(self, tmp_path):
        bad = tmp_path / "bad.jpg"
        bad.write_text("not an image")
        with pytest.raises(ValueError, match="bad.jpg"):
            read_rgb(bad, vgg16_preprocessing((16, 16)))

    @pytest.mark.parametrize("pixels", [1100, 2100])  # Pillow only warns below twice its limit
    def test_prepares_size_rule_holds_for_every_reader(self, tmp_path, monkeypatch, pixels):
        from datasets.images import UnreadableImage, read_image

        big = tmp_path / "big.png"
        Image.new("RGB", (pixels // 10, 10)).save(big)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
        with pytest.raises(ValueError, match=r"big\.png: too large to decode safely .* below 1000 pixels"):
            read_rgb(big)
        with pytest.raises(UnreadableImage, match="too large to decode safely"):  # what prepare says
            read_image(big.read_bytes())

    def test_missing_file_is_named(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="nope.jpg"):
            read_rgb(tmp_path / "nope.jpg", vgg16_preprocessing((16, 16)))

    @pytest.mark.parametrize("preprocessing", [None, vgg16_preprocessing((16, 16))])
    def test_truncated_jpeg_is_named(self, tmp_path, preprocessing):
        full = tmp_path / "full.jpg"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(full)
        cut = tmp_path / "cut.jpg"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(ValueError, match=r"Cannot read image .*cut\.jpg: image file is truncated"):
            read_rgb(cut, preprocessing)

    @pytest.mark.parametrize("name", ["photo.webp", "photo.tif", "photo.bmp"])
    def test_webp_tiff_and_bmp_are_read(self, tmp_path, name):
        pixels = np.zeros((24, 32, 3), np.uint8)
        pixels[:, 16:] = (0, 0, 255)
        Image.fromarray(pixels).save(tmp_path / name, **({"lossless": True} if name.endswith("webp") else {}))
        np.testing.assert_array_equal(read_rgb(tmp_path / name), pixels)

    def test_not_an_image_says_so(self, tmp_path):
        bad = tmp_path / "notes.png"
        bad.write_text("not an image")
        with pytest.raises(ValueError, match=r"notes\.png: not a JPEG, PNG, HEIC, WebP, TIFF or BMP image"):
            read_rgb(bad)

    def test_exif_orientation_applied_and_file_untouched(self, tmp_path):
        path = tmp_path / "rotated.jpg"
        exif = Image.Exif()
        exif[0x0112] = 6  # stored landscape, shown portrait (rotate 90 degrees clockwise)
        Image.new("RGB", (30, 20), (200, 10, 10)).save(path, exif=exif.tobytes())
        before = path.read_bytes()
        image = read_rgb(path)
        assert image.shape == (30, 20, 3) and image.dtype == np.uint8
        assert path.read_bytes() == before

    @pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
    def test_any_mode_reads_as_rgb_at_own_size(self, tmp_path, mode):
        path = tmp_path / f"{mode}.png"
        Image.new(mode, (12, 7)).save(path)
        image = read_rgb(path)
        assert image.shape == (7, 12, 3) and image.dtype == np.uint8


class TestLoadSplit:
    def test_split_matches_read_rgb(self, tmp_path):
        manifest = _manifest(tmp_path)
        prep = vgg16_preprocessing((24, 32))
        images, labels, records = load_split(manifest, "train", prep)
        assert images.shape == (4, 24, 32, 3) and images.dtype == np.uint8
        for image, record in zip(images, records, strict=True):
            np.testing.assert_array_equal(image, read_rgb(manifest.image_path(record), prep))
        np.testing.assert_array_equal(labels, [manifest.label_index(r) for r in records])
        assert [r.split for r in records] == ["train"] * 4


class TestAugmentRgb:
    def test_keeps_shape_and_range(self):
        import tensorflow as tf

        image = tf.random.uniform((24, 32, 3), 0, 255, seed=0)
        out = augment_rgb(image, tf.constant([1, 2], tf.int64), Augmentation())
        assert out.shape == (24, 32, 3)
        assert float(tf.reduce_min(out)) >= 0 and float(tf.reduce_max(out)) <= 255

    def test_neutral_augmentation_is_identity(self):
        import tensorflow as tf

        image = tf.random.uniform((24, 32, 3), 0, 255, seed=0)
        neutral = Augmentation(flip_horizontal=False, max_rotation=0, max_shift=0, brightness=0,
                               contrast=0, saturation=0, hue=0, crop_area=(1.0, 1.0))
        out = augment_rgb(image, tf.constant([1, 2], tf.int64), neutral)
        np.testing.assert_allclose(out.numpy(), image.numpy(), atol=1e-3)

    def test_shift_moves_content(self):
        import tensorflow as tf

        from datasets.tf_input import _rotate_shift

        image = np.zeros((20, 20, 1), np.float32)
        image[5, 5] = 255
        out = _rotate_shift(tf.constant(image), tf.constant(0.0), tf.constant(3.0), tf.constant(2.0)).numpy()
        assert out[7, 8, 0] == pytest.approx(255)

    def test_bad_crop_area(self):
        with pytest.raises(ValueError, match="crop_area"):
            Augmentation(crop_area=(0.0, 1.0))
