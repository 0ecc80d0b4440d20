import json

import pytest

from datasets.manifest import Manifest, Record, load_manifest, save_manifest


def _manifest(root):
    records = (
        Record(path="images/one/a-1.jpg", label="one", source="/src/one/a.jpg", sha256="1" * 64,
               source_size=(64, 48), size=(32, 24), phash="0" * 16, captured_at="2024-05-01T12:30:05",
               group=0, split="train"),
        Record(path="images/ten/b-2.jpg", label="ten", source="/src/ten/b.jpg", sha256="2" * 64,
               source_size=(64, 48), size=(32, 24), phash="f" * 16, group=1, split="valid"),
    )
    return Manifest(root=root, records=records, labels=("one", "ten"),
                    skipped=({"source": "/src/one/notes.txt", "reason": "not an image file"},),
                    groups={"count": 2}, conflicts=(), settings={"seed": 0})


class TestManifest:
    def test_roundtrip(self, tmp_path):
        manifest = _manifest(tmp_path)
        path = save_manifest(manifest)
        assert path == tmp_path / "manifest.json"
        loaded = load_manifest(tmp_path)
        assert loaded.records == manifest.records and loaded.labels == manifest.labels
        assert loaded.skipped == manifest.skipped and loaded.groups == {"count": 2}
        assert loaded.root == tmp_path.resolve()

    def test_split_image_path_and_label_index(self, tmp_path):
        manifest = _manifest(tmp_path)
        assert [r.label for r in manifest.split("valid")] == ["ten"] and manifest.split("test") == []
        assert manifest.image_path(manifest.records[0]) == tmp_path / "images/one/a-1.jpg"
        assert manifest.label_index(manifest.records[1]) == 1

    def test_unknown_split(self, tmp_path):
        with pytest.raises(ValueError, match="split must be one of"):
            _manifest(tmp_path).split("training")

    def test_missing_manifest(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="boxstrap prepare"):
            load_manifest(tmp_path)

    def test_not_a_manifest(self, tmp_path):
        (tmp_path / "manifest.json").write_text(json.dumps({"records": [{"path": "x"}]}))
        with pytest.raises(ValueError, match="is not a boxstrap manifest"):
            load_manifest(tmp_path / "manifest.json")
