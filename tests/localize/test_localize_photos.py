import json

import numpy as np
import pytest

from datasets.annotations import read_annotations
from datasets.photo_items import find_photos
from datasets.synthetic import DemoDataConfig, write_demo_data
from localize.localize_photos import localize_photos
from localize.pseudo_boxes import LocalizeConfig
from tests.classifier._model_dirs import write_model_dir


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    write_demo_data(out, DemoDataConfig(per_class=3, size=(64, 80)), progress=False)
    return out


@pytest.fixture(scope="module")
def _model_dir(tmp_path_factory):
    return write_model_dir(tmp_path_factory.mktemp("model") / "m", input_size=(64, 64))


@pytest.fixture()
def model_dir(_model_dir, tmp_path_factory):
    """A fresh copy per test: localize with hand boxes saves what it learned into the model directory."""
    import shutil

    return shutil.copytree(_model_dir, tmp_path_factory.mktemp("model") / "m")


def replace_formats(config):
    import dataclasses

    return dataclasses.replace(config, overlays=False, formats=("boxes-json",))


class TestFindPhotos:
    def test_class_folders_give_labels(self, demo):
        root, items = find_photos(demo, ("one", "ten"))
        assert root == demo and len(items) == 6
        assert {it.label for it in items} == {"one", "ten"}
        assert all(not it.name.startswith("/") for it in items)

    def test_unknown_folders_give_no_label(self, demo):
        _, items = find_photos(demo, ("cat", "dog"))
        assert {it.label for it in items} == {None}

    def test_hidden_files_are_not_images(self, tmp_path):
        (tmp_path / "one").mkdir()
        for name in ("IMG_1.JPG", "._IMG_1.JPG", ".hidden.jpg"):
            (tmp_path / "one" / name).write_bytes(b"x")
        root, items = find_photos(tmp_path, ("one",))
        assert [(it.name, it.label) for it in items] == [("one/IMG_1.JPG", "one")]

    def test_missing_source(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            find_photos(tmp_path / "nope", ("one",))

    def test_no_images(self, tmp_path):
        (tmp_path / "notes.txt").write_text("x")
        with pytest.raises(FileNotFoundError, match="no image"):
            find_photos(tmp_path, ("one",))


class TestLocalizePhotos:
    def test_writes_every_format_and_scores(self, demo, model_dir, tmp_path):
        out = tmp_path / "loc"
        result = localize_photos(model_dir, demo, out, LocalizeConfig(overlays=True),
                                 ground_truth=demo / "boxes.json", progress=False)
        for path in ("pseudo_boxes.json", "annotations/coco.json", "annotations/createml.json",
                     "annotations/yolo/data.yaml", "review.json", "contact_sheets/sheet_001.png",
                     "localize_config.json", "scores.json", "features.npy", "features.json"):
            assert (out / path).exists(), path
        assert len(list((out / "annotations" / "voc").rglob("*.xml"))) == 6
        assert len(list((out / "overlays").rglob("*.png"))) == 6
        # The written boxes read back through every format as the same boxes.
        boxes = read_annotations(out / "pseudo_boxes.json")
        coco = read_annotations(out / "annotations" / "coco.json")
        assert [a.image for a in boxes] == [a.image for a in coco]
        for a, b in zip(boxes, coco, strict=True):
            np.testing.assert_allclose(a.xyxy(), b.xyxy(), atol=1e-3)
        scores = json.loads((out / "scores.json").read_text())
        assert 0.0 <= scores["corloc"] <= 1.0 and scores["n_images"] == 6
        assert result.pseudo.features.shape[0] == 6
        review = json.loads((out / "review.json").read_text())
        assert [r["confidence"] for r in review] == sorted(r["confidence"] for r in review)

    def test_ground_truth_calibrates_and_scores_held_out(self, demo, model_dir, tmp_path):
        from localize.calibration import load_calibration

        result = localize_photos(model_dir, demo, tmp_path, LocalizeConfig(overlays=False, formats=("boxes-json",),
                                                                            learn=False),
                                 ground_truth=demo / "boxes.json", progress=False)
        threshold = result.scores["threshold"]
        assert threshold["method"] == "calibrated" and threshold["n_images"] == 6
        assert (threshold["source"], threshold["cut"]) == ("class_map", "grabcut")
        saved = load_calibration(tmp_path)
        assert saved.method == "box_accuracy" and saved.threshold == threshold["value"]
        assert 1 <= len(threshold["held_out"]) <= 2 and "2-fold" in threshold["scored"]
        assert json.loads((tmp_path / "scores.json").read_text())["threshold"] == threshold

    def test_hand_boxes_train_a_localizer_scored_out_of_fold_and_kept_with_the_model(self, demo, model_dir,
                                                                                      tmp_path):
        from localize.cell_localizer import load_cell_localizer
        from localize.learned import forget_learned, keep_learned

        before = sorted(p.name for p in model_dir.iterdir())
        first = localize_photos(model_dir, demo, tmp_path / "a", replace_formats(LocalizeConfig(folds=3)),
                                ground_truth=demo / "boxes.json", progress=False)
        learned = first.scores["localizer"]
        assert learned["hand_boxes"] == 6 and learned["folds"] == 3 and learned["groups"] == 6
        assert first.scores["threshold"]["method"] == "cell_localizer"
        # What was learned is written to the output only; keep_learned puts it beside the model.
        assert sorted(p.name for p in model_dir.iterdir()) == before
        assert load_cell_localizer(tmp_path / "a") is not None
        assert [p.name for p in keep_learned(tmp_path / "a", model_dir)] == ["cell_localizer.json"]
        saved = load_cell_localizer(model_dir)
        assert saved is not None and saved.n_boxes == 6 and saved.threshold == learned["threshold"]
        folds = json.loads((tmp_path / "a" / "folds.json").read_text())
        assert sorted(folds.values()).count(0) == 2 and set(folds.values()) == {0, 1, 2}
        # Scored boxes are each made by a localizer fitted without that image (held_out_boxes.json),
        # written boxes by the one fitted on all six.
        assert (tmp_path / "a" / "held_out_boxes.json").is_file()
        # Later, photos without hand boxes are boxed by what was learned (not the CAM default 0.2).
        later = localize_photos(model_dir, demo, tmp_path / "b", replace_formats(LocalizeConfig()), progress=False)
        np.testing.assert_allclose(later.pseudo.heatmaps[0], first.pseudo.heatmaps[0], atol=1e-6)
        assert [b.tolist() for b in later.pseudo.boxes] == [b.tolist() for b in first.pseudo.boxes]
        plain = localize_photos(model_dir, demo, tmp_path / "c", replace_formats(LocalizeConfig(threshold=0.2)),
                                progress=False)
        assert not np.allclose(plain.pseudo.heatmaps[0], first.pseudo.heatmaps[0])
        # A run that learned nothing keeps the model's; forget_learned removes it.
        assert keep_learned(tmp_path / "c", model_dir) == [] and load_cell_localizer(model_dir) is not None
        forget_learned(model_dir)
        assert sorted(p.name for p in model_dir.iterdir()) == before

    def test_the_command_writes_into_the_model_only_when_asked(self, demo, model_dir, tmp_path, capsys):
        """`boxstrap localize MODEL ... --ground-truth` only reads MODEL; --keep-learned puts what was
        learned beside it."""
        from boxstrap.cli import main
        from groundwork.files import file_sha256

        def model_files():
            return {p.name: file_sha256(p) for p in model_dir.iterdir() if p.is_file()}

        before = model_files()
        args = ["localize", str(model_dir), str(demo), "--ground-truth", str(demo / "boxes.json"), "--folds", "3",
                "--no-overlays", "--out"]
        assert main([*args, str(tmp_path / "read")]) == 0
        assert model_files() == before and (tmp_path / "read" / "cell_localizer.json").is_file()
        assert "--keep-learned" in capsys.readouterr().out
        assert main([*args, str(tmp_path / "kept"), "--keep-learned"]) == 0
        after = model_files()
        assert set(after) - set(before) == {"cell_localizer.json"}
        assert {k: after[k] for k in before} == before
        assert "kept with the model" in capsys.readouterr().out

    def test_a_localizer_of_another_model_is_refused(self, demo, model_dir, tmp_path):
        import dataclasses

        from groundwork.config import save_config
        from localize.cell_localizer import FILENAME, load_cell_localizer
        from localize.learned import keep_learned

        localize_photos(model_dir, demo, tmp_path / "a", replace_formats(LocalizeConfig(folds=2)),
                        ground_truth=demo / "boxes.json", progress=False)
        keep_learned(tmp_path / "a", model_dir)
        saved = load_cell_localizer(model_dir)
        save_config(dataclasses.replace(saved, model_sha256="0" * 64), model_dir / FILENAME)
        with pytest.raises(ValueError, match="another classifier"):
            localize_photos(model_dir, demo, tmp_path / "b", replace_formats(LocalizeConfig()), progress=False)

    def test_the_classifier_pass_is_kept_and_read_back(self, demo, model_dir, tmp_path, monkeypatch):
        import os

        import classifier.forward_photos as forward_photos

        first = localize_photos(model_dir, demo, tmp_path, replace_formats(LocalizeConfig()), progress=False)
        assert (tmp_path / "forward.npz").is_file() and (tmp_path / "forward.json").is_file()

        def no_pass(*args, **kwargs):
            raise AssertionError("the classifier ran again")

        monkeypatch.setattr(forward_photos, "run_photo_work", no_pass)
        again = localize_photos(model_dir, demo, tmp_path, replace_formats(LocalizeConfig()),
                                ground_truth=demo / "boxes.json", overwrite=True, progress=False)
        np.testing.assert_array_equal(again.pseudo.probabilities, first.pseudo.probabilities)
        assert again.scores is not None and [it.name for it in again.items] == [it.name for it in first.items]
        # A photo changed since (its modification time): the pass runs again.
        photo = sorted((demo / "one").glob("*.jpg"))[0]
        stat = photo.stat()
        os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        try:
            with pytest.raises(AssertionError, match="the classifier ran again"):
                localize_photos(model_dir, demo, tmp_path, replace_formats(LocalizeConfig()), overwrite=True,
                                progress=False)
        finally:
            os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    def test_a_rerun_without_hand_boxes_forgets_what_the_last_one_learned(self, demo, model_dir, tmp_path):
        from datasets.box_folder import FOLDS, HELD_OUT_BOXES
        from localize.cell_localizer import FILENAME

        learned = (FILENAME, FOLDS, HELD_OUT_BOXES, "scores.json")
        out = tmp_path / "out"
        localize_photos(model_dir, demo, out, replace_formats(LocalizeConfig(folds=2)),
                        ground_truth=demo / "boxes.json", progress=False)
        assert all((out / name).is_file() for name in learned)
        # Left there, the localizer would be kept with the model again and the folds would score the box model.
        localize_photos(model_dir, demo, out, replace_formats(LocalizeConfig()), overwrite=True, progress=False)
        assert not any((out / name).exists() for name in learned)

    def test_fixed_threshold_or_no_calibrate_is_kept(self, demo, model_dir, tmp_path):
        configs = (LocalizeConfig(threshold=0.3), LocalizeConfig(calibrate=False, learn=False),
                   LocalizeConfig(calibrate=False, learn=False, without_boxes="midpoint"))
        expectations = ({"value": 0.3, "method": "fixed", "source": "class_map"},
                        {"value": 0.3, "method": "ddt", "source": "ddt", "cut": "cam"},
                        {"value": None, "method": "midpoint", "source": "class_map", "cut": "grabcut"})
        for i, (config, expected) in enumerate(zip(configs, expectations, strict=True)):
            result = localize_photos(model_dir, demo, tmp_path / str(i), replace_formats(config),
                                     ground_truth=demo / "boxes.json", progress=False)
            assert {k: result.scores["threshold"][k] for k in expected} == expected
            assert "held_out" not in result.scores["threshold"]
            assert not (tmp_path / str(i) / "localize_calibration.json").exists()

    def test_unreadable_images_are_skipped_named_and_count_as_missed(self, demo, model_dir, tmp_path, capsys):
        import shutil

        from boxstrap.cli import main

        photos = tmp_path / "photos"
        shutil.copytree(demo, photos)
        first = sorted((photos / "one").glob("*.jpg"))[0]
        (photos / "one" / "notes.jpg").write_text("not a photo")
        first.write_bytes(first.read_bytes()[:len(first.read_bytes()) // 2])  # truncated
        out = tmp_path / "loc"
        result = localize_photos(model_dir, photos, out, replace_formats(LocalizeConfig()),
                                 ground_truth=photos / "boxes.json", progress=False)
        assert sorted(e["image"] for e in result.skipped) == sorted(["one/notes.jpg", f"one/{first.name}"])
        assert all(e["reason"].startswith("Cannot read image") for e in result.skipped)
        assert len(result.items) == 5 and f"one/{first.name}" not in [it.name for it in result.items]
        assert json.loads((out / "skipped.json").read_text()) == list(result.skipped)
        # The truncated photo has a hand-checked box: it is scored as an image without a box.
        assert result.scores["n_images"] == 6
        assert len(read_annotations(out / "pseudo_boxes.json")) == 5
        # The command names each file on stderr and exits 1.
        status = main(["localize", str(model_dir), str(photos), "--out", str(tmp_path / "cli"), "--no-overlays"])
        err = capsys.readouterr().err
        assert status == 1
        assert "notes.jpg: not a JPEG, PNG, HEIC, WebP, TIFF or BMP image" in err and f"{first.name}: " in err
        assert "2 of 7 images could not be read" in err

    def test_no_readable_image_is_an_error(self, model_dir, tmp_path):
        (tmp_path / "photos" / "one").mkdir(parents=True)
        (tmp_path / "photos" / "one" / "a.jpg").write_text("not a photo")
        with pytest.raises(ValueError, match=r"none of the 1 image\(s\) under .* could be read; the first: "
                                             r"Cannot read image .*a\.jpg"):
            localize_photos(model_dir, tmp_path / "photos", tmp_path / "out", progress=False)

    def test_refuses_to_overwrite(self, demo, model_dir, tmp_path):
        localize_photos(model_dir, demo, tmp_path, LocalizeConfig(overlays=False, formats=("boxes-json",)),
                        progress=False)
        with pytest.raises(FileExistsError, match="already holds pseudo boxes"):
            localize_photos(model_dir, demo, tmp_path, progress=False)


class TestTrainBoxModel:
    def test_trains_on_pseudo_boxes_reusing_features(self, demo, model_dir, tmp_path, caplog):
        import logging

        from detector.box_model_dir import load_box_model
        from detector.box_train_config import LABELS_ONLY_CROPS, BoxTrainConfig
        from detector.train_box_model import train_box_model

        loc = tmp_path / "loc"
        localize_photos(model_dir, demo, loc, LocalizeConfig(overlays=False), progress=False)
        with caplog.at_level(logging.INFO, logger="detector.train_box_model"):
            path = train_box_model(model_dir, loc / "pseudo_boxes.json", demo, tmp_path / "boxes",
                                   BoxTrainConfig(epochs=2, hidden=8, reduce_filters=4), verbose=0)
        assert "reusing the descriptors" in caplog.text
        box = load_box_model(path)
        assert box.labels == ("one", "ten")
        assert box.metrics["images"] > 0
        # Labels only: the pseudo boxes alone, so the crops of a labels-only training, saved as trained.
        assert json.loads((path / "box_train_config.json").read_text())["crops"] == LABELS_ONLY_CROPS

    def test_each_photos_best_box_confidence_is_written_for_the_review_order(self, demo, model_dir, tmp_path,
                                                                              monkeypatch):
        import numpy as np

        from detector import train_box_model as tbm
        from detector.box_train_config import BoxTrainConfig

        def boxes_with_known_scores(head, features, several):
            # Photo k: two boxes scored 0.2 + k / 100 and 0.3 + k / 100; the first photo none.
            box = np.array([[0.5, 0.5, 0.4, 0.4], [0.3, 0.3, 0.2, 0.2]], np.float32)
            return [(box[:0], np.zeros(0, np.float32), np.zeros(0, np.float32)) if k == 0 else
                    (box, np.array([0.2 + k / 100, 0.3 + k / 100], np.float32), np.array([0.1, 0.1], np.float32))
                    for k in range(len(features))]

        monkeypatch.setattr(tbm, "_predict", boxes_with_known_scores)
        path = tbm.train_box_model(model_dir, demo / "boxes.json", demo, tmp_path / "boxes",
                                   BoxTrainConfig(epochs=1, hidden=8, reduce_filters=4), verbose=0)
        written = json.loads((path / tbm.PHOTO_CONFIDENCE).read_text())
        assert [e["image"] for e in written] == [a.image for a in read_annotations(demo / "boxes.json")]
        assert [e["confidence"] for e in written] == pytest.approx([0.0] + [0.3 + k / 100 for k in range(1, 6)])

    def test_composed_scenes_are_learned_from_beside_the_photos(self, demo, model_dir, tmp_path, caplog):
        import logging

        from detector.box_model_dir import load_box_model
        from detector.box_train_config import BoxTrainConfig
        from detector.train_box_model import SPLIT_BOXES, train_box_model

        config = BoxTrainConfig(epochs=1, hidden=8, reduce_filters=4, paste_photos=2)
        with caplog.at_level(logging.INFO, logger="detector.train_box_model"):
            path = train_box_model(model_dir, demo / "boxes.json", demo, tmp_path / "out" / "boxes", config,
                                   verbose=0)
        pasted = load_box_model(path).metrics["pasted"]
        assert pasted["sets"] == 2 and 0 < pasted["photos"] <= 12 and pasted["boxes"] >= 2 * pasted["photos"]
        assert f"composed {pasted['photos']} scenes" in caplog.text
        # The scenes train the model but are not photos of the run: the boxes written beside it
        # are the six photos', and the scenes' temporary folder is gone.
        assert len(read_annotations(path / SPLIT_BOXES)) == 6
        assert [p.name for p in (tmp_path / "out").iterdir()] == ["boxes"]

    def test_hand_boxes_are_learned_from_and_scored_out_of_fold(self, demo, model_dir, tmp_path):
        from datasets.annotations import read_annotations
        from detector.box_model_dir import load_box_model
        from detector.box_train_config import BoxTrainConfig
        from detector.train_box_model import HELD_OUT_SPLIT_BOXES, SPLIT_BOXES, train_box_model
        from groundwork.box_geometry import box_iou

        loc = tmp_path / "loc"
        localize_photos(model_dir, demo, loc, replace_formats(LocalizeConfig(folds=2)),
                        ground_truth=demo / "boxes.json", progress=False)
        config = BoxTrainConfig(epochs=2, hidden=8, reduce_filters=4, rounds=2)
        path = train_box_model(model_dir, loc / "pseudo_boxes.json", demo, tmp_path / "boxes", config,
                               hand_boxes=demo / "boxes.json", verbose=0)
        metrics = load_box_model(path).metrics
        assert metrics["hand_boxes"] == 6 and metrics["held_out"]["images"] == 6
        assert json.loads((path / "box_train_config.json").read_text())["crops"] == 0  # hand boxes: no crops
        assert "2-fold over capture groups" in metrics["held_out"]["scored"]
        # Every round is trained and scored held out; the last ships.
        assert [r["round"] for r in metrics["rounds"]] == [1, 2] and metrics["chosen_round"] == 2
        assert all(0 <= r["held_out"]["mean_iou"] <= 1 for r in metrics["rounds"])
        held = read_annotations(path / "held_out_boxes.json")
        assert sorted(a.image for a in held) == sorted(a.image for a in read_annotations(demo / "boxes.json"))
        # Beside the model: every photo's pseudo box, or the box model's boxes that split it; the
        # hand-boxed photos' held-out pseudo boxes split the same way by the fold models.
        pseudo = {a.image: a for a in read_annotations(loc / "pseudo_boxes.json")}
        split = read_annotations(path / SPLIT_BOXES)
        assert sorted(a.image for a in split) == sorted(pseudo)
        # The boxes written carry the shipped model's scores of them, so compare the boxes alone.
        changed = [a for a in split if not _same_boxes(a, pseudo[a.image])]
        several = [a for a in changed if len(a.boxes) >= 2]
        assert metrics["split"]["photos"] == len(several)
        # The rest averaged with the box model's box of the object: one box, overlapping the pseudo box.
        fused = [a for a in changed if len(a.boxes) == 1]
        assert metrics["split"]["fused"] == len(fused) and len(several) + len(fused) == len(changed)
        assert all(box_iou(a.xyxy(), pseudo[a.image].xyxy())[0, 0] > 0.3 for a in fused)
        assert metrics["split"]["boxes"] == sum(len(a.boxes) for a in split)
        held_pseudo = {a.image: a for a in read_annotations(loc / "held_out_boxes.json")}
        held_split = read_annotations(path / HELD_OUT_SPLIT_BOXES)
        assert sorted(a.image for a in held_split) == sorted(held_pseudo)
        assert all(_same_boxes(a, held_pseudo[a.image]) or len(a.boxes) >= 2
                   or box_iou(a.xyxy(), held_pseudo[a.image].xyxy())[0, 0] > 0.3 for a in held_split)
        assert all(0 <= b.score <= 1 for a in split + held_split for b in a.boxes)

    def test_each_round_learns_from_the_boxes_its_own_model_refined(self, demo, model_dir, tmp_path, monkeypatch):
        """Round 2's targets are round 1's pseudo boxes averaged with the boxes of the model of the
        same set (the shipped model's for it, fold k's for fold k: a fold never learns, through
        another model, the hand boxes it is scored on); hand boxes stay; the pseudo boxes written
        are the ones round 2 learned from."""
        import detector.train_box_model as tbm
        from datasets.annotations import write_annotations
        from detector.box_train_config import BoxTrainConfig

        hand_file = tmp_path / "hand.json"  # four of the six photos hand-boxed
        write_annotations(read_annotations(demo / "boxes.json")[:4], hand_file, "boxes-json")
        hand_images = {a.image for a in read_annotations(hand_file)}
        loc = tmp_path / "loc"
        localize_photos(model_dir, demo, loc, replace_formats(LocalizeConfig(folds=2)),
                        ground_truth=hand_file, progress=False)
        calls, starts = [], []

        def fake_sets(trained, features, sets, config, *, verbose=0, start=None):
            calls.append(sets)
            starts.append((start, config.max_steps))
            # Set s's model gives each target shrunk about its centre by its own factor.
            return [((len(calls), s), [(np.asarray(t, np.float32)[:1] * [1, 1, shrink(s), shrink(s)], np.ones(min(len(t), 1)),
                                        np.ones(min(len(t), 1))) for t in targets], {"loss": [1.0]})
                    for s, (targets, _) in enumerate(sets)]

        def shrink(s):
            return 0.9 - 0.05 * s

        monkeypatch.setattr(tbm, "train_on_target_sets", fake_sets)
        monkeypatch.setattr(tbm, "save_box_model", _fake_save_box_model)
        path = tbm.train_box_model(model_dir, loc / "pseudo_boxes.json", demo, tmp_path / "boxes",
                                   BoxTrainConfig(rounds=2), hand_boxes=hand_file, verbose=0)
        metrics = json.loads((path / "box_metrics.json").read_text())
        assert len(calls) == len(metrics["rounds"]) == 2 and len(calls[0]) == 3  # shipped, 2 folds
        # Round 2 starts from round 1's model of the same set, for refine_steps batches.
        defaults = BoxTrainConfig()
        assert starts == [(None, defaults.max_steps), ([(1, 0), (1, 1), (1, 2)], defaults.refine_steps)]
        assert metrics["chosen_round"] == 2 and metrics["model"] == [2, 0]  # the shipped set's, round 2
        assert len(calls[0][0][1]) == 4 and len(calls[0][0][0]) == 6
        averaged = 0
        for s, ((first, hand), (second, hand2)) in enumerate(zip(calls[0], calls[1], strict=True)):
            assert hand.keys() == hand2.keys()
            for row, (before, after) in enumerate(zip(first, second, strict=True)):
                if row in hand:
                    np.testing.assert_array_equal(after, hand[row])
                elif len(before) == 1:
                    np.testing.assert_allclose(after[0, 2:], before[0, 2:] * (1 + shrink(s)) / 2, rtol=1e-3, atol=2e-3)
                    averaged += 1
                else:  # several boxes of one photo are several objects: nothing to average
                    np.testing.assert_array_equal(after, before)
        assert averaged >= 4  # the two photos without a hand box in each set, the held-out ones in the folds'
        # Written: every photo's pseudo box averaged with the shipped round-1 model's box of it (the
        # hand-boxed photos' with a box the model learned from their hand box).
        assert _width_ratios(loc / "pseudo_boxes.json", path / tbm.SPLIT_BOXES, exclude=hand_images) == \
            pytest.approx([(1 + shrink(0)) / 2], abs=0.02)
        # The hand-boxed photos' held-out pseudo boxes, averaged with their own fold's model's boxes.
        ratios = _width_ratios(loc / "held_out_boxes.json", path / tbm.HELD_OUT_SPLIT_BOXES)
        assert ratios and all(r == pytest.approx((1 + shrink(1)) / 2, abs=0.02) or r == pytest.approx((1 + shrink(2)) / 2, abs=0.02)
                   for r in ratios)

    def test_without_hand_boxes_one_round(self, demo, model_dir, tmp_path, monkeypatch):
        import detector.train_box_model as tbm
        from detector.box_train_config import BoxTrainConfig

        loc = tmp_path / "loc"
        localize_photos(model_dir, demo, loc, replace_formats(LocalizeConfig()), progress=False)
        calls = []

        def fake_sets(trained, features, sets, config, *, verbose=0, start=None):
            calls.append(sets)
            # Confidence 1 and detect's score 0.7: the written boxes carry the latter.
            return [("round 1", [(np.asarray(t, np.float32)[:1] * [1, 1, 0.8, 0.8], np.ones(min(len(t), 1)),
                                  np.full(min(len(t), 1), 0.7)) for t in sets[0][0]], {"loss": [1.0]})]

        monkeypatch.setattr(tbm, "train_on_target_sets", fake_sets)
        monkeypatch.setattr(tbm, "save_box_model", _fake_save_box_model)
        path = tbm.train_box_model(model_dir, loc / "pseudo_boxes.json", demo, tmp_path / "boxes",
                                   BoxTrainConfig(rounds=3), verbose=0)
        metrics = json.loads((path / "box_metrics.json").read_text())
        assert len(calls) == 1 and len(calls[0]) == 1  # the shipped model alone: no fold to score
        assert metrics["model"] == "round 1" and metrics["chosen_round"] == 1
        # Written: the pseudo boxes averaged with the shipped model's boxes, each scored by the
        # model's box of it: detect's score times their IoU (the same centre, 0.8 and 0.9 the size).
        assert _width_ratios(loc / "pseudo_boxes.json", path / tbm.SPLIT_BOXES) == pytest.approx([0.9], abs=0.02)
        scores = [b.score for a in read_annotations(path / tbm.SPLIT_BOXES) if len(a.boxes) == 1 for b in a.boxes]
        assert scores and scores == pytest.approx([0.7 * (0.8 / 0.9) ** 2] * len(scores), abs=0.02)

    def test_held_out_boxes_are_scored_and_ordered_as_detect_writes_them(self, demo, model_dir, tmp_path, monkeypatch):
        import detector.train_box_model as tbm
        from detector.box_train_config import BoxTrainConfig

        loc = tmp_path / "loc"
        localize_photos(model_dir, demo, loc, replace_formats(LocalizeConfig(folds=2)),
                        ground_truth=demo / "boxes.json", progress=False)
        # Every model boxes every photo twice: the more confident box (0.9, left) is detect's
        # second (its score 0.2, against 0.6 for the box on the right).
        found = (np.array([[0.3, 0.5, 0.2, 0.2], [0.7, 0.5, 0.2, 0.2]], np.float32), np.array([0.9, 0.5], np.float32),
                 np.array([0.2, 0.6], np.float32))

        def fake_sets(trained, features, sets, config, *, verbose=0, start=None):
            return [(f"model {k}", [found] * len(targets), {"loss": [1.0]}) for k, (targets, _) in enumerate(sets)]

        monkeypatch.setattr(tbm, "train_on_target_sets", fake_sets)
        monkeypatch.setattr(tbm, "save_box_model", _fake_save_box_model)
        path = tbm.train_box_model(model_dir, loc / "pseudo_boxes.json", demo, tmp_path / "boxes",
                                   BoxTrainConfig(rounds=1), hand_boxes=demo / "boxes.json", verbose=0)
        held = read_annotations(path / tbm.HELD_OUT_BOXES)
        assert sorted(a.image for a in held) == sorted(a.image for a in read_annotations(demo / "boxes.json"))
        for annotation in held:
            assert [b.score for b in annotation.boxes] == pytest.approx([0.6, 0.2])
            centres = (annotation.xyxy()[:, 0] + annotation.xyxy()[:, 2]) / 2 / annotation.width
            assert centres == pytest.approx([0.7, 0.3], abs=1e-3)

    def test_fold_targets_hide_the_folds_hand_boxes(self):
        from detector.train_box_model import _fold_targets, _next_round

        pseudo = [np.full((1, 4), 0.5, np.float32) for _ in range(4)]
        hand = {0: np.full((1, 4), 0.1), 2: np.full((2, 4), 0.2)}
        held_out = {0: np.full((1, 4), 0.3), 2: np.full((1, 4), 0.4)}
        targets = _fold_targets(pseudo, hand, {0: 0, 2: 1}, held_out, 0)
        assert [t[0, 0] for t in targets] == pytest.approx([0.3, 0.5, 0.2, 0.5])
        assert len(targets[2]) == 2  # every hand box of a photo stands
        predicted = [(np.full((k, 4), 1.5), np.ones(k)) for k in (1, 1, 1, 0)]
        current = ["unchanged without a refinement"]
        kept, after = _next_round(current, predicted, hand, refine=None)
        assert kept is current
        assert [t[0, 0] if len(t) else None for t in after] == pytest.approx([0.1, 1.0, 0.2, None])

    def test_no_matching_images(self, demo, model_dir, tmp_path):
        from detector.train_box_model import train_box_model

        loc = tmp_path / "loc"
        localize_photos(model_dir, demo, loc, LocalizeConfig(overlays=False), progress=False)
        other = tmp_path / "other"
        other.mkdir()
        from PIL import Image

        Image.new("RGB", (8, 8)).save(other / "x.png")
        with pytest.raises(ValueError, match="nothing to train on"):
            train_box_model(model_dir, loc / "pseudo_boxes.json", other, tmp_path / "boxes")


def _fake_save_box_model(model, out_dir, **kwargs):
    """A stand-in for ``save_box_model``: the metrics (and which fake model shipped) in ``box_metrics.json``."""
    out_dir.mkdir(parents=True)
    (out_dir / "box_metrics.json").write_text(json.dumps(dict(kwargs["metrics"], model=model)))
    return out_dir


def _same_boxes(a, b) -> bool:
    """Whether two annotations of a photo hold the same boxes, in any order and whatever their scores."""
    rows = [np.asarray(sorted(map(tuple, x.xyxy().round(3).tolist()))) for x in (a, b)]
    return rows[0].shape == rows[1].shape and np.array_equal(*rows)


def _width_ratios(before, after, exclude=()) -> list[float]:
    """The distinct widths of ``after``'s boxes over ``before``'s, of the photos that have one box
    in both and are not in ``exclude`` (rounded to 0.01)."""
    widths = {a.image: a.xyxy()[0] for a in read_annotations(before) if len(a.boxes) == 1 and a.image not in exclude}
    return sorted({round(float((a.xyxy()[0, 2] - a.xyxy()[0, 0]) / (widths[a.image][2] - widths[a.image][0])), 2)
                   for a in read_annotations(after) if len(a.boxes) == 1 and a.image in widths})


class TestPreparedSource:
    def test_boxes_name_and_fit_the_original_photos(self, demo, model_dir, tmp_path):
        from datasets.ingest import prepare
        from datasets.prepare_config import PrepareConfig

        prepared = tmp_path / "prepared"
        prepare(PrepareConfig(src=str(demo), out=str(prepared), max_side=40, valid=0.2, test=0.2))
        root, items = find_photos(prepared, ("one", "ten"))
        assert root == demo
        assert {it.name for it in items} == {it.name for it in find_photos(demo, ("one", "ten"))[1]}
        assert all(it.size == (80, 64) for it in items)
        result = localize_photos(model_dir, prepared, tmp_path / "loc", LocalizeConfig(overlays=False),
                                 ground_truth=demo / "boxes.json", progress=False)
        assert all((a.width, a.height) == (80, 64) for a in result.annotations)
        assert result.scores["n_unmatched_pred"] == 0


class TestConfinedOutputs:
    """Names come from manifests and annotation files: nothing is read or written outside the folders named."""

    def test_a_manifest_source_climbing_out_writes_nothing_outside_out(self, model_dir, tmp_path):
        from datasets.ingest import prepare
        from datasets.prepare_config import PrepareConfig

        src = tmp_path / "photos"
        write_demo_data(src, DemoDataConfig(per_class=2, size=(64, 80)), progress=False)
        prepared = tmp_path / "prepared"
        prepare(PrepareConfig(src=src, out=prepared, max_side=80))
        data = json.loads((prepared / "manifest.json").read_text())
        data["records"][0]["source"] = str(src / ".." / ".." / "escaped" / "evil.jpg")
        (prepared / "manifest.json").write_text(json.dumps(data))
        before = set(tmp_path.parent.rglob("*"))
        out = tmp_path / "loc"
        localize_photos(model_dir, prepared, out, LocalizeConfig(overlays=True), progress=False)
        written = set(tmp_path.parent.rglob("*")) - before
        assert written and all(p.is_relative_to(out) for p in written), sorted(map(str, written - {out}))
        assert not (tmp_path.parent.parent / "escaped").exists()

    def test_a_manifest_path_climbing_out_is_refused(self, tmp_path):
        from datasets.manifest import load_manifest

        (tmp_path / "manifest.json").write_text(json.dumps({"labels": ["one"], "records": [
            {"path": "../../etc/x.jpg", "label": "one", "source": "x", "sha256": "0", "source_size": [1, 1],
             "size": [1, 1], "phash": "0", "split": "train", "group": 0}]}))
        with pytest.raises(ValueError, match=r"path '../../etc/x.jpg' leaves .*manifest.json"):
            load_manifest(tmp_path)

    @pytest.mark.parametrize("fmt", ["voc", "yolo"])
    def test_annotation_writers_refuse_names_outside_their_folder(self, tmp_path, fmt):
        from datasets.annotations import Box, ImageAnnotation, write_annotations

        ann = ImageAnnotation("../../evil.jpg", 10, 10, [Box("one", 1, 1, 5, 5)])
        with pytest.raises(ValueError, match=r"path '.*evil\.(xml|txt)' leaves"):
            write_annotations([ann], tmp_path / "out", fmt, labels=["one"])
        assert not [p for folder in (tmp_path, tmp_path.parent) for p in folder.glob("evil.*")]

    def test_out_is_checked_before_any_photo_is_read(self, demo, model_dir, tmp_path, monkeypatch):
        import datasets.tf_input as module  # every photo pass reads through it

        monkeypatch.setattr(module, "read_rgb", lambda *a, **k: pytest.fail("a photo was read"))
        (tmp_path / "file.txt").write_text("x")
        with pytest.raises(NotADirectoryError, match=r"file.txt is a file; a folder of annotation files"):
            localize_photos(model_dir, demo, tmp_path / "file.txt", progress=False)
        with pytest.raises(ValueError, match=r"is inside the photo folder"):
            localize_photos(model_dir, demo, demo / "boxes-out", progress=False)
        assert not (demo / "boxes-out").exists()

