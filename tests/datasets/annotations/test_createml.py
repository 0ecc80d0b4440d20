import json

import pytest

from datasets.annotations import Box
from datasets.annotations.createml import read_createml, write_createml

from .conftest import make_images


class TestReadCreateml:
    def test_centre_coordinates_and_extra_keys(self, tmp_path, anns):
        make_images(tmp_path, anns[:1])
        data = [{"image": "one/a.jpg", "source": "labelstudio", "annotations": [
            {"label": "one", "coordinates": {"x": 5, "y": 6, "width": 10, "height": 12}, "id": "x1"}]}]
        (tmp_path / "c.json").write_text(json.dumps(data))
        [ann] = read_createml(tmp_path / "c.json", labels=["one"])
        assert (ann.width, ann.height, ann.boxes) == (64, 48, (Box("one", 0, 0, 10, 12),))

    def test_images_root(self, tmp_path, anns):
        make_images(tmp_path / "imgs", anns[:1])
        (tmp_path / "c.json").write_text(json.dumps([{"image": "one/a.jpg", "annotations": []}]))
        assert read_createml(tmp_path / "c.json", images_root=tmp_path / "imgs")[0].width == 64

    def test_missing_image_explains(self, tmp_path):
        (tmp_path / "c.json").write_text(json.dumps([{"image": "a.jpg", "annotations": []}]))
        with pytest.raises(FileNotFoundError, match=r"c.json: image .*a.jpg not found; this format does not store"):
            read_createml(tmp_path / "c.json")

    def test_unreadable_image(self, tmp_path):
        (tmp_path / "a.jpg").write_bytes(b"not an image")
        (tmp_path / "c.json").write_text(json.dumps([{"image": "a.jpg", "annotations": []}]))
        with pytest.raises(ValueError, match="cannot read the size of image"):
            read_createml(tmp_path / "c.json")

    @pytest.mark.parametrize("data, match", [
        ({"image": "one/a.jpg"}, "holds a list of images"),
        ([{"annotations": []}], "entry 0 needs an 'image' name"),
        ([{"image": "one/a.jpg", "annotations": {}}], "'annotations' must be a list"),
        ([{"image": "one/a.jpg", "annotations": [{"label": "one", "coordinates": {"x": 1}}]}],
         r"image 'one/a.jpg'\): box 0 needs 'label' and 'coordinates'"),
        ([{"image": "one/a.jpg", "annotations": [
            {"label": "one", "coordinates": {"x": 60, "y": 5, "width": 20, "height": 4}}]}],
         r"image 'one/a.jpg': box 0 .* past the image width 64"),
        ([{"image": "one/a.jpg", "annotations": [
            {"label": "six", "coordinates": {"x": 6, "y": 5, "width": 2, "height": 4}}]}], "unknown label 'six'"),
    ])
    def test_errors_name_the_file(self, tmp_path, anns, data, match):
        make_images(tmp_path, anns[:1])
        path = tmp_path / "c.json"
        path.write_text(json.dumps(data))
        with pytest.raises(ValueError, match=match) as info:
            read_createml(path, labels=["one", "ten"])
        assert str(path) in str(info.value)


class TestWriteCreateml:
    def test_round_trip(self, tmp_path, anns):
        make_images(tmp_path, anns)
        back = read_createml(write_createml(anns, tmp_path / "c.json"))
        assert [(a.image, a.width, a.height, a.boxes) for a in back] == \
               [(a.image, a.width, a.height, a.boxes) for a in anns]

    def test_format(self, tmp_path, anns):
        data = json.loads(write_createml(anns, tmp_path / "c.json").read_text())
        assert data[0]["annotations"][0] == {"label": "one", "coordinates": {"x": 5, "y": 6, "width": 10,
                                                                             "height": 12}}
        assert data[1]["annotations"][0]["confidence"] == 0.875
        assert data[2] == {"image": "ten/c.jpg", "annotations": []}
