import argparse
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from boxstrap.commands import demo_data
from datasets.annotations import read_annotations
from datasets.synthetic import (
    LABELS,
    DemoDataConfig,
    _render,
    render_scene,
    render_scene_objects,
    write_demo_data,
)
from groundwork.config import load_config

SIZE = (96, 128)


class TestRenderScene:
    @pytest.mark.parametrize("label", LABELS)
    def test_shape_dtype_and_box_inside(self, label):
        rgb, box = render_scene(label, size=SIZE, rng=np.random.default_rng(3))
        assert rgb.shape == (*SIZE, 3) and rgb.dtype == np.uint8
        assert box.shape == (4,) and box.dtype == np.float64
        assert 0 <= box[0] < box[2] <= SIZE[1] and 0 <= box[1] < box[3] <= SIZE[0]

    def test_deterministic_for_a_seed(self):
        a = render_scene("ten", size=SIZE, rng=np.random.default_rng(7))
        b = render_scene("ten", size=SIZE, rng=np.random.default_rng(7))
        c = render_scene("ten", size=SIZE, rng=np.random.default_rng(8))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[0], c[0])

    # sha256 of the RGB bytes, recorded before the background textures moved to datasets.textures
    # (numpy 2.4.6, opencv 5.0.0): the move must not change a pixel. Another numpy or OpenCV build
    # may round differently and need new values.
    @pytest.mark.parametrize(("label", "seed", "sha256", "box"), [
        ("one", 11, "40775899596c0f2b8f8bb6879508e418e7f8baf62011cd80ee55c81315273c65", [62, 49, 85, 77]),
        ("ten", 14, "ae6cfb6b5a6aa280de330606fb0106c87a35adccf0b2ca5797189fcb4832ab50", [33, 19, 98, 69]),
    ])
    def test_same_pixels_for_a_seed_as_recorded(self, label, seed, sha256, box):
        rgb, got_box = render_scene(label, size=SIZE, rng=np.random.default_rng(seed))
        assert hashlib.sha256(rgb.tobytes()).hexdigest() == sha256
        np.testing.assert_array_equal(got_box, box)

    @pytest.mark.parametrize("seed", range(12))
    def test_box_is_tight_around_the_block(self, seed):
        label = LABELS[seed % 2]
        rgb, box, mask = render_scene(label, size=SIZE, rng=np.random.default_rng(seed), with_mask=True)
        x0, y0, x1, y1 = box.astype(int)
        covered = mask >= 0.5
        # every edge row/column of the box holds block pixels; nothing outside the box does
        assert covered[y0, x0:x1].any() and covered[y1 - 1, x0:x1].any()
        assert covered[y0:y1, x0].any() and covered[y0:y1, x1 - 1].any()
        outside = covered.copy()
        outside[y0:y1, x0:x1] = False
        assert not outside.any()
        # the block's pixels differ from the same scene drawn without the block, just inside the edges
        background, _ = _render(label, *SIZE, np.random.default_rng(seed), True, draw_block=False)
        diff = np.abs(rgb.astype(int) - background.astype(int)).sum(-1)
        for edge in (diff[y0, x0:x1][covered[y0, x0:x1]], diff[y1 - 1, x0:x1][covered[y1 - 1, x0:x1]],
                     diff[y0:y1, x0][covered[y0:y1, x0]], diff[y0:y1, x1 - 1][covered[y0:y1, x1 - 1]]):
            assert edge.max() > 20  # a blurred corner pixel can be close to the background
        assert np.median(diff[covered]) > 40

    def test_colours_of_the_two_blocks(self):
        """The cube is green, the rod blue: the block pixels' mean hue tells them apart."""
        for label, channel in (("one", 1), ("ten", 2)):
            rgb, _, mask = render_scene(label, size=SIZE, rng=np.random.default_rng(1), with_mask=True)
            mean = rgb[mask > 0.9].astype(float).mean(0)
            assert mean.argmax() == channel, (label, mean)

    def test_rod_is_longer_than_cube_relative_to_its_width(self):
        ratios = {}
        for label in LABELS:
            values = []
            for seed in range(6):
                _, _, mask = render_scene(label, size=SIZE, rng=np.random.default_rng(seed), with_mask=True)
                ys, xs = np.nonzero(mask >= 0.5)
                cov = np.cov(np.stack([xs, ys]).astype(float))
                values.append(np.sqrt(np.linalg.eigvalsh(cov)[::-1][0] / np.linalg.eigvalsh(cov)[0]))
            ratios[label] = np.median(values)
        assert ratios["ten"] > 3 * ratios["one"]

    def test_errors(self):
        rng = np.random.default_rng(0)
        with pytest.raises(ValueError, match=r"label must be one of \('one', 'ten'\). Received: 'six'"):
            render_scene("six", size=SIZE, rng=rng)
        with pytest.raises(ValueError, match=r"size must be \(height, width\)"):
            render_scene("one", size=(32, 640), rng=rng)
        with pytest.raises(ValueError, match="size must be"):
            render_scene("one", size=(96.0, 128), rng=rng)
        with pytest.raises(TypeError, match="rng must be a numpy.random.Generator. Received: int"):
            render_scene("one", size=SIZE, rng=0)


class TestRenderSceneObjects:
    @pytest.mark.parametrize("label", LABELS)
    def test_several_blocks_apart_the_first_the_one_block_scenes(self, label):
        for seed in range(4):
            _, box = render_scene(label, size=(240, 320), rng=np.random.default_rng(seed))
            rgb, boxes = render_scene_objects(label, 3, size=(240, 320), rng=np.random.default_rng(seed))
            assert rgb.shape == (240, 320, 3) and 1 <= len(boxes) <= 3
            np.testing.assert_array_equal(boxes[0], box)
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    a, b = boxes[i], boxes[j]
                    assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], "blocks overlap"
        counts = [len(render_scene_objects("one", 3, size=(480, 640), rng=np.random.default_rng(s))[1])
                  for s in range(6)]
        assert counts.count(3) >= 4  # small blocks on a large photo: there is room for all three

    def test_each_box_bounds_its_own_block(self):
        """Drawn alone, no block's pixels fall outside its box: the boxes are the blocks', not a guess."""
        rng = np.random.default_rng(7)
        more = rng.spawn(1)[0]
        _, coverages = _render("one", 240, 320, rng, False, more=2, more_rng=more)
        _, boxes = render_scene_objects("one", 3, size=(240, 320), rng=np.random.default_rng(7), distractors=False)
        assert len(coverages) == len(boxes)
        for coverage, (x0, y0, x1, y1) in zip(coverages, boxes.astype(int), strict=True):
            outside = coverage.copy()
            outside[y0:y1, x0:x1] = 0
            assert outside.max() < 0.5 and coverage[y0:y1, x0:x1].max() > 0.9

    def test_errors(self):
        with pytest.raises(ValueError, match="count must be an int >= 1"):
            render_scene_objects("one", 0, rng=np.random.default_rng(0))
        with pytest.raises(ValueError, match="label must be one of"):
            render_scene_objects("two", 2, rng=np.random.default_rng(0))


class TestDemoDataConfig:
    @pytest.mark.parametrize("kwargs, match", [
        ({"per_class": 0}, "per_class must be a positive int"),
        ({"size": (480,)}, "size must be"),
        ({"seed": -1}, "seed must be a non-negative int"),
        ({"jpeg_quality": 101}, "jpeg_quality must be an int in 1..100"),
        ({"objects": 0}, "objects must be an int in 1..8"),
        ({"objects": 9}, "objects must be an int in 1..8"),
    ])
    def test_errors(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            DemoDataConfig(**kwargs)


class TestWriteDemoData:
    def test_writes_images_boxes_and_config(self, tmp_path):
        config = DemoDataConfig(per_class=3, size=SIZE, seed=5)
        boxes_path = write_demo_data(tmp_path / "demo", config, progress=False)
        assert boxes_path == tmp_path / "demo" / "boxes.json"
        anns = read_annotations(boxes_path, labels=LABELS)
        assert [a.image for a in anns] == [f"{lab}/{lab}_{i:04d}.jpg" for lab in LABELS for i in range(3)]
        for ann in anns:
            with Image.open(tmp_path / "demo" / ann.image) as im:
                assert im.size == (SIZE[1], SIZE[0]) and im.format == "JPEG"
            assert ann.label == ann.labels()[0] == ann.image.split("/")[0] and len(ann.boxes) == 1
        assert load_config(DemoDataConfig, tmp_path / "demo" / "demo_data_config.json") == config
        # boxes.json holds the exact box of the scene rendered from the same seed, inclusive pixels
        _, box = render_scene("ten", size=SIZE, rng=np.random.default_rng([5, 1, 2]))
        record = json.loads(boxes_path.read_text())[5]
        assert record["boxes"] == [[int(box[0]), int(box[1]), int(box[2]) - 1, int(box[3]) - 1]]

    def test_scenes_of_several_blocks_box_every_block(self, tmp_path):
        config = DemoDataConfig(per_class=3, size=(240, 320), seed=2, objects=3)
        anns = read_annotations(write_demo_data(tmp_path / "demo", config, progress=False), labels=LABELS)
        counts = [len(a.boxes) for a in anns]
        assert all(1 <= c <= 1 + i % 3 for c, i in zip(counts, [0, 1, 2] * 2, strict=True)) and max(counts) > 1
        rgb, boxes = render_scene_objects("ten", 3, size=(240, 320), rng=np.random.default_rng([2, 1, 2]))
        assert anns[5].xyxy().tolist() == boxes.tolist()

    def test_same_seed_same_files(self, tmp_path):
        config = DemoDataConfig(per_class=1, size=SIZE, seed=2)
        write_demo_data(tmp_path / "a", config, progress=False)
        write_demo_data(tmp_path / "b", config, progress=False)
        for name in ("one/one_0000.jpg", "ten/ten_0000.jpg", "boxes.json"):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

    def test_never_replaces_photos_it_did_not_write(self, tmp_path):
        (tmp_path / "one").mkdir()
        (tmp_path / "one" / "one_0000.jpg").write_bytes(b"my photo")
        (tmp_path / "boxes.json").write_text("[]")
        config = DemoDataConfig(per_class=1, size=(64, 64))
        with pytest.raises(FileExistsError, match=r"holds 2 file\(s\) demo-data would replace \(e.g. boxes.json\)"):
            write_demo_data(tmp_path, config, progress=False)
        assert (tmp_path / "one" / "one_0000.jpg").read_bytes() == b"my photo"
        assert (tmp_path / "boxes.json").read_text() == "[]"
        write_demo_data(tmp_path, config, progress=False, overwrite=True)
        assert (tmp_path / "one" / "one_0000.jpg").read_bytes() != b"my photo"
        write_demo_data(tmp_path, config, progress=False)  # its own files: replaced without asking

    def test_warns_about_images_of_an_earlier_run(self, tmp_path, caplog):
        write_demo_data(tmp_path, DemoDataConfig(per_class=2, size=SIZE), progress=False)
        write_demo_data(tmp_path, DemoDataConfig(per_class=1, size=SIZE), progress=False)
        assert "holds 2 images boxes.json does not list" in caplog.text
        assert len(read_annotations(tmp_path / "boxes.json")) == 2

    def test_errors(self, tmp_path):
        (tmp_path / "file").write_text("x")
        with pytest.raises(NotADirectoryError, match="out must be a folder"):
            write_demo_data(tmp_path / "file", DemoDataConfig(per_class=1, size=SIZE))
        with pytest.raises(TypeError, match="config must be a DemoDataConfig"):
            write_demo_data(tmp_path / "x", {"per_class": 1})


def main(argv):
    """Parse and run ``boxstrap demo-data`` alone (the full CLI imports every stage, TensorFlow included)."""
    parser = argparse.ArgumentParser()
    demo_data.add_arguments(parser)
    return demo_data.run(parser.parse_args(argv))


class TestCommand:
    def test_cli_writes_the_dataset(self, tmp_path, capsys):
        assert main(["--out", str(tmp_path / "d"), "--per-class", "2", "--size", "64x96",
                     "--seed", "1", "--no-distractors"]) == 0
        assert "boxes.json" in capsys.readouterr().out
        config = load_config(DemoDataConfig, tmp_path / "d" / "demo_data_config.json")
        assert config == DemoDataConfig(per_class=2, size=(64, 96), seed=1, distractors=False)
        assert len(read_annotations(tmp_path / "d" / "boxes.json")) == 4

    def test_cli_renders_scenes_of_several_blocks(self, tmp_path, capsys):
        assert main(["--out", str(tmp_path / "d"), "--per-class", "2", "--size", "240x320", "--objects", "2"]) == 0
        assert load_config(DemoDataConfig, tmp_path / "d" / "demo_data_config.json").objects == 2
        assert [len(a.boxes) for a in read_annotations(tmp_path / "d" / "boxes.json")] == [1, 2, 1, 2]

    def test_cli_rejects_bad_size(self, tmp_path, capsys):
        with pytest.raises(SystemExit):
            main(["--out", str(tmp_path / "d"), "--size", "64by96"])
        assert "size must be HEIGHTxWIDTH" in capsys.readouterr().err
