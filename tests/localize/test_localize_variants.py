"""The pure parts of benchmarks/localize_variants.py, and one tiny end-to-end run."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "localize_variants.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("localize_variants", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    sys.path.insert(0, str(SCRIPT.parent))  # benchmarks import their shared _common module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
        sys.path.remove(str(SCRIPT.parent))


def test_score_boxes(bench):
    pred = [np.array([[0, 0, 10, 10]]), np.zeros((0, 4))]
    gt = [np.array([[0, 0, 10, 20]]), np.array([[0, 0, 5, 5]])]
    assert bench.score_boxes(pred, gt) == (0.5, 0.25)


def test_throughput_counts_shared_and_own_time(bench):
    timing = bench.Timing(read=1.0, preprocess=1.0, network=4.0, cam=0.0)
    timing.add("grabcut", 4.0)
    timing.add("flip", 4.0, network=True)
    assert bench.throughput(10, timing, "grabcut") == pytest.approx((1.0, 0.6))
    ips, outside = bench.throughput(12, timing, "thr=0.2", ["flip"])
    assert ips == pytest.approx(1.2) and outside == pytest.approx(0.2)  # 12 photos in 1+1+4+4 s, 8 s in the net


def test_two_fold_thresholds_use_the_other_half(bench):
    def graded(inner):
        h = np.zeros((30, 30))
        h[3:27, 3:27] = 0.2
        h[8:22, 8:22] = inner
        h[12:18, 12:18] = 1.0
        return h

    maps = [graded(0.5), graded(0.5), graded(0.5), graded(0.5)]
    gt = [np.array([[8, 8, 22, 22]])] * 4
    per_photo, fitted = bench.two_fold_thresholds(maps, gt, [(30, 30)] * 4)
    assert len(fitted) == 2 and all(0.2 < t <= 0.5 for t in fitted)
    assert per_photo[0] == fitted[1] and per_photo[1] == fitted[0]
    with pytest.raises(ValueError, match="at least 2 photos"):
        bench.two_fold_thresholds(maps[:1], gt[:1], [(30, 30)])


def test_format_table(bench):
    rows = [bench.Row("thr=0.2", 0.5, 0.4, 0.6, 0.55, 3.21, 0.25), bench.Row("grabcut", 0.75, 0.6, None, None, 1.0, 0.9)]
    lines = bench.format_table(rows).splitlines()
    assert lines[0].split()[:3] == ["variant", "CorLoc", "mean"]
    assert lines[2].split() == ["thr=0.2", "0.500", "0.400", "0.600", "0.550", "3.21", "25%"]
    assert lines[3].split()[3:5] == ["-", "-"]


@pytest.fixture
def tiny_model_dir(tmp_path):
    """A model directory following the contract: a fixed filter that lights red pixels."""
    import keras

    from datasets.preprocessing import Preprocessing

    pre = Preprocessing(input_size=(32, 32), color_order="RGB", bias=(0.0, 0.0, 0.0), scale=1 / 255)
    inputs = keras.Input((32, 32, 3), name="image")
    pooled = keras.layers.AveragePooling2D(4)(inputs)
    class_map = keras.layers.Conv2D(2, 1, name="class_map")(pooled)
    probs = keras.layers.Softmax(name="probabilities")(keras.layers.GlobalAveragePooling2D()(class_map))
    model = keras.Model(inputs, {"probabilities": probs, "class_map": class_map})
    # class "red": red minus green minus blue; class "other": the opposite
    model.get_layer("class_map").set_weights([np.array([[[[1, -1], [-1, 1], [-1, 1]]]], np.float32) * 4,
                                              np.array([3.0, 0.0], np.float32)])  # bias: "red" wins on average
    out = tmp_path / "model"
    out.mkdir()
    model.save(out / "model.keras")
    pre.save(out)
    (out / "labels.json").write_text(json.dumps(["red", "other"]))
    return out


def test_end_to_end_on_tiny_model(bench, tiny_model_dir, tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    records = []
    for i in range(4):
        img = rng.integers(90, 130, (48, 64, 3), dtype=np.uint8)
        x0, y0 = 8 + 6 * i, 10 + 3 * i
        img[y0:y0 + 16, x0:x0 + 24] = (230, 30, 30)
        Image.fromarray(img).save(tmp_path / f"p{i}.png")
        records.append({"file": f"p{i}.png", "width": 64, "height": 48, "label": "red",
                        "boxes": [[x0, y0, x0 + 23, y0 + 15]]})
    (tmp_path / "boxes.json").write_text(json.dumps(records))
    review = tmp_path / "review"
    assert bench.main([str(tiny_model_dir), "--boxes", str(tmp_path / "boxes.json"),
                       "--review-dir", str(review), "--save-calibration"]) == 0
    text = capsys.readouterr().out
    table = {line.split()[0]: line.split() for line in text.splitlines() if line.startswith(("thr=", "grabcut", "otsu"))}
    assert float(table["thr=0.5"][1]) == 1.0          # the red square is found in every photo
    assert float(table["grabcut"][1]) == 1.0
    assert "classification accuracy: 1.0" in text
    assert (review / "grabcut-cal-2fold_sheet_00.png").is_file()
    saved = json.loads((tiny_model_dir / "localize_calibration.json").read_text())
    assert saved["method"] == "box_accuracy" and saved["n_images"] == 4


def test_unknown_review_variant_fails_before_any_work(bench, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main([str(tmp_path), "--review-variant", "nope"])
    assert "--review-variant must be one of" in capsys.readouterr().err
