import pytest
from PIL import Image

from datasets.annotations import Box, ImageAnnotation
from datasets.annotations.yolo import read_yolo, write_yolo

from .conftest import make_images

ROBOFLOW_YAML = """train: ../train/images
val: ../valid/images
test: ../test/images

nc: 2
names: ['one', 'ten']

roboflow:
  workspace: someone
  version: 3
"""


def _dataset(root, lines, yaml=ROBOFLOW_YAML, size=(64, 48)):
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "labels").mkdir(parents=True)
    Image.new("RGB", size).save(root / "train" / "images" / "a.jpg")
    (root / "train" / "labels" / "a.txt").write_text(lines)
    (root / "data.yaml").write_text(yaml)
    return root


class TestReadYolo:
    def test_roboflow_layout(self, tmp_path):
        root = _dataset(tmp_path, "1 0.5 0.5 0.25 0.5\n0 0.078125 0.125 0.15625 0.25 0.9\n")
        [ann] = read_yolo(root, labels=["one", "ten"])
        assert (ann.image, ann.width, ann.height) == ("train/images/a.jpg", 64, 48)
        assert ann.boxes == (Box("ten", 24, 12, 40, 36), Box("one", 0, 0, 10, 12, 0.9))

    def test_polygon_line_and_data_yaml_path(self, tmp_path):
        root = _dataset(tmp_path, "0 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n")
        [ann] = read_yolo(root / "data.yaml")
        assert ann.boxes[0].xyxy() == pytest.approx((6.4, 4.8, 32, 24))

    def test_image_without_label_file_has_no_boxes(self, tmp_path):
        root = _dataset(tmp_path, "")
        Image.new("RGB", (8, 8)).save(root / "train" / "images" / "b.png")
        anns = read_yolo(root)
        assert [(a.image, a.boxes) for a in anns] == [("train/images/a.jpg", ()), ("train/images/b.png", ())]

    def test_exif_rotated_image_size(self, tmp_path):
        root = _dataset(tmp_path, "")
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90: displayed as 48 wide, 64 high
        Image.new("RGB", (64, 48)).save(root / "train" / "images" / "a.jpg", exif=exif)
        assert (read_yolo(root)[0].width, read_yolo(root)[0].height) == (48, 64)

    @pytest.mark.parametrize("names", ["names: [one, ten]", "names:\n  - one\n  - ten",
                                       "names:\n  0: one\n  1: ten", "names: {0: one, 1: ten}"])
    def test_names_forms(self, tmp_path, names):
        root = _dataset(tmp_path, "1 0.5 0.5 0.25 0.5\n", yaml=f"path: .\n{names}\n")
        assert read_yolo(root)[0].labels() == ("ten",)

    @pytest.mark.parametrize("text", [
        "names: ['one', \"ten\"]  # classes\n",
        "nc: 2\nnames:\n  - one\n  - ten\nroboflow: x\n",
        "names:\n  0: one\n  1: 'ten'\n",
    ])
    def test_names_as_tools_write_them(self, tmp_path, text):
        root = _dataset(tmp_path, "1 0.5 0.5 0.25 0.5\n", yaml=text)
        assert read_yolo(root)[0].labels() == ("ten",)

    @pytest.mark.parametrize("lines, match", [
        ("2 0.5 0.5 0.1 0.1\n", r"labels/a.txt: line 1: class id '2' is not one of 0..1"),
        ("0 0.5 0.5 0.1\n", r"line 1: expected 'class cx cy w h \[score\]'"),
        ("0 0.5 0.5 0.1 zero\n", "line 1: value must be a number"),
        ("\n0 0.9 0.5 0.4 0.1\n", r"labels/a.txt: image 'train/images/a.jpg': box 0 .* past the image width 64"),
    ])
    def test_errors_name_the_file_and_line(self, tmp_path, lines, match):
        root = _dataset(tmp_path, lines)
        with pytest.raises(ValueError, match=match):
            read_yolo(root)

    def test_unknown_label(self, tmp_path):
        root = _dataset(tmp_path, "1 0.5 0.5 0.1 0.1\n")
        with pytest.raises(ValueError, match="unknown label 'ten'"):
            read_yolo(root, labels=["one"])

    @pytest.mark.parametrize("yaml, match", [("nc: 2\n", "needs 'names'"), ("names: {0: a, 2: b}\n", "ids must be"),
                                             ("names: [a\n", "not valid YAML")])
    def test_bad_data_yaml(self, tmp_path, yaml, match):
        root = _dataset(tmp_path, "", yaml=yaml)
        with pytest.raises(ValueError, match=match):
            read_yolo(root)

    def test_missing_pieces(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="No YOLO dataset folder"):
            read_yolo(tmp_path / "nope")
        with pytest.raises(FileNotFoundError, match="No data.yaml"):
            read_yolo(tmp_path)
        root = _dataset(tmp_path, "")
        (root / "train" / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
        with pytest.raises(FileNotFoundError, match="ghost.txt: no image for this label file"):
            read_yolo(root)


class TestWriteYolo:
    def test_round_trip(self, tmp_path, anns):
        out = write_yolo(anns, tmp_path / "y")
        make_images(out / "images", anns)
        back = read_yolo(out)
        assert [a.image for a in back] == ["images/" + a.image for a in anns]
        for a, b in zip(back, anns, strict=True):
            assert a.labels() == b.labels() and (a.xyxy() - b.xyxy() == pytest.approx(0, abs=1e-4))
            assert a.scores() == pytest.approx(b.scores(), nan_ok=True)

    def test_files(self, tmp_path, anns):
        out = write_yolo(anns, tmp_path / "y", labels=["one", "ten"])
        assert (out / "labels" / "one" / "a.txt").read_text() == (
            "0 0.078125 0.125000 0.156250 0.250000\n1 0.656250 0.552083 0.687500 0.895833\n")
        assert (out / "labels" / "ten" / "c.txt").read_text() == ""
        assert 'names:\n  0: "one"\n  1: "ten"\n' in (out / "data.yaml").read_text()

    def test_drops_leading_images_folder(self, tmp_path):
        out = write_yolo([ImageAnnotation("images/x.jpg", 8, 8, (Box("one", 0, 0, 4, 4),))], tmp_path / "y")
        assert (out / "labels" / "x.txt").is_file()

    def test_rejects_two_images_one_label_file(self, tmp_path):
        with pytest.raises(ValueError, match="would both be written to"):
            write_yolo([ImageAnnotation("a.jpg", 8, 8), ImageAnnotation("a.png", 8, 8)], tmp_path / "y")
