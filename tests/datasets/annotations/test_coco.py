import json

import pytest

from datasets.annotations import Box
from datasets.annotations.coco import read_coco, write_coco

ROBOFLOW_STYLE = {
    "info": {"year": "2024", "version": "1", "description": "Exported from roboflow.com"},
    "licenses": [{"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}],
    "categories": [{"id": 0, "name": "blocks", "supercategory": "none"},
                   {"id": 1, "name": "one", "supercategory": "blocks"},
                   {"id": 2, "name": "ten", "supercategory": "blocks"}],
    "images": [{"id": 0, "license": 1, "file_name": "IMG_1.jpg", "height": 480, "width": 640,
                "date_captured": "2024-01-01T00:00:00+00:00", "extra": {"name": "IMG_1.jpg"}}],
    "annotations": [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [294, 234, 69.5, 90],
                     "area": 6255, "segmentation": [[294, 234, 363.5, 234, 363.5, 324]], "iscrowd": 0,
                     "attributes": {"occluded": False}}],
}


def _write(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


class TestReadCoco:
    def test_ignores_extra_fields(self, tmp_path):
        [ann] = read_coco(_write(tmp_path / "c.json", ROBOFLOW_STYLE), labels=["one", "ten"])
        assert ann.image == "IMG_1.jpg" and (ann.width, ann.height) == (640, 480)
        assert ann.boxes == (Box("one", 294, 234, 363.5, 324),)

    def test_reads_scores(self, tmp_path):
        data = json.loads(json.dumps(ROBOFLOW_STYLE))
        data["annotations"][0]["score"] = 0.75
        assert read_coco(_write(tmp_path / "c.json", data))[0].boxes[0].score == 0.75

    @pytest.mark.parametrize("change, match", [
        (lambda d: d.pop("images"), "not a COCO file"),
        (lambda d: d.pop("categories"), "expected a list 'categories'"),
        (lambda d: d["images"][0].pop("width"), "each image needs"),
        (lambda d: d["images"].append(dict(d["images"][0])), "image id 0 appears twice"),
        (lambda d: d["annotations"][0].update(image_id=7), "refers to image_id 7"),
        (lambda d: d["annotations"][0].update(category_id=9), r"image 'IMG_1.jpg'\) has category_id 9"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"bbox must be \[x, y, width, height\]"),
        (lambda d: d["annotations"][0].update(bbox=[600, 2, 80, 3]), r"image 'IMG_1.jpg': box 0 .* width 640"),
        (lambda d: d["annotations"][0].update(bbox=[6, 2, 0, 3]), "positive size"),
        (lambda d: d["annotations"][0].update(category_id=0), "unknown label 'blocks'"),
        (lambda d: d["categories"][0].pop("name"), "each category needs"),
    ])
    def test_errors_name_the_file(self, tmp_path, change, match):
        data = json.loads(json.dumps(ROBOFLOW_STYLE))
        change(data)
        path = _write(tmp_path / "c.json", data)
        with pytest.raises(ValueError, match=match) as info:
            read_coco(path, labels=["one", "ten"])
        assert str(path) in str(info.value)

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="No annotation file"):
            read_coco(tmp_path / "c.json")


class TestWriteCoco:
    def test_round_trip(self, tmp_path, anns):
        back = read_coco(write_coco(anns, tmp_path / "c.json"))
        assert [(a.image, a.width, a.height, a.boxes) for a in back] == \
               [(a.image, a.width, a.height, a.boxes) for a in anns]

    def test_category_ids_follow_labels(self, tmp_path, anns):
        data = json.loads(write_coco(anns, tmp_path / "c.json", labels=["ten", "one"]).read_text())
        assert data["categories"][0] == {"id": 1, "name": "ten", "supercategory": "none"}
        first = data["annotations"][0]
        assert first["category_id"] == 2 and first["bbox"] == [0, 0, 10, 12] and first["area"] == 120
        assert data["annotations"][2]["score"] == 0.875

    def test_pycocotools_loads_it(self, tmp_path, anns):
        from pycocotools.coco import COCO

        coco = COCO(str(write_coco(anns, tmp_path / "c.json")))
        assert len(coco.getAnnIds()) == 3 and len(coco.getImgIds()) == 3

    def test_rejects_label_not_listed(self, tmp_path, anns):
        with pytest.raises(ValueError, match="not in labels"):
            write_coco(anns, tmp_path / "c.json", labels=["one"])
        assert not (tmp_path / "c.json").exists()
