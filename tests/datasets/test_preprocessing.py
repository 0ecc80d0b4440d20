import numpy as np
import pytest
from PIL import Image

from datasets.preprocessing import Preprocessing

BGR = {"color_order": "BGR", "bias": (-1.0, -2.0, -3.0)}


class TestPreprocessing:
    def test_rgb_order_and_scale(self):
        p = Preprocessing(input_size=(1, 1), color_order="RGB", bias=(-1.0, -2.0, -3.0), scale=0.5)
        out = p.apply(np.array([[[10, 20, 30]]], np.uint8))
        np.testing.assert_allclose(out[0, 0], [4.0, 8.0, 12.0])

    def test_resize_from_pil_and_array(self):
        p = Preprocessing((6, 10), **BGR)
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
            Preprocessing(**{"input_size": (4, 4), **BGR, **kwargs})

    def test_apply_needs_three_channels(self):
        with pytest.raises(ValueError, match=r"Received shape: \(2, 2, 4\)"):
            Preprocessing((2, 2), **BGR).apply(np.zeros((2, 2, 4), np.uint8))

    def test_no_backbone_default(self):
        """Colour order and bias belong to a backbone's spec; datasets knows none."""
        with pytest.raises(TypeError, match="color_order"):
            Preprocessing((4, 4))
