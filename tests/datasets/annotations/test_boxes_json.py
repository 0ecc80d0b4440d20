import dataclasses
import json

import pytest

from datasets.annotations import Box, ImageAnnotation
from datasets.annotations.boxes_json import read_boxes_json, write_boxes_json


def _write(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


class TestReadBoxesJson:
    def test_inclusive_pixels_become_edges(self, tmp_path):
        path = _write(tmp_path / "b.json", [{"file": "one/a.jpg", "width": 640, "height": 480, "label": "one",
                                             "boxes": [[294, 234, 362, 323]], "note": "blurry"}])
        [ann] = read_boxes_json(path, labels=["one", "ten"])
        assert ann == ImageAnnotation("one/a.jpg", 640, 480, (Box("one", 294, 234, 363, 324),), label="one")

    def test_last_pixel_column_is_inside(self, tmp_path):
        path = _write(tmp_path / "b.json", [{"file": "a.jpg", "width": 640, "height": 480, "label": "one",
                                             "boxes": [[0, 0, 639, 479]]}])
        assert read_boxes_json(path)[0].boxes[0].xyxy() == (0, 0, 640, 480)

    def test_merges_records_of_one_file(self, tmp_path):
        rec = {"file": "a.jpg", "width": 64, "height": 48}
        path = _write(tmp_path / "b.json", [{**rec, "label": "one", "boxes": [[0, 0, 9, 9]]},
                                            {**rec, "label": "ten", "boxes": [[10, 10, 19, 19]]}])
        [ann] = read_boxes_json(path)
        assert ann.labels() == ("one", "ten")

    @pytest.mark.parametrize("data, match", [
        ({"file": "a.jpg"}, "holds a list of records"),
        ([{"file": "a.jpg", "width": 64, "height": 48, "boxes": []}], r"record 0 lacks the keys \['label'\]"),
        ([{"file": "a.jpg", "width": 64, "height": 48, "label": "six", "boxes": []}], "unknown label 'six'"),
        ([{"file": "a.jpg", "width": 64, "height": 48, "label": "one", "boxes": [[0, 0, 9]]}],
         r"image 'a.jpg'\): box 0 must be \[xmin, ymin, xmax, ymax\]"),
        ([{"file": "a.jpg", "width": 64, "height": 48, "label": "one", "boxes": [[0, 0, 9, 90]]}],
         r"image 'a.jpg': box 0 .* past the image height 48"),
        ([{"file": "a.jpg", "width": 64, "height": 48, "label": "one", "boxes": [[0, 0, "x", 9]]}],
         "coordinate must be a number"),
        ([{"file": "a.jpg", "width": 64, "height": 48, "label": "one", "boxes": [[0, 0, 9, 9]], "scores": []}],
         "one score per box"),
        ([{"file": "a.jpg", "width": 64, "height": 48, "label": "one", "boxes": []},
          {"file": "a.jpg", "width": 32, "height": 48, "label": "one", "boxes": []}], "another size"),
    ])
    def test_errors_name_the_file(self, tmp_path, data, match):
        path = _write(tmp_path / "b.json", data)
        with pytest.raises(ValueError, match=match) as info:
            read_boxes_json(path, labels=["one", "ten"])
        assert str(path) in str(info.value)

    def test_broken_and_missing_file(self, tmp_path):
        (tmp_path / "b.json").write_text("[{", encoding="utf-8")
        with pytest.raises(ValueError, match=r"b.json is not valid JSON"):
            read_boxes_json(tmp_path / "b.json")
        with pytest.raises(FileNotFoundError, match="No annotation file"):
            read_boxes_json(tmp_path / "missing.json")


class TestWriteBoxesJson:
    def test_round_trip(self, tmp_path, anns):
        path = write_boxes_json(anns, tmp_path / "b.json")
        # the record label becomes the image label of an image that had none
        assert read_boxes_json(path) == [anns[0], dataclasses.replace(anns[1], label="ten"), anns[2]]

    def test_writes_inclusive_integers_and_scores(self, tmp_path, anns):
        data = json.loads(write_boxes_json(anns, tmp_path / "b.json").read_text())
        assert data[0] == {"file": "one/a.jpg", "width": 64, "height": 48, "label": "one",
                           "boxes": [[0, 0, 9, 11]]}
        assert data[1]["label"] == "ten" and data[2]["boxes"] == [[1.5, 2.25, 29.75, 28.5]]
        assert data[2]["scores"] == [0.875]
        assert data[3] == {"file": "ten/c.jpg", "width": 32, "height": 32, "label": "ten", "boxes": []}

    def test_image_without_boxes_needs_label(self, tmp_path):
        with pytest.raises(ValueError, match="'a.jpg' has no boxes and no label"):
            write_boxes_json([ImageAnnotation("a.jpg", 4, 4)], tmp_path / "b.json")
