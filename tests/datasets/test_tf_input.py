import numpy as np
import pytest
from PIL import Image

from datasets.manifest import Manifest, Record
from datasets.preprocessing import Preprocessing
from datasets.tf_input import Augmentation, augment_rgb, load_split, make_dataset, read_rgb


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
        image = read_rgb(manifest.image_path(manifest.records[0]), Preprocessing.vgg16((16, 32)))
        assert image.shape == (16, 32, 3) and image.dtype == np.uint8

    def test_unreadable_file_is_named(self, tmp_path):
        bad = tmp_path / "bad.jpg"
        bad.write_text("not an image")
        with pytest.raises(ValueError, match="bad.jpg"):
            read_rgb(bad, Preprocessing.vgg16((16, 16)))

    def test_missing_file_is_named(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="nope.jpg"):
            read_rgb(tmp_path / "nope.jpg", Preprocessing.vgg16((16, 16)))

    @pytest.mark.parametrize("preprocessing", [None, Preprocessing.vgg16((16, 16))])
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


class TestMakeDataset:
    def test_batches_match_numpy_preprocessing(self, tmp_path):
        manifest = _manifest(tmp_path)
        prep = Preprocessing.vgg16((24, 32))
        x, y = next(iter(make_dataset(manifest, "train", prep, batch_size=8)))
        images, labels, records = load_split(manifest, "train", prep)
        assert x.shape == (4, 24, 32, 3) and y.shape == (4, 2)
        np.testing.assert_allclose(x.numpy(), prep.apply(images), atol=1e-4)
        np.testing.assert_array_equal(np.argmax(y.numpy(), 1), labels)
        assert [r.split for r in records] == ["train"] * 4

    def test_augmented_views_are_seeded(self, tmp_path):
        manifest = _manifest(tmp_path)
        prep = Preprocessing.vgg16((24, 32))

        def first(seed):
            ds = make_dataset(manifest, "train", prep, batch_size=4, augment=True, shuffle=True, seed=seed)
            return next(iter(ds))[0].numpy()

        np.testing.assert_array_equal(first(1), first(1))
        assert not np.allclose(first(1), first(2))

    def test_epochs_give_new_views(self, tmp_path):
        manifest = _manifest(tmp_path)
        ds = make_dataset(manifest, "train", Preprocessing.vgg16((24, 32)), batch_size=4, augment=True, cache=True)
        epoch1, epoch2 = (next(iter(ds))[0].numpy() for _ in range(2))
        assert not np.allclose(epoch1, epoch2)

    def test_repeat_views_multiplies_the_split(self, tmp_path):
        manifest = _manifest(tmp_path)
        ds = make_dataset(manifest, "train", Preprocessing.vgg16((24, 32)), batch_size=100, repeat_views=3)
        assert next(iter(ds))[0].shape[0] == 12

    def test_empty_split_is_an_error(self, tmp_path):
        manifest = _manifest(tmp_path)
        with pytest.raises(ValueError, match="'test' split .* is empty"):
            make_dataset(manifest, "test", Preprocessing.vgg16((24, 32)))

    def test_bad_batch_size(self, tmp_path):
        with pytest.raises(ValueError, match="batch_size must be >= 1. Received: 0"):
            make_dataset(_manifest(tmp_path), "train", Preprocessing.vgg16((24, 32)), batch_size=0)


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
