import numpy as np
import pytest

from datasets.annotations import Box, ImageAnnotation
from datasets.annotations.annotation import check_labels, make_annotation


class TestBox:
    def test_size_and_str(self):
        box = Box("one", 10, 20, 30, 60, score=0.5)
        assert (box.width, box.height) == (20.0, 40.0)
        assert isinstance(box.xmin, float)
        assert "'one' [10, 20, 30, 60], score 0.5" == str(box)

    @pytest.mark.parametrize("coords", [(10, 0, 10, 5), (0, 5, 4, 5), (5, 0, 1, 4)])
    def test_rejects_empty_box(self, coords):
        with pytest.raises(ValueError, match="positive size"):
            Box("one", *coords)

    def test_rejects_bad_label_and_values(self):
        with pytest.raises(TypeError, match="label must be a str"):
            Box(3, 0, 0, 1, 1)
        with pytest.raises(ValueError, match="non-empty"):
            Box("", 0, 0, 1, 1)
        with pytest.raises(TypeError, match="xmin must be a real number"):
            Box("one", "0", 0, 1, 1)
        with pytest.raises(ValueError, match="ymax must be finite"):
            Box("one", 0, 0, 1, float("inf"))
        with pytest.raises(ValueError, match="score must be finite"):
            Box("one", 0, 0, 1, 1, score=float("nan"))


class TestImageAnnotation:
    def test_arrays(self):
        ann = ImageAnnotation("a.jpg", 64, 48, (Box("one", 1, 2, 11, 22), Box("ten", 0, 0, 5, 5, 0.25)))
        np.testing.assert_array_equal(ann.xyxy(), [[1, 2, 11, 22], [0, 0, 5, 5]])
        assert ann.labels() == ("one", "ten")
        np.testing.assert_array_equal(ann.scores(), [np.nan, 0.25])
        assert ImageAnnotation("b.jpg", 4, 4).xyxy().shape == (0, 4)

    def test_from_arrays_round_trip(self):
        ann = ImageAnnotation.from_arrays("a.jpg", 64, 48, np.array([[1, 2, 11, 22.5]]), ["one"], [0.9])
        assert ann.boxes == (Box("one", 1, 2, 11, 22.5, 0.9),)
        with pytest.raises(ValueError, match=r"\(N, 4\)"):
            ImageAnnotation.from_arrays("a.jpg", 64, 48, np.zeros((2, 3)), ["one", "one"])
        with pytest.raises(ValueError, match="labels must have one entry per box"):
            ImageAnnotation.from_arrays("a.jpg", 64, 48, np.ones((1, 4)) * [0, 0, 1, 1], [])
        with pytest.raises(ValueError, match="scores must have one entry per box"):
            ImageAnnotation.from_arrays("a.jpg", 64, 48, np.array([[0, 0, 1, 1]]), ["one"], [0.1, 0.2])

    def test_rejects_box_outside_image_naming_it(self):
        with pytest.raises(ValueError, match=r"image 'a.jpg' \(64x48\): box 0 'one' \[0, 0, 70, 10\] extends 6 px"):
            ImageAnnotation("a.jpg", 64, 48, (Box("one", 0, 0, 70, 10),))
        with pytest.raises(ValueError, match="starts 3 px left"):
            ImageAnnotation("a.jpg", 64, 48, (Box("one", -3, 0, 7, 10),))

    def test_accepts_box_within_tolerance(self):
        ann = ImageAnnotation("a.jpg", 64, 48, (Box("one", -0.5, 0, 64.5, 48),))
        assert ann.boxes[0].xmax == 64.5

    def test_rejects_bad_size_and_types(self):
        with pytest.raises(ValueError, match="width must be positive"):
            ImageAnnotation("a.jpg", 0, 48)
        with pytest.raises(TypeError, match="height must be an int"):
            ImageAnnotation("a.jpg", 64, 48.5)
        with pytest.raises(TypeError, match="must be Box instances"):
            ImageAnnotation("a.jpg", 64, 48, ((0, 0, 1, 1),))
        with pytest.raises(TypeError, match="image must be a non-empty str"):
            ImageAnnotation("", 64, 48)


class TestMakeAnnotation:
    def test_clips_within_tolerance(self):
        ann = make_annotation("f.json", "a.jpg", 64, 48, [("one", -1, -0.5, 65, 48.8, None)])
        assert ann.boxes[0].xyxy() == (0, 0, 64, 48)

    def test_errors_name_file_image_and_box(self):
        with pytest.raises(ValueError, match=r"f.json: image 'a.jpg': box 1 .* extends 16 px past the image width"):
            make_annotation("f.json", "a.jpg", 64, 48, [("one", 0, 0, 5, 5, None), ("one", 0, 0, 80, 5, None)])
        with pytest.raises(ValueError, match=r"f.json: image 'a.jpg': box 0 has unknown label 'six'"):
            make_annotation("f.json", "a.jpg", 64, 48, [("six", 0, 0, 5, 5, None)], labels=["one", "ten"])
        with pytest.raises(ValueError, match=r"f.json: image 'a.jpg': box 0: .*positive size"):
            make_annotation("f.json", "a.jpg", 64, 48, [("one", 5, 0, 5, 5, None)])
        with pytest.raises(ValueError, match=r"f.json: .*width must be positive"):
            make_annotation("f.json", "a.jpg", -4, 48, [])


class TestCheckLabels:
    def test_default_is_sorted_box_labels(self, anns):
        assert check_labels(anns, None) == ("one", "ten")

    def test_errors(self, anns):
        with pytest.raises(ValueError, match=r"box 1 'ten' .* not in labels \['one'\]"):
            check_labels(anns, ["one"])
        with pytest.raises(ValueError, match="must not repeat"):
            check_labels(anns, ["one", "one", "ten"])
        with pytest.raises(TypeError, match="ImageAnnotation instances"):
            check_labels([{"image": "a"}], None)
