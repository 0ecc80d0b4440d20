import xml.etree.ElementTree as ET

import pytest

from datasets.annotations import Box
from datasets.annotations.voc import read_voc, write_voc

CVAT_STYLE = """<?xml version="1.0" encoding="utf-8"?>
<annotation>
  <folder></folder>
  <filename>IMG_1.jpg</filename>
  <source><database>Unknown</database><annotation>Unknown</annotation><image>Unknown</image></source>
  <size><width>640</width><height>480</height><depth></depth></size>
  <segmented>0</segmented>
  <object>
    <name>ten</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>0</difficult>
    <occluded>0</occluded>
    <bndbox><xmin>100.5</xmin><ymin>201.0</ymin><xmax>400.25</xmax><ymax>260.0</ymax></bndbox>
    <attributes><attribute><name>rotation</name><value>0.0</value></attribute></attributes>
  </object>
</annotation>
"""


class TestReadVoc:
    def test_one_based_inclusive_and_extra_elements(self, tmp_path):
        (tmp_path / "IMG_1.xml").write_text(CVAT_STYLE, encoding="utf-8")
        [ann] = read_voc(tmp_path / "IMG_1.xml", labels=["one", "ten"])
        assert (ann.image, ann.width, ann.height) == ("IMG_1.jpg", 640, 480)
        assert ann.boxes == (Box("ten", 99.5, 200, 400.25, 260),)

    def test_folder_prefix_from_subfolder(self, tmp_path):
        (tmp_path / "ten").mkdir()
        (tmp_path / "ten" / "IMG_1.xml").write_text(CVAT_STYLE, encoding="utf-8")
        assert read_voc(tmp_path)[0].image == "ten/IMG_1.jpg"

    def test_zero_based_tool_within_tolerance(self, tmp_path):
        (tmp_path / "a.xml").write_text(CVAT_STYLE.replace("<xmin>100.5</xmin>", "<xmin>0</xmin>"))
        assert read_voc(tmp_path / "a.xml")[0].boxes[0].xmin == 0

    @pytest.mark.parametrize("old, new, match", [
        ("<annotation>\n", "<annotation>\n<broken>", "not valid XML"),
        ("<filename>IMG_1.jpg</filename>", "", "has no <filename>"),
        ("<size><width>640</width><height>480</height><depth></depth></size>", "", r"\(image 'IMG_1.jpg'\) has no <size>"),
        ("<width>640</width>", "<width>wide</width>", r"<size><width> must be a number"),
        ("<name>ten</name>", "<name>six</name>", "unknown label 'six'"),
        ("<name>ten</name>", "", "object 0 has no <name>"),
        ("<xmax>400.25</xmax>", "", r"object 0 \('ten'\): <xmax> must be a number"),
        ("<xmax>400.25</xmax>", "<xmax>700</xmax>", r"image 'IMG_1.jpg': box 0 .* past the image width 640"),
        ("<ymax>260.0</ymax>", "<ymax>150</ymax>", "positive size"),
    ])
    def test_errors_name_the_file(self, tmp_path, old, new, match):
        path = tmp_path / "IMG_1.xml"
        path.write_text(CVAT_STYLE.replace(old, new, 1), encoding="utf-8")
        with pytest.raises(ValueError, match=match) as info:
            read_voc(path, labels=["one", "ten"])
        assert str(path) in str(info.value)

    def test_not_voc_and_missing(self, tmp_path):
        (tmp_path / "a.xml").write_text("<svg/>")
        with pytest.raises(ValueError, match="root element is <svg>"):
            read_voc(tmp_path / "a.xml")
        (tmp_path / "empty").mkdir()
        with pytest.raises(FileNotFoundError, match="No VOC .xml files below"):
            read_voc(tmp_path / "empty")
        with pytest.raises(FileNotFoundError, match="No VOC annotation file or folder"):
            read_voc(tmp_path / "nope.xml")


class TestWriteVoc:
    def test_round_trip(self, tmp_path, anns):
        back = read_voc(write_voc(anns, tmp_path / "voc"))
        assert [(a.image, a.width, a.height, a.boxes) for a in back] == \
               [(a.image, a.width, a.height, a.boxes) for a in anns]

    def test_writes_one_based_and_score(self, tmp_path, anns):
        write_voc(anns, tmp_path / "voc")
        root = ET.parse(tmp_path / "voc" / "one" / "a.xml").getroot()
        assert root.findtext("filename") == "a.jpg"
        assert [root.find("object/bndbox").findtext(k) for k in ("xmin", "ymin", "xmax", "ymax")] == \
               ["1", "1", "10", "12"]
        assert ET.parse(tmp_path / "voc" / "ten" / "b.xml").getroot().findtext("object/score") == "0.875"

    def test_rejects_two_images_one_xml(self, tmp_path, anns):
        clash = [anns[0], anns[0].__class__("one/a.png", 8, 8)]
        with pytest.raises(ValueError, match="would both be written to"):
            write_voc(clash, tmp_path / "voc")
