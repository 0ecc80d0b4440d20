import json
import math

import pytest

from boxstrap.cli import main
from datasets.evaluate import evaluate_box_files


def record(file, boxes, label="one", scores=None, **extra):
    rec = {"file": file, "width": 64, "height": 48, "label": label, "boxes": boxes, **extra}
    if scores is not None:
        rec["scores"] = scores
    return rec


def write(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
    return path


@pytest.fixture
def gt(tmp_path):
    return write(tmp_path / "gt" / "boxes.json", [
        record("one/a.jpg", [[10, 10, 29, 29]], note="extra fields are fine"),
        record("ten/b.jpg", [[0, 0, 19, 9]], label="ten"),
    ])


class TestEvaluateBoxFiles:
    def test_perfect(self, tmp_path, gt):
        result = evaluate_box_files(gt, gt)
        assert result.corloc == 1.0 and result.mean_iou == 1.0
        assert result.map50 == pytest.approx(1.0) and result.map50_95 == pytest.approx(1.0)
        assert dict(result.box_acc) == {0.3: 1.0, 0.5: 1.0, 0.7: 1.0}

    def test_top_box_by_score_and_missing_image(self, tmp_path, gt):
        pred = write(tmp_path / "gt" / "pred.json", [
            record("one/a.jpg", [[40, 30, 50, 40], [10, 10, 29, 29]], scores=[0.2, 0.9]),
        ])
        result = evaluate_box_files(pred, gt)
        assert result.corloc == 0.5          # b.jpg has no prediction: a miss
        assert dict(result.box_acc)[0.5] == 0.5
        assert result.n_pred_boxes == 2 and result.n_images == 2

    def test_matches_images_across_folders(self, tmp_path, gt):
        # the prediction file sits elsewhere and names the images relative to itself
        pred = write(tmp_path / "pred.json", [
            record("gt/one/a.jpg", [[10, 10, 29, 29]]), record("gt/ten/b.jpg", [[0, 0, 19, 9]], label="ten"),
        ])
        assert evaluate_box_files(pred, gt).corloc == 1.0

    def test_shifted_boxes_score_lower(self, tmp_path, gt):
        pred = write(tmp_path / "gt" / "pred.json", [
            record("one/a.jpg", [[14, 10, 33, 29]], scores=[0.9]),
            record("ten/b.jpg", [[4, 0, 23, 9]], label="ten", scores=[0.8]),
        ])
        result = evaluate_box_files(pred, gt)
        assert result.corloc == 1.0 and result.mean_iou < 1.0
        assert result.map50_95 < 1.0

    def test_recall_over_all_boxes_and_extra_boxes(self, tmp_path):
        """A photo of three objects: one box per photo finds a third of them; a fragment of a found
        object and a box of nothing count as extra boxes."""
        truth = write(tmp_path / "gt.json", [
            record("a.jpg", [[0, 0, 9, 9], [20, 0, 29, 9], [40, 20, 59, 39]]),
            record("b.jpg", [[10, 10, 29, 29]]),
        ])
        one_each = write(tmp_path / "one.json", [record("a.jpg", [[0, 0, 9, 9]]), record("b.jpg", [[10, 10, 29, 29]])])
        result = evaluate_box_files(one_each, truth)
        assert result.corloc == 1.0 and result.recall50 == pytest.approx(2 / 4) and result.extra_per_photo == 0.0
        every = write(tmp_path / "every.json", [
            record("a.jpg", [[0, 0, 9, 9], [20, 0, 29, 9], [40, 20, 59, 39], [1, 1, 8, 8]], scores=[0.9, 0.8, 0.7, 0.6]),
            record("b.jpg", [[10, 10, 29, 29], [50, 30, 60, 40]], scores=[0.9, 0.5]),
        ])
        result = evaluate_box_files(every, truth)
        assert result.recall50 == 1.0 and result.extra_per_photo == pytest.approx(2 / 2)
        assert result.to_dict()["recall50"] == 1.0
        assert ("recall over all boxes (IoU >= 0.5, one-to-one)", "1.000") in result.rows()

    def test_a_box_of_another_class_finds_nothing(self, tmp_path, gt):
        pred = write(tmp_path / "gt" / "pred.json", [
            record("one/a.jpg", [[10, 10, 29, 29]], label="ten"), record("ten/b.jpg", [[0, 0, 19, 9]], label="ten"),
        ])
        result = evaluate_box_files(pred, gt)
        assert result.recall50 == 0.5 and result.extra_per_photo == 0.5
        assert result.n_wrong_boxes == 1  # right place, wrong class

    def test_score_auroc_ranks_right_boxes_above_wrong_ones(self, tmp_path):
        """Right boxes (IoU >= 0.5 with a true box; a second box on a found object too) against
        wrong ones, by their scores: 1 when every right box outscores every wrong one."""
        truth = write(tmp_path / "gt.json", [record("a.jpg", [[0, 0, 19, 19]]), record("b.jpg", [[20, 10, 39, 29]])])

        def auroc(scores_a, scores_b):
            pred = write(tmp_path / "pred.json", [
                record("a.jpg", [[0, 0, 19, 19], [1, 1, 19, 19], [40, 20, 59, 39]], scores=scores_a),
                record("b.jpg", [[20, 10, 39, 29], [0, 30, 10, 40]], scores=scores_b),
            ])
            result = evaluate_box_files(pred, truth)
            assert result.n_wrong_boxes == 2 and result.extra_per_photo == pytest.approx(3 / 2)
            return result.score_auroc

        assert auroc([0.9, 0.8, 0.1], [0.7, 0.2]) == 1.0
        assert auroc([0.9, 0.1, 0.8], [0.7, 0.2]) == pytest.approx(3 / 6)
        assert auroc([0.1, 0.2, 0.9], [0.3, 0.8]) == 0.0
        assert math.isnan(evaluate_box_files(truth, truth).to_dict()["score_auroc"])  # no wrong box to rank
        nothing = write(tmp_path / "nothing.json", [record("a.jpg", []), record("b.jpg", [])])
        assert math.isnan(evaluate_box_files(nothing, truth).score_auroc)  # no box at all

    def test_unknown_label(self, tmp_path, gt):
        pred = write(tmp_path / "gt" / "pred.json", [record("one/a.jpg", [[10, 10, 29, 29]], label="One")])
        with pytest.raises(ValueError, match=r"unknown label 'One'(.|\n)*knows the labels \['one', 'ten'\]"):
            evaluate_box_files(pred, gt)

    def test_ground_truth_of_some_classes(self, tmp_path, gt, caplog):
        """Boxes of classes the truth does not hold are scored as another class's, with a warning."""
        pred = write(tmp_path / "gt" / "pred.json", [
            record("one/a.jpg", [[10, 10, 29, 29]]), record("ten/b.jpg", [[0, 0, 19, 9]], label="ten"),
            record("cube/c.jpg", [[0, 0, 9, 9]], label="cube"),  # a photo the truth does not hold
            record("ten/b.jpg", [[30, 30, 39, 39]], label="cube"),
        ])
        result = evaluate_box_files(pred, gt)
        assert result.corloc == 1.0 and result.recall50 == 1.0
        assert result.extra_per_photo == pytest.approx(1 / 2)  # the cube box on b.jpg
        assert "does not know: 'cube' (2 boxes)" in caplog.text

    def test_gt_box_outside_image(self, tmp_path):
        bad = write(tmp_path / "bad.json", [record("a.jpg", [[10, 10, 90, 20]])])
        with pytest.raises(ValueError, match="a.jpg"):
            evaluate_box_files(bad, bad)

    def test_no_matching_image(self, tmp_path, gt):
        pred = write(tmp_path / "gt" / "pred.json", [record("one/zzz.jpg", [[10, 10, 29, 29]])])
        with pytest.raises(ValueError, match="no predicted image matches"):
            evaluate_box_files(pred, gt)

    def test_missing_file(self, tmp_path, gt):
        with pytest.raises(FileNotFoundError):
            evaluate_box_files(tmp_path / "nope.json", gt)


class TestCommand:
    def test_prints_table_and_writes_json(self, tmp_path, gt, capsys):
        out = tmp_path / "metrics.json"
        assert main(["evaluate-boxes", str(gt), str(gt), "--output", str(out)]) == 0
        text = capsys.readouterr().out
        assert "CorLoc (top box IoU >= 0.5)" in text and "COCO mAP@[.5:.95]" in text
        assert f"wrote metrics to {out}" in text
        assert json.loads(out.read_text())["corloc"] == 1.0

    def test_output_never_replaces_an_input_or_a_foreign_file(self, tmp_path, gt, capsys):
        before = gt.read_bytes()
        assert main(["evaluate-boxes", str(gt), str(gt), "--output", str(gt)]) == 1
        assert f"--output {gt} is the input {gt}" in capsys.readouterr().err
        assert gt.read_bytes() == before
        notes = tmp_path / "notes.json"
        notes.write_text('{"mine": 1}')
        assert main(["evaluate-boxes", str(gt), str(gt), "--output", str(notes)]) == 1
        assert "exists and is not a metrics file of evaluate-boxes" in capsys.readouterr().err
        assert notes.read_text() == '{"mine": 1}'
        assert main(["evaluate-boxes", str(gt), str(gt), "--output", str(tmp_path)]) == 1
        assert "is a folder; give the path of a .json file" in capsys.readouterr().err
        out = tmp_path / "metrics.json"  # its own earlier output is replaced
        assert main(["evaluate-boxes", str(gt), str(gt), "--output", str(out)]) == 0
        assert main(["evaluate-boxes", str(gt), str(gt), "--output", str(out)]) == 0

    def test_error_is_a_message(self, tmp_path, gt, capsys):
        assert main(["evaluate-boxes", str(tmp_path / "nope.json"), str(gt)]) == 1
        assert "evaluate-boxes: error" in capsys.readouterr().err
