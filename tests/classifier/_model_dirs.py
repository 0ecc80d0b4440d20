"""Tiny trained-model directories for the classifier tests (built in a second, no training)."""

from __future__ import annotations

import json
from pathlib import Path

from classifier.backbones.vgg16 import vgg16_preprocessing
from datasets.preprocessing import Preprocessing

# block5 convs have 16*16*9 = 2304 weights: above the int8 quantization threshold (2048).
TINY_FILTERS = (4, 8, 8, 16, 16)


def tiny_model(num_classes: int = 2, input_size: tuple[int, int] = (32, 32), *, pooling: str = "lse",
               filters: tuple[int, ...] = TINY_FILTERS, seed: int = 0):
    """The real classifier architecture (classifier.model) with tiny widths."""
    from classifier.model import build_classifier

    return build_classifier(num_classes, input_size, pooling=pooling, backbone="vgg16", filters=filters, seed=seed,
                            dropout=0.0)


def lambda_model(input_size: tuple[int, int] = (32, 32)):
    """A model following the output contract but with a Lambda layer (refused by safe mode)."""
    import keras

    image = keras.Input((*input_size, 3), name="image")
    x = keras.layers.Lambda(lambda t: t / 255.0, name="scale")(image)
    x = keras.layers.Conv2D(4, 3, strides=4, padding="same", activation="relu")(x)
    class_map = keras.layers.Conv2D(2, 1, name="class_map")(x)
    pooled = keras.layers.GlobalAveragePooling2D()(class_map)
    probabilities = keras.layers.Activation("softmax", name="probabilities")(pooled)
    return keras.Model(image, [probabilities, class_map])


def write_model_dir(directory: Path, model=None, *, labels=("one", "ten"), input_size=(32, 32),
                    preprocessing: Preprocessing | None = None, skip: tuple[str, ...] = ()) -> Path:
    """Save ``model`` (default: :func:`tiny_model`) as a model directory; ``skip`` leaves files out."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = tiny_model(len(labels), input_size) if model is None else model
    model.save(directory / "model.keras")
    if "preprocessing.json" not in skip:
        (preprocessing or vgg16_preprocessing(input_size)).save(directory)
    if "labels.json" not in skip:
        (directory / "labels.json").write_text(json.dumps(list(labels)))
    if "train_config.json" not in skip:
        (directory / "train_config.json").write_text(json.dumps({"config": "TrainConfig", "epochs": 1}))
    if "metrics.json" not in skip:
        (directory / "metrics.json").write_text(json.dumps({"valid": {"accuracy": 0.5}}))
    return directory
