import numpy as np
import pytest

from localize.cam import class_activation_map, upsample_normalize


def class_map():
    cm = np.zeros((4, 6, 3), np.float32)
    cm[1, 1, 0] = 2.0   # class 0 fires top-left
    cm[2, 4, 2] = 5.0   # class 2 fires right, strongest mean
    cm[..., 1] = 0.1    # class 1 is flat
    return cm


class TestClassActivationMap:
    def test_default_class_is_highest_mean(self):
        heat, c = class_activation_map(class_map(), image_size=(32, 48))
        assert c == 2 and heat.shape == (32, 48) and heat.dtype == np.float32
        assert heat.min() == 0.0 and heat.max() == pytest.approx(1.0)
        y, x = np.unravel_index(np.argmax(heat), heat.shape)
        assert 16 <= y < 24 and 32 <= x < 40  # inside cell (2, 4) of the 8x8 grid

    def test_class_from_probabilities(self):
        _, c = class_activation_map(class_map(), image_size=(8, 12), probabilities=[0.7, 0.2, 0.1])
        assert c == 0

    def test_given_class(self):
        heat, c = class_activation_map(class_map(), image_size=(8, 12), class_index=0)
        y, x = np.unravel_index(np.argmax(heat), heat.shape)
        assert c == 0 and (y, x) == (2, 2)

    def test_flat_class_gives_zeros(self):
        heat, _ = class_activation_map(class_map(), image_size=(8, 12), class_index=1)
        assert not heat.any()

    def test_same_size_no_resize(self):
        heat = upsample_normalize(np.array([[0.0, 2.0], [1.0, 4.0]]), (2, 2))
        np.testing.assert_allclose(heat, [[0, 0.5], [0.25, 1]])

    @pytest.mark.parametrize("kwargs, kind, match", [
        ({"class_index": 3}, ValueError, r"class_index must be in \[0, 2\]"),
        ({"class_index": 1.0}, TypeError, "class_index must be an int"),
        ({"probabilities": [0.5, 0.5]}, ValueError, "one value per class"),
        ({"image_size": (0, 4)}, ValueError, "image_size"),
    ])
    def test_bad_arguments(self, kwargs, kind, match):
        kwargs.setdefault("image_size", (8, 8))
        with pytest.raises(kind, match=match):
            class_activation_map(class_map(), **kwargs)

    def test_bad_class_map(self):
        with pytest.raises(ValueError, match=r"\(h, w, C\)"):
            class_activation_map(np.zeros((4, 4)), image_size=(8, 8))
        with pytest.raises(TypeError, match="real-valued"):
            class_activation_map(np.zeros((2, 2, 2), bool), image_size=(8, 8))
        cm = class_map()
        cm[0, 0, 0] = np.nan
        with pytest.raises(ValueError, match="NaN or inf"):
            class_activation_map(cm, image_size=(8, 8))
