import numpy as np
import pytest

from localize.cam import class_activation_map, grad_cam, upsample_normalize


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


class TestGradCam:
    @pytest.fixture(scope="class")
    def model(self):
        keras = pytest.importorskip("keras")
        keras.utils.set_random_seed(0)
        inputs = keras.Input((16, 16, 3), name="image")
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
        x = keras.layers.MaxPooling2D(2)(x)
        class_map = keras.layers.Conv2D(2, 1, name="class_map")(x)
        pooled = keras.layers.GlobalAveragePooling2D()(class_map)
        probs = keras.layers.Softmax(name="probabilities")(pooled)
        return keras.Model(inputs, {"probabilities": probs, "class_map": class_map})

    def test_heatmap_shape_and_range(self, model):
        rng = np.random.default_rng(0)
        image = rng.normal(size=(16, 16, 3)).astype(np.float32)
        heat, c = grad_cam(model, image, layer_name="conv", image_size=(32, 24))
        assert heat.shape == (32, 24) and heat.dtype == np.float32
        assert 0.0 <= heat.min() and heat.max() <= 1.0
        assert c in (0, 1)
        heat2, c2 = grad_cam(model, image[None], layer_name="conv", class_index=1 - c)
        assert heat2.shape == (16, 16) and c2 == 1 - c

    def test_errors(self, model):
        image = np.zeros((16, 16, 3), np.float32)
        with pytest.raises(ValueError, match="not a layer of the model"):
            grad_cam(model, image, layer_name="nope")
        with pytest.raises(ValueError, match="output_name must be one of"):
            grad_cam(model, image, layer_name="conv", output_name="logits")
        with pytest.raises(ValueError, match=r"image must be \(H, W, 3\)"):
            grad_cam(model, np.zeros((16, 16)), layer_name="conv")
        with pytest.raises(ValueError, match=r"class_index must be an int in \[0, 1\]"):
            grad_cam(model, image, layer_name="conv", class_index=5)
