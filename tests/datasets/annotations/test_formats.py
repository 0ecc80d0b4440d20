import dataclasses
import json

import pytest

from datasets.annotations import FORMATS, ImageAnnotation, detect_format, read_annotations, write_annotations
from datasets.synthetic import DemoDataConfig, write_demo_data

from .conftest import make_images, same_boxes

TARGETS = {"voc": "voc", "coco": "coco.json", "yolo": "yolo", "createml": "createml.json",
           "boxes-json": "boxes.json"}


def _write_and_read(anns, tmp_path, fmt, labels=("one", "ten")):
    out = write_annotations(anns, tmp_path / TARGETS[fmt], fmt, labels=labels)
    if fmt == "yolo":
        make_images(out / "images", anns)
    elif fmt == "createml":
        make_images(tmp_path, anns)
    back = read_annotations(out, labels=labels)  # format detected from the layout
    if fmt == "yolo":
        back = [ImageAnnotation(a.image.removeprefix("images/"), a.width, a.height, a.boxes) for a in back]
    return back


class TestRoundTrip:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_write_then_read_gives_the_same_boxes(self, tmp_path, anns, fmt):
        back = _write_and_read(anns, tmp_path, fmt)
        assert same_boxes(back, anns, tol=1e-4)
        assert back[1].boxes[0].score == pytest.approx(0.875)

    def test_cross_format_chain(self, tmp_path, anns):
        current = anns
        for fmt in ("voc", "coco", "yolo", "createml", "boxes-json", "voc"):
            (tmp_path / fmt).mkdir(exist_ok=True)
            current = _write_and_read(current, tmp_path / fmt, fmt)
            assert same_boxes(current, anns, tol=1e-3), fmt
            # only the boxes JSON keeps image-level labels; the boxes JSON needs them for empty images
            current = [dataclasses.replace(c, label=a.label) for c, a in zip(current, anns, strict=True)]

    def test_demo_boxes_json_survives_every_format(self, tmp_path):
        # The demo data's boxes.json has the format of valid_boxes.json beside the real photos
        # (integer inclusive pixel boxes, files in class folders), so it stands in for them.
        path = write_demo_data(tmp_path / "demo", DemoDataConfig(per_class=3, size=(64, 80)), progress=False)
        anns = read_annotations(path, labels=["one", "ten"])[:5]
        assert len(anns) == 5 and all(len(a.boxes) == 1 for a in anns)
        for fmt in ("voc", "coco", "boxes-json"):
            back = read_annotations(write_annotations(anns, tmp_path / TARGETS[fmt], fmt), fmt)
            assert same_boxes(back, anns, tol=0), fmt


class TestDetectFormat:
    def test_detects_each_layout(self, tmp_path, anns):
        for fmt in FORMATS:
            assert detect_format(write_annotations(anns, tmp_path / TARGETS[fmt], fmt)) == fmt
        assert detect_format(tmp_path / "voc" / "one" / "a.xml") == "voc"
        assert detect_format(tmp_path / "yolo" / "data.yaml") == "yolo"

    def test_unknown(self, tmp_path):
        (tmp_path / "x.json").write_text(json.dumps({"foo": 1}))
        with pytest.raises(ValueError, match="Cannot tell the annotation format"):
            detect_format(tmp_path / "x.json")
        (tmp_path / "y.json").write_text("{")
        with pytest.raises(ValueError, match="is not valid JSON"):
            detect_format(tmp_path / "y.json")
        with pytest.raises(FileNotFoundError, match="No annotations at"):
            detect_format(tmp_path / "nope.json")


class TestErrors:
    def test_unknown_format(self, tmp_path, anns):
        with pytest.raises(ValueError, match=r"fmt must be one of .* Received: 'pascal'"):
            write_annotations(anns, tmp_path / "x", "pascal")
        with pytest.raises(ValueError, match=r"fmt must be one of .* Received: 'kitti'"):
            read_annotations(tmp_path, "kitti")

    def test_single_annotation_is_not_a_list(self, tmp_path, anns):
        with pytest.raises(TypeError, match="not a single one"):
            write_annotations(anns[0], tmp_path / "b.json", "boxes-json")
