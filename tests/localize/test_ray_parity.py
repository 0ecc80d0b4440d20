"""--ray gives what a local run gives: localize, detect and predict on a local Ray (2 CPUs) against the
same commands here, on a few synthetic photos and one file that is not a photo."""

import json
import shutil
import sys

import numpy as np
import pytest

from boxstrap.cli import main
from datasets.annotations import read_annotations
from datasets.synthetic import DemoDataConfig, write_demo_data
from detector.detect_photos import DetectConfig, detect_photos
from groundwork.photo_map import RayOptions
from localize.localize_photos import localize_photos
from localize.pseudo_boxes import LocalizeConfig
from tests.classifier._model_dirs import write_model_dir
from tests.detector.test_detect_photos import TINY

ray = pytest.importorskip("ray")

# Each test runs a command twice, here and on a local Ray cluster: end-to-end runs, in the slow tier
# (`tox -e slow`, CI) with the other end-to-end tests; groundwork's photo_map tests keep a local
# Ray in the unit tier.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    write_demo_data(out, DemoDataConfig(per_class=3, size=(64, 80)), progress=False)
    (out / "one" / "notes.jpg").write_text("not a photo")
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_model_dir(tmp_path_factory.mktemp("model") / "m", input_size=(64, 64))


def boxes_of(path):
    return {a.image: (a.label, a.xyxy(), [b.score for b in a.boxes]) for a in read_annotations(path)}


def assert_same_boxes(here, there):
    assert list(here) == list(there)  # same photos, same order
    for name in here:
        assert here[name][0] == there[name][0], name
        np.testing.assert_allclose(there[name][1], here[name][1], atol=1.0, err_msg=name)  # whole pixels
        np.testing.assert_allclose(there[name][2], here[name][2], atol=1e-4, err_msg=name)


def test_localize_on_ray_writes_what_a_local_run_writes(local_ray, photos, model_dir, tmp_path):
    config = LocalizeConfig(overlays=False, batch_size=2, folds=2)
    runs = {}
    for where, options in (("here", None), ("ray", RayOptions(workers=2))):
        model = shutil.copytree(model_dir, tmp_path / f"model-{where}")  # learning writes into it
        runs[where] = localize_photos(model, photos, tmp_path / where, config, ground_truth=photos / "boxes.json",
                                      progress=False, ray=options)
    here, there = (tmp_path / "here"), (tmp_path / "ray")
    assert_same_boxes(boxes_of(here / "pseudo_boxes.json"), boxes_of(there / "pseudo_boxes.json"))
    assert json.loads((there / "skipped.json").read_text()) == json.loads((here / "skipped.json").read_text())
    assert [s["image"] for s in runs["ray"].skipped] == ["one/notes.jpg"]
    assert [r["image"] for r in json.loads((there / "review.json").read_text())] == \
        [r["image"] for r in json.loads((here / "review.json").read_text())]
    assert runs["ray"].scores["corloc"] == pytest.approx(runs["here"].scores["corloc"])
    np.testing.assert_allclose(np.load(there / "features.npy"), np.load(here / "features.npy"), atol=1e-2)


def test_detect_on_ray_writes_what_a_local_run_writes(local_ray, photos, tmp_path):
    from classifier.backbones.vgg16 import VGG16, vgg16_preprocessing
    from classifier.model import build_classifier
    from detector.box_model import build_box_model
    from detector.box_model_dir import save_box_model
    from detector.box_train_config import BoxTrainConfig

    classifier = build_classifier(2, (64, 64), backbone="vgg16", filters=TINY, weights="none")
    box_model, _ = build_box_model(classifier, BoxTrainConfig(hidden=8, reduce_filters=4),
                                   feature_layer=VGG16.feature_layer)
    box_dir = save_box_model(box_model, tmp_path / "box", labels=("one", "ten"),
                             preprocessing=vgg16_preprocessing((64, 64)), config=BoxTrainConfig(hidden=8,
                                                                                              reduce_filters=4),
                             metrics={})
    config = DetectConfig(overlays=False, batch_size=4)
    here = detect_photos(box_dir, photos, tmp_path / "here", config, progress=False)
    there = detect_photos(box_dir, photos, tmp_path / "ray", config, progress=False, ray=RayOptions(workers=2))
    assert_same_boxes(boxes_of(tmp_path / "here" / "detections.json"), boxes_of(tmp_path / "ray" / "detections.json"))
    np.testing.assert_allclose(there.probabilities, here.probabilities, atol=1e-5)
    assert there.skipped == here.skipped and len(here.skipped) == 1


def test_predict_cli_prints_the_same_lines_with_ray(local_ray, photos, model_dir, capsys):
    assert main(["predict", str(model_dir), str(photos), "--json"]) == 1  # the text file: listed, exit 1
    here = capsys.readouterr()
    assert main(["predict", str(model_dir), str(photos), "--json", "--ray", "--ray-workers", "2"]) == 1
    there = capsys.readouterr()
    lines = [json.loads(line) for line in here.out.splitlines()]
    ray_lines = [json.loads(line) for line in there.out.splitlines()]
    assert [line["file"] for line in ray_lines] == [line["file"] for line in lines] and len(lines) == 6
    assert [line["label"] for line in ray_lines] == [line["label"] for line in lines]
    for a, b in zip(lines, ray_lines, strict=True):
        assert b["probabilities"] == pytest.approx(a["probabilities"], abs=1e-5)
    assert "notes.jpg" in there.err and "1 of 7 images could not be read" in there.err
    assert "ray" in sys.modules


def test_ray_workers_keep_tensorflows_start_up_lines_off_the_terminal(photos, model_dir):
    """A command on a local Ray it starts itself (a fresh process): Ray forwards every worker's
    stderr to the terminal, and each worker starts TensorFlow quietly, as the command does."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = "import sys; from boxstrap.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, "predict", str(model_dir), str(photos), "--ray",
                           "--ray-workers", "2"], capture_output=True, text=True, timeout=300, cwd=root,
                          env=dict(os.environ, PYTHONPATH=str(root)))
    assert done.returncode == 1, done.stderr  # the text file
    assert len(done.stdout.splitlines()) == 6, done.stderr
    for line in ("oneDNN custom operations", "Could not find cuda drivers", "failed call to cuInit",
                 "absl::InitializeLog", "Progress bars disabled"):
        assert line not in done.stderr, done.stderr


def test_train_features_on_ray_equal_the_local_ones_and_resume(local_ray, tmp_path):
    """The classifier's cached backbone features (train's feature pass): same chunks, seeds and
    augmented views on Ray workers as here; a finished chunk on disk is reused."""
    from classifier.backbones.vgg16 import vgg16_preprocessing
    from classifier.features import CHUNK, extract_features, extract_features_on_ray
    from classifier.model import build_classifier, split_model
    from datasets.tf_input import Augmentation
    from groundwork.atomic import write_bytes

    rng = np.random.default_rng(0)
    paths = []
    for i in range(CHUNK + 6):  # two chunks, the second short
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(buffer, format="PNG")
        paths.append(write_bytes(tmp_path / "photos" / f"{i:03d}.png", buffer.getvalue()))
    pre = vgg16_preprocessing((32, 32))
    model = build_classifier(2, (32, 32), backbone="vgg16", filters=TINY)
    lower = split_model(model, "block4_pool", backbone="vgg16")[0]
    from datasets.tf_input import read_rgb

    images = np.stack([read_rgb(p, pre) for p in paths])
    here = extract_features(lower, images, pre.apply, augmentation=Augmentation(), seed=3, view=1, batch_size=4)
    chunks = tmp_path / "chunks"
    chunks.mkdir()
    there = extract_features_on_ray(lower, paths, pre, ray=RayOptions(workers=2), lower_path=tmp_path / "lower.keras",
                                    augmentation=Augmentation(), seed=3, view=1, batch_size=4, chunk_dir=chunks,
                                    progress=False)
    assert there.dtype == np.float16 and there.shape == here.shape
    np.testing.assert_allclose(there.astype(np.float32), here.astype(np.float32), atol=2e-2, rtol=1e-2)
    assert sorted(p.name for p in chunks.iterdir()) == ["00000.npy", "00001.npy"]
    marked = np.full_like(np.load(chunks / "00000.npy"), 7)
    np.save(chunks / "00000.npy", marked)  # a finished chunk is read back, not recomputed
    (chunks / "00001.npy").unlink()  # as if interrupted before the last chunk
    again = extract_features_on_ray(lower, paths, pre, ray=RayOptions(workers=2), lower_path=tmp_path / "lower.keras",
                                    augmentation=Augmentation(), seed=3, view=1, batch_size=4, chunk_dir=chunks,
                                    progress=False)
    np.testing.assert_array_equal(again[:CHUNK], marked)
    np.testing.assert_allclose(again[CHUNK:].astype(np.float32), there[CHUNK:].astype(np.float32), atol=1e-3)
    assert (chunks / "00001.npy").is_file()


def test_train_with_ray_caches_the_features_a_local_train_caches(local_ray, tmp_path):
    from classifier.train import train
    from tests.classifier._tiny_data import make_manifest
    from tests.classifier.test_train import tiny_config

    manifest = make_manifest(tmp_path / "data")
    for where, options in (("here", None), ("ray", RayOptions(workers=2))):
        out = train(manifest.root, tmp_path / f"model-{where}", tiny_config(cache_dir=str(tmp_path / f"cache-{where}")),
                    verbose=0, ray=options)
        assert (out / "model.keras").is_file()
    here, = (tmp_path / "cache-here").iterdir()
    there, = (tmp_path / "cache-ray").iterdir()
    assert here.name == there.name  # the same cache key: the same features asked for
    assert (there / "lower.keras").is_file() and not (here / "lower.keras").exists()  # the Ray path ran
    names = sorted(p.name for p in here.glob("*.npy"))
    assert names == sorted(p.name for p in there.glob("*.npy")) and "train_v1.npy" in names
    for name in names:
        np.testing.assert_allclose(np.load(there / name).astype(np.float32), np.load(here / name).astype(np.float32),
                                   atol=2e-2, rtol=1e-2, err_msg=name)
