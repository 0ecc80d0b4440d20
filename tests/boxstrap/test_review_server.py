"""`boxstrap review`: the server's refusals, the corrections file, resuming, and the pipeline reading it."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from boxstrap.review_server import ReviewRun, ReviewServer, corrections_path
from datasets.annotations import Box, ImageAnnotation, read_annotations, write_annotations
from datasets.photo_items import find_photos
from datasets.synthetic import DemoDataConfig, write_demo_data

LABELS = ("one", "ten")


def make_run(base: Path) -> Path:
    """A run folder as the pipeline leaves it, as far as the review reads it: prepared photos, the
    classifier's labels and localize's pseudo boxes and review order."""
    from datasets.ingest import prepare
    from datasets.prepare_config import PrepareConfig

    photos, run = base / "photos", base / "run"
    write_demo_data(photos, DemoDataConfig(per_class=3, size=(64, 80)), progress=False)
    prepare(PrepareConfig(src=str(photos), out=str(run / "prepare"), max_side=40, valid=0.2, test=0.2))
    (run / "train/model").mkdir(parents=True)
    (run / "train/model/labels.json").write_text(json.dumps(LABELS))
    root, items = find_photos(run / "prepare", LABELS)
    pseudo = [ImageAnnotation(it.name, 80, 64, (Box(it.label, 10, 10, 40, 30, score=0.5),), label=it.label)
              for it in items]
    (run / "localize").mkdir()
    write_annotations(pseudo, run / "localize/pseudo_boxes.json", "boxes-json", labels=LABELS)
    review = [{"image": it.name, "class": it.label, "confidence": 0.5 + k / 100, "box": [10, 10, 40, 30], "note": ""}
              for k, it in enumerate(items)]
    (run / "localize/review.json").write_text(json.dumps(review))
    return run


@pytest.fixture(scope="module")
def _run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("review"))


@pytest.fixture()
def run(_run, tmp_path):
    # The prepared manifest names the original photos (beside the module's run) by their full path.
    return Path(shutil.copytree(_run, tmp_path / "run"))


@pytest.fixture()
def server(run):
    server = ReviewServer(ReviewRun(run))
    # A short poll: shutdown() waits for the loop to look up (half a second by default, each test).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server, path, *, token=True, body=None):
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}{path}"
    if token:
        url += ("&" if "?" in path else "?") + f"token={server.token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def correction(photo_id, boxes, *, label="one", reviewed=True):
    return {"id": photo_id, "reviewed": reviewed, "label": label,
            "boxes": [{"xyxy": list(b), "label": label} for b in boxes]}


class TestServer:
    def test_binds_this_machine_and_serves_the_page_and_photos_with_the_token(self, server):
        assert server.server_address[0] == "127.0.0.1" and "token=" in server.url
        status, page = request(server, "/")
        assert status == 200 and b"review.js" in page
        status, state = request(server, "/api/state")
        state = json.loads(state)
        assert state["labels"] == list(LABELS) and len(state["photos"]) == 6
        assert [p["confidence"] for p in state["photos"]] == sorted(p["confidence"] for p in state["photos"])
        status, photo = request(server, "/photo/0")
        assert status == 200 and photo[:2] in (b"\xff\xd8", b"\x89P")

    @pytest.mark.parametrize("path", ["/", "/api/state", "/photo/0", "/review.js"])
    def test_a_request_without_the_token_is_refused(self, server, path):
        status, body = request(server, path, token=False)
        assert status == 403 and b"token" in body
        status, _ = request(server, path + "?token=wrong", token=False)
        assert status == 403

    @pytest.mark.parametrize("path", ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/photo/../model.keras",
                                      "/..%5c..%5cwindows"])
    def test_a_path_that_climbs_out_is_refused(self, server, path):
        status, body = request(server, path)
        assert status == 403 and b"refused" in body

    def test_nothing_else_is_served(self, server):
        for path in ("/localize/pseudo_boxes.json", "/photo/99", "/photo/x", "/index.html"):
            assert request(server, path)[0] == 404

    def test_a_correction_is_saved_at_once_and_a_reopened_review_resumes(self, server, run):
        status, body = request(server, "/api/correction", body=correction(1, [(5, 6, 50, 40)], label="ten"))
        assert status == 200 and json.loads(body)["reviewed"]
        saved = read_annotations(corrections_path(run), "boxes-json", labels=LABELS)
        assert len(saved) == 1 and saved[0].labels() == ("ten",)
        assert saved[0].xyxy().tolist() == [[5, 6, 50, 40]]
        # Named relative to the corrections file, as every boxes JSON names its photos.
        again = ReviewRun(run)
        photo = again.photos[1].item.name
        assert (corrections_path(run).parent / saved[0].image).resolve() == (again.root / photo).resolve()
        assert list(again.reviewed) == [photo] and again.state()["photos"][1]["reviewed"]
        # Undo: the photo is not reviewed any more, and the file goes when nothing is left.
        status, _ = request(server, "/api/correction", body=correction(1, [], reviewed=False))
        assert status == 200 and not corrections_path(run).exists()

    @pytest.mark.parametrize(("body", "message"), [
        ([1, 2], "JSON object"),
        ({"id": 99, "boxes": []}, "id must be the number of a photo"),
        ({"id": 0, "label": "eleven"}, "label must be one of"),
        ({"id": 0, "boxes": [{"xyxy": [10, 10, 5, 20]}]}, "is not a box inside the photo"),
        ({"id": 0, "boxes": [{"xyxy": [0, 0, 500, 20]}]}, "is not a box inside the photo"),
        ({"id": 0, "boxes": [{"xyxy": ["a", 0, 5, 5]}]}, "coordinates must be numbers"),
        ({"id": 0, "boxes": "all"}, "boxes must be a list"),
        ({"id": 0, "path": "../x"}, "has no field 'path'"),
    ])
    def test_a_malformed_correction_is_refused_and_nothing_saved(self, server, run, body, message):
        status, answer = request(server, "/api/correction", body=body)
        assert status == 400 and message in json.loads(answer)["error"]
        assert not corrections_path(run).exists()

    def test_an_unfinished_run_is_named(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="pseudo_boxes.json is missing"):
            ReviewRun(tmp_path)


def test_the_review_shows_the_split_boxes_once_the_boxes_stage_finished_after_localize(run):
    import os

    name = ReviewRun(run).photos[0].item.name
    assert ReviewRun(run).boxes_path == run / "localize/pseudo_boxes.json"  # no stage finished
    localize = read_annotations(run / "localize/pseudo_boxes.json", "boxes-json", labels=LABELS)
    split = [ImageAnnotation(a.image, a.width, a.height, (Box(a.label, 1, 1, 20, 20, score=0.6),
                                                          Box(a.label, 30, 1, 60, 20, score=0.5)), label=a.label)
             if a.image == name else a for a in localize]
    write_annotations(split, run / "boxes/pseudo_boxes.json", "boxes-json", labels=LABELS)
    for stage, seconds in (("localize", 100), ("boxes", 200)):
        (run / stage / "stage.json").write_text("{}")
        os.utime(run / stage / "stage.json", (seconds, seconds))
    review = ReviewRun(run)
    assert review.boxes_path == run / "boxes/pseudo_boxes.json"
    assert len(review.state()["photos"][0]["boxes"]) == 2
    # Localize ran again (the boxes stage has not yet): the split boxes are stale.
    os.utime(run / "localize/stage.json", (300, 300))
    assert len(ReviewRun(run).state()["photos"][0]["boxes"]) == 1


def test_the_box_models_confidence_joins_the_order_once_the_boxes_stage_finished_after_localize(run, caplog):
    import os

    from datasets.review import joint_confidence, review_order

    before = ReviewRun(run)
    names = [p.item.name for p in before.photos]
    assert before.order == "classifier"
    # The box model doubts other photos than the classifier (which doubts them in the listed order).
    box = dict(zip(names, (0.9, 0.2, 0.95, 0.8, 0.3, 0.7), strict=True))
    (run / "boxes/model").mkdir(parents=True)
    (run / "boxes/model/photo_confidence.json").write_text(json.dumps(
        [{"image": name, "confidence": c} for name, c in box.items()]))
    for stage, seconds in (("localize", 100), ("boxes", 200)):
        (run / stage / "stage.json").write_text("{}")
        os.utime(run / stage / "stage.json", (seconds, seconds))
    review = ReviewRun(run)
    assert review.order == "classifier and box model"
    joint = joint_confidence([p.confidence for p in before.photos], [box[name] for name in names])
    expected = [names[i] for i in review_order(joint, [p.item.group for p in before.photos])]
    assert [p["name"] for p in review.state()["photos"]] == expected and expected != names
    # Localize ran again (the boxes stage has not yet): the box model's confidences are stale.
    os.utime(run / "localize/stage.json", (300, 300))
    assert [p.item.name for p in ReviewRun(run).photos] == names
    # A confidence file that misses a photo of the review is not used, nor a damaged one (with a warning).
    os.utime(run / "localize/stage.json", (100, 100))
    (run / "boxes/model/photo_confidence.json").write_text(json.dumps(
        [{"image": name, "confidence": c} for name, c in list(box.items())[1:]]))
    assert ReviewRun(run).order == "classifier"
    for damaged in ('[{"image": "x"', json.dumps([{"image": name, "confidence": "high"} for name in names]),
                    json.dumps([{"image": name, "confidence": float("nan")} for name in names])):
        (run / "boxes/model/photo_confidence.json").write_text(damaged)
        with caplog.at_level(logging.WARNING, logger="boxstrap.review_server"):
            assert [p.item.name for p in ReviewRun(run).photos] == names
        assert "photo_confidence.json is not a list of {image, confidence}" in caplog.text
        caplog.clear()


def test_the_pipeline_learns_from_the_reviewed_photos(run):
    """Reviewed photos replace the same photos' hand boxes and join the others in one file."""
    from boxstrap.pipeline import _with_reviewed

    photos = ReviewRun(run).root
    assert _with_reviewed(run, photos, photos / "boxes.json") == (photos / "boxes.json", None)
    review = ReviewRun(run)
    review.correct(correction(0, [(10, 10, 40, 30)], label=review.photos[0].label))  # accepted as it was
    review.correct(correction(2, [(1, 2, 30, 30), (40, 30, 70, 60)], label=review.photos[2].label))
    path, numbers = _with_reviewed(run, photos, photos / "boxes.json")
    assert numbers["photos"] == 2 and numbers["accepted_as_they_were"] == 1 and numbers["corrected"] == 1
    assert numbers["relabelled"] == 0
    merged = {Path(a.image).name: a for a in read_annotations(path, "boxes-json", labels=LABELS)}
    user = read_annotations(photos / "boxes.json", labels=LABELS)
    assert len(merged) == len({Path(a.image).name for a in user} | {Path(review.photos[2].item.name).name})
    assert len(merged[Path(review.photos[2].item.name).name].boxes) == 2


def test_a_photo_given_another_class_is_counted_and_warned_about(run, caplog):
    """The review can change a photo's class; the boxes carry it, the classifier's folders do not."""
    from boxstrap.pipeline import _with_reviewed

    review = ReviewRun(run)
    photos = review.root
    other = next(label for label in LABELS if label != review.photos[1].label)
    review.correct(correction(1, [(10, 10, 40, 30)], label=other))
    review.correct(correction(0, [(10, 10, 40, 30)], label=review.photos[0].label))
    with caplog.at_level(logging.WARNING, logger="boxstrap.pipeline"):
        _, numbers = _with_reviewed(run, photos, None)
    assert numbers["relabelled"] == 1 and numbers["corrected"] >= 1
    assert f"1 reviewed photo(s) were given another class than their folder's ({review.photos[1].item.name})" \
        in caplog.text
