"""Tests of boxstrap.summary: what the run summary says about the classifier."""

from __future__ import annotations

from boxstrap.pipeline import StageResult
from boxstrap.summary import render_html, render_markdown, shipped_model_text, summary_blocks

ALL = {"trained_on": ["train", "valid", "test"], "images": 300, "epochs": {"head": 12, "fine_tune": 1}}
SPLIT = {"trained_on": ["train"], "images": 210, "epochs": {"head": 12, "fine_tune": 0}}


def _summary(tmp_path, train_numbers: dict) -> tuple[str, str]:
    results = {"train": StageResult("train", train_numbers, 1.0)}
    blocks = summary_blocks(tmp_path, results)
    return render_markdown(blocks, tmp_path), render_html(blocks, tmp_path)


class TestShippedModelText:
    def test_refit_on_every_split(self):
        text = shipped_model_text(ALL)
        assert "trained on all 300 photos (train, valid and test) for 12 head epochs and 1 fine-tuning epoch" in text
        assert "the split run's estimate" in text and "photos it had not seen" in text

    def test_split_model(self):
        text = shipped_model_text(SPLIT)
        assert "split run's model: trained on the 210 train photos only (12 head epochs" in text
        assert "fine-tuning" not in text and "measured on photos it had not seen" in text

    def test_refit_without_a_test_split(self):
        text = shipped_model_text({"trained_on": ["train", "valid"], "images": 40, "epochs": {"head": 1}})
        assert "all 40 photos (train and valid) for 1 head epoch," in text


class TestSummaryClassifier:
    def test_says_what_the_shipped_model_saw(self, tmp_path):
        md, page = _summary(tmp_path, {"valid": {"accuracy": 0.9}, "test": {"accuracy": 0.95},
                                       "shipped_model": ALL})
        assert "| split | accuracy (split run's estimate) |" in md and "| test | 0.950 |" in md
        assert shipped_model_text(ALL) in md
        assert "trained on all 300 photos" in page

    def test_a_run_from_before_the_refit_shows_the_accuracy_alone(self, tmp_path):
        md, _ = _summary(tmp_path, {"valid": {"accuracy": 0.9}})
        assert "| valid | 0.900 |" in md and "shipped classifier" not in md

    def test_names_the_backbone_and_its_weights(self, tmp_path):
        md, page = _summary(tmp_path, {"valid": {"accuracy": 0.9}, "backbone": "efficientnet-lite0",
                                       "weights": "imagenet", "input_size": [224, 288]})
        assert "Backbone efficientnet-lite0 (starting weights imagenet), input 224x288." in md
        assert "Backbone efficientnet-lite0" in page
        md, _ = _summary(tmp_path, {"valid": {"accuracy": 0.9}})  # a run from before: no such line
        assert "Backbone" not in md


class TestBoxesText:
    def test_says_what_each_score_rests_on(self):
        from boxstrap.summary import boxes_text

        localize = {"n_scored": 88, "threshold": {"value": 0.53, "method": "cell_localizer", "n_images": 88},
                    "localizer": {"hand_boxes": 88, "groups": 66, "threshold": 0.53,
                                  "scored": "5-fold over capture groups: each hand-boxed photo ..."}}
        boxes = {"hand_boxes": 88, "chosen_round": 1,
                 "rounds": [{"round": 1, "held_out": {"mean_iou": 0.80}}, {"round": 2, "held_out": {"mean_iou": 0.79}}],
                 "scores": {"scored": "5-fold over capture groups: ..."}}
        first, second = boxes_text(localize, boxes)
        assert "learned from 88 hand boxes in 66 capture groups" in first and "scored 5-fold" in first
        assert "88 hand boxes" in second and "1: 0.800, 2: 0.790; kept round 1" in second

    def test_a_second_round_kept_says_what_it_learned_from(self, tmp_path):
        from boxstrap.summary import boxes_text

        rounds = [{"round": 1, "held_out": {"mean_iou": 0.70}}, {"round": 2, "held_out": {"mean_iou": 0.72}}]
        boxes = {"hand_boxes": 20, "chosen_round": 2, "rounds": rounds, "scores": {"scored": "5-fold ..."},
                 "split": {"photos": 3, "fused": 150, "boxes": 190}}
        text = boxes_text({}, boxes)[-1]
        assert "trained on the pseudo boxes (refined by the round before's box model) and 20 hand boxes" in text
        assert "1: 0.700, 2: 0.720; kept round 2" in text
        unscored = {k: v for k, v in boxes.items() if k != "scores"}
        blocks = summary_blocks(tmp_path, {"localize": StageResult("localize", {"images": 9}, 1.0),
                                           "boxes": StageResult("boxes", unscored, 1.0)})
        md = render_markdown(blocks, tmp_path)
        assert ("The first round's box model split 3 pseudo boxes into a box per object" in md
                and "averaged 150 with its own box" in md and "the shipped box model (round 2) learned from them." in md)
        one = summary_blocks(tmp_path, {"localize": StageResult("localize", {"images": 9}, 1.0),
                                        "boxes": StageResult("boxes", dict(unscored, chosen_round=1), 1.0)})
        md = render_markdown(one, tmp_path)
        assert "The box model split 3 pseudo boxes" in md and "learned from them" not in md
        assert "refined by" not in boxes_text({}, dict(boxes, chosen_round=1))[-1]

    def test_no_hand_boxes(self):
        from boxstrap.summary import boxes_text

        assert boxes_text({"threshold": {"value": None, "method": "midpoint", "n_images": 0}}, {}) == [
            "No hand box was given: each class map was boxed half way from its median to its peak."]
        calibrated = {"threshold": {"value": 0.6, "method": "box_accuracy", "n_images": 8, "held_out": [0.5, 0.7]}}
        assert "calibrated on the 8 hand-boxed photos" in boxes_text(calibrated, {})[0]
        ddt = boxes_text({"threshold": {"value": 0.3, "source": "ddt", "cut": "cam", "method": "ddt"}}, {})
        assert len(ddt) == 1 and "co-localised (DDT" in ddt[0] and "boxed at 0.30 of its peak" in ddt[0]
        assert "CAM threshold" not in ddt[0]

    def test_unscored_boxes_are_said_to_be_unscored(self, tmp_path):
        from boxstrap.summary import unscored_boxes_text

        def summary(localize):
            blocks = summary_blocks(tmp_path, {"localize": StageResult("localize", localize, 1.0)})
            return render_markdown(blocks, tmp_path)

        # A run with labels only and no truth: localize records no scores.
        md = summary({"images": 5, "with_box": 5, "flagged": 0, "scores": None})
        assert unscored_boxes_text(tmp_path) in md and f"`boxstrap review {tmp_path}`" in md
        scored = {"corloc": 0.9, "mean_iou": 0.7, "map50": 0.8, "map50_95": 0.4, "n_scored": 10,
                  "threshold": {"value": 0.3, "source": "ddt", "cut": "cam", "method": "ddt"}}
        assert "not scored" not in summary({"images": 5, "with_box": 5, "flagged": 0, "scores": scored})

    def test_the_boxes_table_counts_extra_boxes_and_how_the_scores_rank(self, tmp_path):
        def row(**extra):
            return dict({"corloc": 0.9, "mean_iou": 0.66, "recall50": 0.83, "map50": 0.83, "map50_95": 0.35,
                         "n_scored": 20}, **extra)

        results = {"localize": StageResult("localize", {"images": 20, "with_box": 20, "flagged": 0,
                                                        "scores": row(extra_per_photo=0.05)}, 1.0),
                   "boxes": StageResult("boxes", {"scores": row(extra_per_photo=0.3, score_auroc=0.8904,
                                                                n_wrong_boxes=5)}, 1.0)}
        md = render_markdown(summary_blocks(tmp_path, results), tmp_path)
        assert "| extra boxes a photo | scores' AUROC, right boxes above wrong | photos scored |" in md
        assert "| box model | 0.900 | 0.660 | 0.830 | 0.830 | 0.350 | 0.300 | 0.890 (5 wrong) | 20 |" in md
        # A row without a ranking recorded (nothing wrong to rank, or an older run) says so.
        assert "| pseudo boxes | 0.900 | 0.660 | 0.830 | 0.830 | 0.350 | 0.050 | - | 20 |" in md

    def test_the_accuracy_says_what_it_rests_on(self, tmp_path):
        # metrics.json's split entries (classifier.metrics.classification_metrics): 19 of 20 right.
        test = {"accuracy": 0.95, "count": 20, "accuracy_interval": [0.7639, 0.9911]}
        md, _ = _summary(tmp_path, {"test": test, "shipped_model": ALL})
        assert "| test | 0.950 (20 photos; 95% interval 0.76-0.99) |" in md
