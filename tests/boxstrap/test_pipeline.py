import json
from dataclasses import replace

import pytest

from boxstrap.pipeline import STAGES, PipelineConfig, run_pipeline
from classifier.train_config import TrainConfig
from datasets.synthetic import DemoDataConfig, write_demo_data
from detector.box_train_config import BoxTrainConfig

TINY = {"vgg16": (4, 8, 8, 16, 16), "efficientnet-lite0": (4,) * 9}


def _tiny_config(backbone: str = "vgg16") -> PipelineConfig:
    config = PipelineConfig()
    return replace(
        config,
        prepare=replace(config.prepare, max_side=96),
        train=TrainConfig(backbone=backbone, weights="none", filters=TINY[backbone], input_size=(64, 96),
                          head_epochs=3, views=1, patience=2, fine_tune_from=None),
        boxes=BoxTrainConfig(epochs=2, hidden=16, reduce_filters=8),
    )


@pytest.mark.slow
class TestPipeline:
    def test_runs_every_stage_then_resumes(self, tmp_path):
        src = tmp_path / "photos"
        write_demo_data(src, DemoDataConfig(per_class=10, size=(96, 128)), progress=False)
        run = tmp_path / "run"
        seen = []
        results = run_pipeline(src, run, _tiny_config(), on_stage=lambda stage, what, seconds: seen.append((stage, what)))
        assert seen == [(stage, what) for stage in STAGES for what in ("run", "done")]
        # The run's log holds what the terminal leaves out: every stage, every epoch.
        log_text = (run / "log.txt").read_text()
        assert all(f"stage {stage} done" in log_text for stage in STAGES)
        assert "epoch 1/" in log_text
        assert results["verify"].numbers["passed"] and results["boxes-verify"].numbers["passed"]
        assert results["localize"].numbers["scores"]["n_images"] == 20  # demo boxes.json found and used
        assert (run / "export" / "BoxstrapClassifier.mlpackage").is_dir()
        assert (run / "export" / "BoxstrapClassifier.mlmodel").is_file()
        assert (run / "boxes-export" / "BoxstrapDetector.mlpackage").is_dir()
        summary = (run / "summary.md").read_text()
        assert "CorLoc" in summary and "BoxstrapDetector.mlpackage" in summary
        # The shipped classifier saw every photo; the accuracy shown is the split run's estimate.
        shipped = results["train"].numbers["shipped_model"]
        assert shipped["trained_on"] == ["train", "valid", "test"] and shipped["images"] == 20
        assert "trained on all 20 photos (train, valid and test)" in summary
        assert "accuracy (split run's estimate)" in summary
        # The demo's boxes teach a cell localizer, kept with the model; photos scored k-fold over groups.
        scores = results["localize"].numbers["scores"]
        assert scores["threshold"]["method"] == "cell_localizer" and scores["localizer"]["hand_boxes"] == 20
        assert "a cell localizer learned from 20 hand boxes" in summary
        assert (run / "train" / "model" / "cell_localizer.json").is_file()
        # The box model learned from the hand boxes too, and is scored on box models that never saw them.
        boxes = results["boxes"].numbers
        assert boxes["hand_boxes"] == 20 and "fold over capture groups" in boxes["scores"]["scored"]
        # Every round trained and scored held out; the last, which learned from the refined boxes, ships.
        assert [r["round"] for r in boxes["rounds"]] == list(range(1, PipelineConfig().boxes.rounds + 1))
        assert boxes["chosen_round"] == PipelineConfig().boxes.rounds == 2
        assert ("Box model: trained on the pseudo boxes (refined by the round before's box model) and 20 hand "
                "boxes") in summary
        assert "the shipped box model (round 2) learned from them" in summary
        # The pseudo boxes with their groups split by the box model, in every format, scored held out.
        split = json.loads((run / "boxes" / "pseudo_boxes.json").read_text())
        assert len(split) == len(json.loads((run / "localize" / "pseudo_boxes.json").read_text()))
        assert (run / "boxes" / "annotations" / "coco.json").is_file() and (run / "boxes" / "annotations" / "voc").is_dir()
        assert boxes["split"]["boxes"] == sum(len(a["boxes"]) for a in split)
        assert boxes["split_scores"]["n_scored"] == 20
        assert "| pseudo boxes, split or averaged by the box model |" in summary
        # `boxstrap localize MODEL PHOTOS` afterwards boxes new photos with what the pipeline learned.
        from localize.localize_photos import localize_photos
        from localize.pseudo_boxes import LocalizeConfig

        localize_photos(run / "train" / "model", run / "prepare", tmp_path / "later",
                                LocalizeConfig(overlays=False, formats=("boxes-json",)), progress=False)
        pipeline_boxes = json.loads((run / "localize" / "pseudo_boxes.json").read_text())
        assert json.loads((tmp_path / "later" / "pseudo_boxes.json").read_text()) == pipeline_boxes
        assert "data:image/png;base64," in (run / "summary.html").read_text()
        assert json.loads((run / "pipeline_config.json").read_text())["config"] == "PipelineConfig"

        # Unchanged: everything is skipped. A changed stage config reruns it and what follows.
        seen.clear()
        run_pipeline(src, run, _tiny_config(), on_stage=lambda stage, what, seconds: seen.append((stage, what)))
        assert {what for _, what in seen} == {"skip"}
        seen.clear()
        changed = replace(_tiny_config(), boxes=BoxTrainConfig(epochs=3, hidden=16, reduce_filters=8))
        run_pipeline(src, run, changed, on_stage=lambda stage, what, seconds: seen.append((stage, what)))
        assert [s for s, what in seen if what == "run"] == ["boxes", "boxes-export", "boxes-verify"]
        assert [s for s, what in seen if what == "done"] == ["boxes", "boxes-export", "boxes-verify"]

        # Rerun without learning from the hand boxes: the localizer the first run kept with the model
        # is not reloaded (it learned from these very boxes); the class maps' threshold is calibrated.
        assert (run / "train" / "model" / "cell_localizer.json").is_file()
        no_learning = replace(changed, localize=replace(changed.localize, learn=False))
        results = run_pipeline(src, run, no_learning)
        assert not results["localize"].skipped
        threshold = results["localize"].numbers["scores"]["threshold"]
        assert threshold["source"] != "cell_localizer" and "localizer" not in results["localize"].numbers["scores"]
        assert not (run / "train" / "model" / "cell_localizer.json").exists()
        assert "cell localizer" not in (run / "summary.md").read_text()

        # Reviewed in the browser (`boxstrap review`): the next run learns from the reviewed photos as
        # hand boxes, reruns localize and what follows only, and says what the review changed.
        from boxstrap.review_server import ReviewRun

        review = ReviewRun(run)
        photo = review.state()["photos"][0]
        review.correct({"id": 0, "reviewed": True, "label": photo["label"], "boxes": photo["boxes"]})
        w, h = review.photos[1].width, review.photos[1].height
        other = next(label for label in review.labels if label != review.photos[1].label)  # the class changed too
        review.correct({"id": 1, "reviewed": True, "label": other,
                        "boxes": [{"xyxy": [0, 0, w / 2, h / 2], "label": other}]})
        seen.clear()
        results = run_pipeline(src, run, no_learning, on_stage=lambda stage, what, seconds: seen.append((stage, what)))
        assert [s for s, what in seen if what == "run"] == ["localize", "boxes", "boxes-export", "boxes-verify"]
        reviewed = results["localize"].numbers["reviewed"]
        assert (reviewed["photos"], reviewed["accepted_as_they_were"], reviewed["corrected"]) == (2, 1, 1)
        assert reviewed["relabelled"] == 1
        assert results["localize"].numbers["scores"]["n_images"] == 20  # 20 hand-boxed photos, 2 of them reviewed
        summary = (run / "summary.md").read_text()
        assert "Reviewed in the browser: 2 photos" in summary
        assert "1 were given another class than their folder's" in summary


    def test_every_stage_on_the_efficientnet_backbone(self, tmp_path):
        src = tmp_path / "photos"
        write_demo_data(src, DemoDataConfig(per_class=6, size=(96, 128)), progress=False)
        results = run_pipeline(src, tmp_path / "run", _tiny_config("efficientnet-lite0"))
        assert results["verify"].numbers["passed"] and results["boxes-verify"].numbers["passed"]
        assert {e["precision"] for e in results["verify"].numbers["exports"]} >= {"FP16"}
        assert all(e["top1_agreement"] == 1.0 for e in results["verify"].numbers["exports"])
        assert results["localize"].numbers["images"] == 12
        saved = json.loads((tmp_path / "run" / "train" / "model" / "train_config.json").read_text())
        assert saved["backbone"] == "efficientnet-lite0"


class TestPipelineErrors:
    def test_unknown_stage(self, tmp_path):
        with pytest.raises(ValueError, match="force must name stages"):
            run_pipeline(tmp_path, tmp_path / "run", force=("deploy",))

    def test_missing_source(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="src must be a folder"):
            run_pipeline(tmp_path / "nope", tmp_path / "run")


class TestPipelineCommand:
    def _args(self, *argv):
        import argparse

        from boxstrap.commands import pipeline as command

        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        return command.build_config(parser.parse_args(["--out", "run", *argv]))

    def test_defaults(self):
        assert self._args() == PipelineConfig()

    def test_train_config_file_then_flags(self, tmp_path):
        from groundwork.config import save_config

        path = save_config(TrainConfig(backbone="vgg16", fine_tune_from="block4_conv1", fine_tune_epochs=2,
                                       input_size=(96, 128)), tmp_path / "train_config.json")
        config = self._args("--train-config", str(path), "--input-size", "64", "96", "--method", "cam")
        assert (config.train.fine_tune_from, config.train.fine_tune_epochs) == ("block4_conv1", 2)
        assert config.train.input_size == (64, 96)  # the flag wins over the file
        assert config.localize.method == "cam" and config.prepare == PipelineConfig().prepare

    @pytest.mark.parametrize("backbone", ["vgg16", "efficientnet-lite0"])
    def test_backbone_flag_takes_that_backbones_defaults(self, backbone):
        config = self._args("--backbone", backbone)
        assert config.train == TrainConfig(backbone=backbone)
        assert self._args("--backbone", backbone, "--weights", "none").train.weights == "none"

    def test_ship_flag_feeds_the_train_config(self, tmp_path):
        from groundwork.config import save_config

        assert self._args().train.ship == "all"
        assert self._args("--ship", "split").train == replace(TrainConfig(), ship="split")
        path = save_config(TrainConfig(ship="split", views=3), tmp_path / "train_config.json")
        assert self._args("--train-config", str(path)).train.ship == "split"
        config = self._args("--train-config", str(path), "--ship", "all")
        assert (config.train.ship, config.train.views) == ("all", 3)  # the flag wins over the file

    def test_bad_train_config_is_named(self, tmp_path):
        path = tmp_path / "train_config.json"
        path.write_text(json.dumps({"config": "TrainConfig", "dropout": 2.0}))
        with pytest.raises(ValueError, match="dropout must be in"):
            self._args("--train-config", str(path))
