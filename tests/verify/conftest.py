"""Tiny Keras models, their Core ML exports (correct and with seeded faults), and tiny images.

The exports are made here with coremltools directly, in the shape ``classifier/export.py``
gives them (image input ``image`` with the saved preprocessing's colour layout, bias and scale,
and a classifier output: ``classLabel`` + probabilities dict), so that faults can be seeded into
them (swapped colour order, missing or doubled bias, reversed labels, wrong size) and these tests
do not depend on the exporter. ``test_verify_real_export.py`` checks what the exporter writes.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
from PIL import Image

from classifier.backbones.vgg16 import VGG16_BGR_BIAS, vgg16_preprocessing
from datasets.preprocessing import Preprocessing

LABELS = ("one", "ten")
SIZE = (32, 32)


def build_keras_model(seed: int = 0):
    """Conv-relu-maxpool-conv-relu, a 1x1 class-map conv, global average pooling, softmax.

    Spatial input dims are free (None) so the same weights can be exported at another size.
    Outputs ``probabilities`` (N, 2) and ``class_map`` (N, h, w, 2) as in a model directory.
    """
    import keras

    keras.utils.set_random_seed(seed)
    init = keras.initializers.RandomNormal(stddev=0.02, seed=seed)
    image = keras.Input((None, None, 3), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", kernel_initializer=init,
                            bias_initializer="ones", name="conv1")(image)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", kernel_initializer=init, name="conv2")(x)
    class_map = keras.layers.Conv2D(2, 1, kernel_initializer=init, name="class_map")(x)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(class_map)
    probabilities = keras.layers.Softmax(name="probabilities")(pooled)
    return keras.Model(image, {"probabilities": probabilities, "class_map": class_map})


def balance_classes(model, pixels: np.ndarray, preprocessing: Preprocessing) -> None:
    """Set the class-map bias so that the images split about evenly between the two classes."""
    logits = model.predict(preprocessing.apply(pixels), verbose=0)["class_map"].mean(axis=(1, 2))
    layer = model.get_layer("class_map")
    kernel, bias = layer.get_weights()
    margin = float(np.median(logits[:, 1] - logits[:, 0]))
    layer.set_weights([kernel * 20.0, np.array([margin * 10.0, -margin * 10.0], np.float32)])


def make_images(folder: Path, count: int = 8, seed: int = 0) -> Path:
    """Write ``count`` small PNGs (smooth colour fields plus noise, 40x48) into ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:40, 0:48] / 40.0
    for i in range(count):
        base = rng.uniform(0, 255, 3)
        slope = rng.uniform(-120, 120, (2, 3))
        rgb = base + yy[..., None] * slope[0] + xx[..., None] * slope[1] + rng.normal(0, 20, (40, 48, 3))
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(folder / f"img{i}.png")
    return folder


def export(model, path: Path, *, precision: str = "FP32", kind: str = "mlprogram", color_layout: str = "BGR",
           bias=VGG16_BGR_BIAS, size=SIZE, labels=LABELS, bias_in_model: bool = False,
           metadata: bool = True) -> Path:
    """Convert the probabilities head of ``model`` to Core ML, optionally with a seeded fault."""
    import coremltools as ct
    import keras

    head = keras.Model(model.input, model.output["probabilities"])
    if bias_in_model:  # the fault "bias applied twice": baked into the graph and also in the spec
        image = keras.Input((None, None, 3), name="image")
        shifted = keras.layers.Rescaling(1.0, offset=np.asarray(bias, np.float32), name="baked_bias")(image)
        head = keras.Model(image, head(shifted))
    layout = ct.colorlayout.BGR if color_layout == "BGR" else ct.colorlayout.RGB
    kwargs = {"compute_precision": ct.precision.FLOAT16 if precision == "FP16" else ct.precision.FLOAT32}
    if kind != "mlprogram":
        kwargs = {}
    image_type = ct.ImageType(name="image", shape=(1, *size, 3), color_layout=layout, scale=1.0,
                              bias=list(bias) if bias is not None else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlmodel = ct.convert(head, inputs=[image_type], classifier_config=ct.ClassifierConfig(list(labels)),
                             convert_to=kind, **kwargs)
    if metadata:
        mlmodel.user_defined_metadata["boxstrap.labels"] = json.dumps(list(LABELS))
        mlmodel.user_defined_metadata["boxstrap.preprocessing"] = json.dumps(vgg16_preprocessing(SIZE).to_dict())
    mlmodel.save(str(path))
    return path


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A model directory (model.keras, preprocessing.json, labels.json) with balanced classes."""
    root = tmp_path_factory.mktemp("model")
    images = make_images(root / "images")
    preprocessing = vgg16_preprocessing(SIZE)
    pixels = np.stack([preprocessing.resize(Image.open(p)) for p in sorted(images.glob("*.png"))])
    model = build_keras_model()
    balance_classes(model, pixels, preprocessing)
    directory = root / "model_dir"
    directory.mkdir()
    model.save(directory / "model.keras")
    preprocessing.save(directory)
    (directory / "labels.json").write_text(json.dumps(list(LABELS)))
    return directory


@pytest.fixture(scope="session")
def images_dir(model_dir) -> Path:
    return model_dir.parent / "images"


@pytest.fixture(scope="session")
def keras_model(model_dir):
    import keras

    return keras.saving.load_model(model_dir / "model.keras")


_FAULTS = {
    "mlprogram_fp32": ("fp32.mlpackage", {}),
    "mlprogram_fp16": ("fp16.mlpackage", {"precision": "FP16"}),
    "neuralnetwork": ("nn.mlmodel", {"kind": "neuralnetwork"}),
    "swapped_colour": ("swapped.mlpackage", {"color_layout": "RGB"}),
    "missing_bias": ("nobias.mlpackage", {"bias": None}),
    "bias_twice": ("bias2.mlpackage", {"bias_in_model": True}),
    "reversed_labels": ("reversed.mlpackage", {"labels": LABELS[::-1]}),
    "wrong_size": ("size.mlpackage", {"size": (40, 40)}),
    "nn_swapped_colour": ("nn_swapped.mlmodel", {"kind": "neuralnetwork", "color_layout": "RGB"}),
}


class _Exports(dict):
    """The correct exports and one per seeded fault, by name; each converted on first use."""

    def __init__(self, model, root: Path) -> None:
        super().__init__()
        self._model, self._root = model, root

    def __missing__(self, name: str) -> Path:
        filename, options = _FAULTS[name]
        self[name] = export(self._model, self._root / filename, **options)
        return self[name]


@pytest.fixture(scope="session")
def exports(model_dir, keras_model, tmp_path_factory) -> dict[str, Path]:
    """``exports[name]``: a correct export ("mlprogram_fp32", "mlprogram_fp16", "neuralnetwork") or a fault."""
    return _Exports(keras_model, tmp_path_factory.mktemp("exports"))
