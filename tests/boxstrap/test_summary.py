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
