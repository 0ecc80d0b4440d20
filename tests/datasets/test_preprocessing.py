import numpy as np
import pytest
from PIL import Image

from datasets.preprocessing import VGG16_BGR_BIAS, Preprocessing


class TestPreprocessing:
    def test_vgg16_matches_keras_caffe_mode(self):
        import keras

        rgb = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
        expected = keras.applications.vgg16.preprocess_input(rgb.astype(np.float32))
        np.testing.assert_allclose(Preprocessing.vgg16((8, 8)).apply(rgb), expected, atol=1e-4)

    def test_rgb_order_and_scale(self):
        p = Preprocessing(input_size=(1, 1), color_order="RGB", bias=(-1.0, -2.0, -3.0), scale=0.5)
        out = p.apply(np.array([[[10, 20, 30]]], np.uint8))
        np.testing.assert_allclose(out[0, 0], [4.0, 8.0, 12.0])

    def test_resize_from_pil_and_array(self):
        p = Preprocessing.vgg16((6, 10))
        image = Image.new("RGBA", (40, 30), (10, 20, 30, 0))
        assert p.resize(image).shape == (6, 10, 3)
        assert p.resize(np.zeros((30, 40), np.uint8)).shape == (6, 10, 3)

    def test_save_load_round_trip(self, tmp_path):
        p = Preprocessing(input_size=(288, 384), color_order="RGB", bias=(0.1, 0.2, 0.3), scale=1 / 255)
        p.save(tmp_path)
        assert Preprocessing.load(tmp_path) == p

    def test_load_missing_names_the_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="preprocessing.json"):
            Preprocessing.load(tmp_path)

    def test_load_broken_file(self, tmp_path):
        (tmp_path / "preprocessing.json").write_text('{"input_size": [1, 2], "colour": "BGR"}')
        with pytest.raises(ValueError, match="Unknown preprocessing fields"):
            Preprocessing.load(tmp_path)

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"color_order": "GBR"}, "color_order must be 'BGR' or 'RGB'. Received: 'GBR'"),
            ({"bias": (1.0, 2.0)}, "bias must have 3 values"),
            ({"scale": 0.0}, "scale must be a finite non-zero number"),
            ({"input_size": (0, 4)}, "input_size must be"),
        ],
    )
    def test_invalid_arguments(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            Preprocessing(**kwargs)

    def test_apply_needs_three_channels(self):
        with pytest.raises(ValueError, match=r"Received shape: \(2, 2, 4\)"):
            Preprocessing.vgg16((2, 2)).apply(np.zeros((2, 2, 4), np.uint8))

    def test_default_bias_is_vgg(self):
        assert Preprocessing().bias == VGG16_BGR_BIAS
