"""PhotoWork: photos read where they are, unreadable and missing ones skipped with their reason,
the model loaded once and checked against the caller's."""

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from classifier.photo_work import PhotoWork, Skipped, run_photo_work


class Sizes(PhotoWork):
    loads = 0

    def load(self, directory):
        Sizes.loads += 1
        return SimpleNamespace(model_sha256=(directory / "sha").read_text())

    def run(self, model, images, items):
        return [image.shape[:2] for image in images]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "sha").write_text("abc")
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_text("not a photo")
    return tmp_path


def test_unreadable_and_missing_photos_are_skipped_with_their_reason(folder):
    work = Sizes(folder, "abc")
    out = work([folder / "a.png", folder / "b.jpg", folder / "gone.jpg"])
    assert out[0] == (5, 7)
    assert isinstance(out[1], Skipped) and "b.jpg" in out[1].reason
    assert isinstance(out[2], Skipped) and "gone.jpg" in out[2].reason and "looked for on" in out[2].reason


def test_the_model_is_loaded_once_and_must_be_the_callers(folder):
    import pickle

    Sizes.loads = 0
    work = pickle.loads(pickle.dumps(Sizes(folder, "abc", loaded=object())))  # as a Ray worker gets it
    work([folder / "a.png"])
    work([folder / "a.png"])
    assert Sizes.loads == 1
    with pytest.raises(ValueError, match="holds another model"):
        pickle.loads(pickle.dumps(Sizes(folder, "other")))([folder / "a.png"])


def test_run_photo_work_sorts_results_and_names_the_skipped(folder):
    items = [SimpleNamespace(path=folder / "a.png", name="a"), SimpleNamespace(path=folder / "b.jpg", name="b")]
    readable, results, skipped = run_photo_work(Sizes(folder, "abc"), items, batch_size=1, progress=False)
    assert [it.name for it in readable] == ["a"] and results == [(5, 7)]
    assert [s["image"] for s in skipped] == ["b"] and "b.jpg" in skipped[0]["file"]
    with pytest.raises(ValueError, match="none of the 1 image"):
        run_photo_work(Sizes(folder, "abc"), items[1:], progress=False, source=folder)
