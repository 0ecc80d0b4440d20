import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

import datasets.ingest as ingest
from datasets.ingest import prepare
from datasets.manifest import load_manifest
from datasets.prepare_config import PrepareConfig


def _photo(path: Path, seed: int, size=(32, 24), fmt="JPEG", **params) -> Path:
    """A distinct tiny photo: random blocks, so pHashes of different seeds differ."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 255, (3, 4, 3), dtype=np.uint8)
    image = Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **params)
    return path


def _classes(root: Path, per_class=4, labels=("one", "ten")) -> Path:
    for k, label in enumerate(labels):
        for i in range(per_class):
            _photo(root / label / f"IMG_{100 * k + 10 * i:04d}.JPG", seed=100 * k + i)
    return root


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
            digest.update(str(path.stat().st_mtime_ns).encode())
    return digest.hexdigest()


def _config(src, out, **kwargs):
    return PrepareConfig(src=src, out=out, valid=0.25, test=0.25, **kwargs)


def test_photos_converted_on_several_threads_are_written_as_on_one(tmp_path, monkeypatch):
    """Conversion runs on every core in chunks: the images, the manifest and the skipped files
    (in their order) are those of a run on one thread."""
    import groundwork.thread_map as thread_map

    src = _classes(tmp_path / "src", per_class=12)
    (src / "one" / "IMG_0005.JPG").write_bytes(b"not a photo")
    (src / "ten" / "IMG_0105.JPG").write_bytes(b"\xff\xd8 truncated")
    runs = {}
    for cores in (1, 3):
        monkeypatch.setattr(thread_map, "available_cores", lambda cores=cores: cores)
        manifest = prepare(_config(src, tmp_path / f"out{cores}", max_side=16))
        files = {p.relative_to(tmp_path / f"out{cores}"): p.read_bytes()
                 for p in (tmp_path / f"out{cores}").rglob("*.jpg")}
        runs[cores] = (manifest.records, manifest.skipped, files)
    assert len(runs[1][0]) == 24 and [s["source"] for s in runs[1][1]] == [
        str(src / "one" / "IMG_0005.JPG"), str(src / "ten" / "IMG_0105.JPG")]
    assert runs[1] == runs[3]


class TestPrepareClassFolders:
    def test_writes_images_manifest_and_config_without_touching_source(self, tmp_path):
        src = _classes(tmp_path / "src")
        before = _tree_hash(src)
        manifest = prepare(_config(src, tmp_path / "out", max_side=16))
        assert _tree_hash(src) == before
        out = tmp_path / "out"
        assert (out / "manifest.json").is_file() and (out / "prepare_config.json").is_file()
        assert json.loads((out / "prepare_config.json").read_text())["config"] == "PrepareConfig"
        assert manifest.labels == ("one", "ten") and len(manifest.records) == 8
        for record in manifest.records:
            image = Image.open(out / record.path)
            assert image.format == "JPEG" and image.size == (16, 12) == record.size
            assert record.source_size == (32, 24) and Path(record.source).is_absolute()
            assert record.sha256 == hashlib.sha256(Path(record.source).read_bytes()).hexdigest()
            assert record.path.startswith(f"images/{record.label}/") and "\\" not in record.path
        loaded = load_manifest(out)
        assert loaded.records == manifest.records
        assert set(loaded.groups["split_counts"]["one"]) == {"train", "valid", "test"}
        assert loaded.settings["layout"] == "class_folders" and loaded.settings["split"] == "seeded"

    def test_split_keeps_groups_together_and_is_seeded(self, tmp_path):
        src = tmp_path / "src"
        for k, label in enumerate(("one", "ten")):
            for i in range(12):  # bursts of three consecutive numbers, alike images
                _photo(src / label / f"IMG_{k * 1000 + (i // 3) * 10 + i % 3:04d}.JPG", seed=k * 100 + i // 3)
        manifest = prepare(_config(src, tmp_path / "a"))
        assert manifest.groups["count"] == 8 and manifest.groups["groups_in_two_splits"] == 0
        splits_of = {}
        for r in manifest.records:
            splits_of.setdefault(r.group, set()).add(r.split)
        assert all(len(s) == 1 for s in splits_of.values())
        again = prepare(_config(src, tmp_path / "b"))
        assert [r.split for r in again.records] == [r.split for r in manifest.records]

    def test_class_names_with_spaces_and_non_ascii(self, tmp_path):
        src = _classes(tmp_path / "src", labels=("green cube", "Würfel 🧊"))
        manifest = prepare(_config(src, tmp_path / "out"))
        assert manifest.labels == ("Würfel 🧊", "green cube")
        assert (tmp_path / "out" / "images" / "Würfel 🧊").is_dir()
        for record in manifest.records:
            assert (tmp_path / "out" / record.path).is_file()
        assert load_manifest(tmp_path / "out").labels == manifest.labels

    def test_decomposed_unicode_folder_names_become_one_composed_label(self, tmp_path):
        src = _classes(tmp_path / "src", labels=("Cafe\u0301", "ten"))  # macOS writes NFD names
        manifest = prepare(_config(src, tmp_path / "out"))
        assert "Caf\u00e9" in manifest.labels
        assert all((tmp_path / "out" / r.path).is_file() for r in manifest.records)

    def test_capture_time_is_recorded(self, tmp_path):
        src = _classes(tmp_path / "src")
        exif = Image.Exif()
        exif.get_ifd(0x8769)[36867] = "2024:05:01 12:30:05"
        _photo(src / "one" / "timed.jpg", seed=77, exif=exif.tobytes())
        manifest = prepare(_config(src, tmp_path / "out"))
        timed = [r for r in manifest.records if r.source.endswith("timed.jpg")]
        assert timed[0].captured_at == "2024-05-01T12:30:05"


class TestBadInput:
    def _src_with(self, tmp_path, name, data):
        src = _classes(tmp_path / "src")
        (src / "one" / name).write_bytes(data)
        return src

    @pytest.mark.parametrize(
        ("name", "data", "reason"),
        [
            ("empty.jpg", b"", "empty file"),
            ("notes.jpg", b"just text\n", "not a readable image"),
            ("notes.txt", b"just text\n", "not an image file"),
            (".DS_Store", b"\x00\x00\x00\x01Bud1", "not an image file"),
        ],
    )
    def test_skipped_and_listed(self, tmp_path, name, data, reason):
        src = self._src_with(tmp_path, name, data)
        manifest = prepare(_config(src, tmp_path / "out"))
        assert len(manifest.records) == 8
        assert [s["source"] for s in manifest.skipped] == [str((src / "one" / name).resolve())]
        assert reason in manifest.skipped[0]["reason"]
        assert load_manifest(tmp_path / "out").skipped == manifest.skipped

    def test_truncated_jpeg_is_skipped(self, tmp_path):
        src = _classes(tmp_path / "src")
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(buffer, "JPEG")
        (src / "one" / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        manifest = prepare(_config(src, tmp_path / "out"))
        assert manifest.skipped[0]["source"].endswith("cut.jpg")
        assert "image file is truncated" in manifest.skipped[0]["reason"]

    def test_strict_refuses_unreadable_image_naming_it(self, tmp_path):
        src = self._src_with(tmp_path, "broken.jpg", b"not a photo")
        with pytest.raises(ValueError, match=r"broken\.jpg: not a readable image.*without --strict"):
            prepare(_config(src, tmp_path / "out", strict=True))

    def test_odd_modes_are_converted(self, tmp_path):
        src = _classes(tmp_path / "src")
        rgba = np.zeros((24, 32, 4), np.uint8)
        Image.fromarray(rgba, "RGBA").save(src / "one" / "alpha.png")
        Image.new("L", (32, 24), 90).save(src / "one" / "gray.png")
        Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(src / "one" / "cmyk.jpg")
        Image.fromarray(np.full((24, 32), 40000, np.uint16)).save(src / "one" / "deep.png")
        expected = 12
        if pillow_heif.libheif_info().get("encoders", {}).get("x265"):
            _photo(src / "ten" / "IMG_0999.HEIC", seed=55, size=(64, 48), fmt="HEIF")
            expected += 1
        before = _tree_hash(src)
        manifest = prepare(_config(src, tmp_path / "out"))
        assert _tree_hash(src) == before
        assert manifest.skipped == () and len(manifest.records) == expected
        for record in manifest.records:
            assert Image.open(tmp_path / "out" / record.path).mode == "RGB"

    def test_webp_tiff_and_bmp_are_prepared_and_gif_is_skipped(self, tmp_path):
        src = _classes(tmp_path / "src")
        _photo(src / "one" / "download.webp", seed=61, fmt="WEBP", lossless=True)
        _photo(src / "one" / "scan.TIFF", seed=62, fmt="TIFF")
        _photo(src / "ten" / "export.bmp", seed=63, fmt="BMP")
        _photo(src / "ten" / "moving.gif", seed=64, fmt="GIF")
        manifest = prepare(_config(src, tmp_path / "out"))
        sources = {Path(r.source).name for r in manifest.records}
        assert {"download.webp", "scan.TIFF", "export.bmp"} <= sources and len(manifest.records) == 11
        assert [Path(s["source"]).name for s in manifest.skipped] == ["moving.gif"]
        assert manifest.skipped[0]["reason"] == "not an image file (JPEG, PNG, HEIC, WebP, TIFF or BMP): moving.gif"
        for record in manifest.records:
            assert Image.open(tmp_path / "out" / record.path).format == "JPEG"

    def test_exif_rotated_photo_is_upright_without_metadata(self, tmp_path):
        src = _classes(tmp_path / "src")
        exif = Image.Exif()
        exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
        exif.get_ifd(0x8825)[2] = (52.0, 31.0, 12.0)  # GPSLatitude
        _photo(src / "one" / "rotated.jpg", seed=5, size=(32, 24), exif=exif.tobytes())
        manifest = prepare(_config(src, tmp_path / "out"))
        record = next(r for r in manifest.records if r.source.endswith("rotated.jpg"))
        out = Image.open(tmp_path / "out" / record.path)
        assert out.size == (24, 32) == record.size and record.source_size == (32, 24)
        assert len(out.getexif()) == 0 and "exif" not in out.info

    def test_decompression_bomb_is_skipped_with_reason(self, tmp_path, monkeypatch):
        src = _classes(tmp_path / "src")
        _photo(src / "one" / "huge.png", seed=9, size=(200, 200), fmt="PNG")
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 40 000 pixels > 2 x limit
        manifest = prepare(_config(src, tmp_path / "out"))
        assert manifest.skipped[0]["source"].endswith("huge.png")
        assert "too large to decode safely" in manifest.skipped[0]["reason"]

    def test_empty_class_folder_is_an_error(self, tmp_path):
        src = _classes(tmp_path / "src")
        (src / "empty").mkdir()
        with pytest.raises(ValueError, match=r"Class folder .*empty holds no images"):
            prepare(_config(src, tmp_path / "out"))

    def test_class_with_only_unreadable_images_is_an_error(self, tmp_path):
        src = _classes(tmp_path / "src")
        (src / "bad").mkdir()
        (src / "bad" / "x.jpg").write_bytes(b"")
        with pytest.raises(ValueError, match=r"No readable image for class\(es\) \['bad'\]"):
            prepare(_config(src, tmp_path / "out"))

    def test_only_one_class_is_an_error(self, tmp_path):
        src = _classes(tmp_path / "src", labels=("one",))
        with pytest.raises(ValueError, match="need at least 2 classes"):
            prepare(_config(src, tmp_path / "out"))

    def test_same_image_in_two_classes_is_a_conflict(self, tmp_path):
        src = _classes(tmp_path / "src")
        (src / "ten" / "copy.jpg").write_bytes((src / "one" / "IMG_0000.JPG").read_bytes())
        # A re-encoded copy: a near duplicate, not byte-identical.
        Image.open(src / "one" / "IMG_0010.JPG").save(src / "ten" / "resaved.png")
        manifest = prepare(_config(src, tmp_path / "out"))
        kinds = sorted(c["kind"] for c in manifest.conflicts)
        assert kinds == ["exact", "near"]
        exact = next(c for c in manifest.conflicts if c["kind"] == "exact")
        assert {i["label"] for i in exact["images"]} == {"one", "ten"}
        assert len({r.split for r in manifest.records if r.sha256 == manifest.records[0].sha256}) == 1

    def test_photos_of_other_colours_are_not_one_scene(self, tmp_path):
        # A solid green and a solid blue photo hash alike (the pHash sees grey levels): they are
        # neither a label conflict nor one capture group. A re-saved copy of the same colours is.
        src = tmp_path / "src"
        for label, colour in (("one", (0, 160, 0)), ("ten", (0, 0, 160))):
            (src / label).mkdir(parents=True)
            Image.new("RGB", (64, 48), colour).save(src / label / "plain.png")
        Image.new("RGB", (64, 48), (0, 160, 0)).save(src / "ten" / "green_copy.png")
        manifest = prepare(_config(src, tmp_path / "out"))
        by_name = {Path(r.source).parent.name + "/" + Path(r.source).stem: r for r in manifest.records}
        assert by_name["one/plain"].group != by_name["ten/plain"].group
        assert by_name["one/plain"].group == by_name["ten/green_copy"].group
        pairs = [{Path(i["source"]).stem for i in c["images"]} for c in manifest.conflicts]
        assert pairs == [{"plain", "green_copy"}]
        assert by_name["one/plain"].colour == "0000f00000000"

    def test_missing_source(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            prepare(_config(tmp_path / "nope", tmp_path / "out"))

    def test_source_is_a_file(self, tmp_path):
        (tmp_path / "file").write_text("x")
        with pytest.raises(NotADirectoryError, match="is not a folder"):
            prepare(_config(tmp_path / "file", tmp_path / "out"))

    def test_output_inside_source(self, tmp_path):
        src = _classes(tmp_path / "src")
        with pytest.raises(ValueError, match="is inside the source folder"):
            prepare(_config(src, src / "prepared"))


class TestOutputFolder:
    def test_different_run_is_refused_unless_overwrite(self, tmp_path):
        src = _classes(tmp_path / "src")
        prepare(_config(src, tmp_path / "out", seed=1))
        with pytest.raises(FileExistsError, match=r"holds a different prepare run \(differs in \['seed'\]\).*--overwrite"):
            prepare(_config(src, tmp_path / "out", seed=2))
        manifest = prepare(_config(src, tmp_path / "out", seed=2, overwrite=True))
        assert load_manifest(tmp_path / "out").settings["seed"] == 2 and len(manifest.records) == 8

    def test_unrelated_folder_is_refused(self, tmp_path):
        src = _classes(tmp_path / "src")
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "thesis.docx").write_text("precious")
        (tmp_path / "out" / "images").mkdir()
        (tmp_path / "out" / "images" / "mine.png").write_bytes(b"png")
        with pytest.raises(FileExistsError, match="not empty and holds no prepare run"):
            prepare(_config(src, tmp_path / "out"))
        prepare(_config(src, tmp_path / "out", overwrite=True))
        assert (tmp_path / "out" / "thesis.docx").read_text() == "precious"
        assert (tmp_path / "out" / "images" / "mine.png").read_bytes() == b"png"  # not ours: kept

    def test_same_config_resumes_without_rewriting(self, tmp_path, monkeypatch):
        src = _classes(tmp_path / "src")
        first = prepare(_config(src, tmp_path / "out"))

        def fail(*args, **kwargs):
            raise AssertionError("an already written image was converted again")

        monkeypatch.setattr(ingest, "read_image", fail)
        again = prepare(_config(src, tmp_path / "out"))
        assert again.records == first.records

    def test_relative_paths_resume_as_the_same_run(self, tmp_path, monkeypatch):
        _classes(tmp_path / "src")
        monkeypatch.chdir(tmp_path)
        prepare(PrepareConfig(src=Path("src"), out=Path("out")))
        saved = json.loads((tmp_path / "out" / "prepare_config.json").read_text())
        assert saved["src"] == str((tmp_path / "src").resolve())
        assert len(prepare(PrepareConfig(src=Path("src"), out=Path("out"))).records) == 8

    def test_changed_source_file_is_redone(self, tmp_path):
        src = _classes(tmp_path / "src")
        first = prepare(_config(src, tmp_path / "out"))
        _photo(src / "one" / "IMG_0000.JPG", seed=999)
        again = prepare(_config(src, tmp_path / "out"))
        changed = [r for r in again.records if r.source.endswith("IMG_0000.JPG")][0]
        assert changed.sha256 != first.records[0].sha256
        assert (tmp_path / "out" / changed.path).is_file()

    def test_ctrl_c_leaves_no_manifest_and_rerun_completes(self, tmp_path, monkeypatch):
        src = _classes(tmp_path / "src")
        calls = []

        def interrupt(done, total, path):
            calls.append(path)
            if done == 5:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            prepare(_config(src, tmp_path / "out"), progress=interrupt)
        assert len(calls) == 6
        assert not (tmp_path / "out" / "manifest.json").exists()
        assert not list((tmp_path / "out").rglob("*.part"))
        converted = []
        real = ingest.read_image
        monkeypatch.setattr(ingest, "read_image", lambda data, **kw: converted.append(1) or real(data, **kw))
        manifest = prepare(_config(src, tmp_path / "out"))
        assert len(manifest.records) == 8 and len(converted) == 3  # the first five were kept
        assert (tmp_path / "out" / "manifest.json").is_file()

    def test_unwritable_output_folder_is_named(self, tmp_path, monkeypatch):
        src = _classes(tmp_path / "src")
        out = tmp_path / "locked"
        out.mkdir()
        out.chmod(0o500)
        try:
            if os.geteuid() == 0:  # root writes anyway: simulate what a user would meet
                monkeypatch.setattr(ingest.os, "access", lambda *a, **k: False)
            with pytest.raises(PermissionError, match=r"Cannot write into the output folder .*locked"):
                prepare(_config(src, out))
        finally:
            out.chmod(0o700)

    def test_output_folder_that_cannot_be_created_is_named(self, tmp_path, monkeypatch):
        src = _classes(tmp_path / "src")

        def refuse(self, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "mkdir", refuse)
        with pytest.raises(PermissionError, match=r"Cannot create the output folder .*new_out"):
            prepare(_config(src, tmp_path / "new_out"))


class TestGivenLayout:
    def _given(self, root: Path, train_name="training", test=False) -> Path:
        for k, label in enumerate(("one", "ten")):
            for i in range(6):
                split = train_name if i < 4 else ("valid" if i == 4 or not test else "test")
                # IMG_x0, x1: one burst across training and valid for i = 3, 4.
                _photo(root / split / label / f"IMG_{k * 100 + i:04d}.JPG", seed=k * 10 + min(i, 3))
        return root

    def test_kept_as_given_with_leakage_reported(self, tmp_path):
        src = self._given(tmp_path / "src")
        manifest = prepare(_config(src, tmp_path / "out"))
        assert manifest.settings["layout"] == "given" and manifest.settings["split"] == "given"
        for record in manifest.records:
            assert record.split == ("train" if "/training/" in record.source else "valid")
        leak = manifest.groups["leakage"]["valid"]
        assert leak["images"] == 4 and leak["share_group_with_train"] == 4
        assert leak["near_duplicate_of_train"] == 4
        assert manifest.groups["groups_in_two_splits"] > 0

    def test_train_folder_name_and_test_split(self, tmp_path):
        src = self._given(tmp_path / "src", train_name="train", test=True)
        manifest = prepare(_config(src, tmp_path / "out"))
        assert {r.split for r in manifest.records} == {"train", "valid", "test"}
        assert set(manifest.groups["leakage"]) == {"valid", "test"}

    def test_resplit_has_no_group_in_two_splits(self, tmp_path):
        src = self._given(tmp_path / "src")
        manifest = prepare(_config(src, tmp_path / "out", resplit=True))
        assert manifest.settings["split"] == "seeded" and "leakage" not in manifest.groups
        assert manifest.groups["groups_in_two_splits"] == 0

    def test_mixed_layout_is_an_error(self, tmp_path):
        src = self._given(tmp_path / "src")
        _photo(src / "extra" / "a.jpg", seed=1)
        with pytest.raises(ValueError, match=r"mixes split folders .*\['extra'\]"):
            prepare(_config(src, tmp_path / "out"))

    def test_training_without_valid_is_an_error(self, tmp_path):
        src = self._given(tmp_path / "src")
        for path in sorted((src / "valid").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (src / "valid").rmdir()
        with pytest.raises(ValueError, match="mixes split folders"):
            prepare(_config(src, tmp_path / "out"))


class TestPrepareConfig:
    def test_prepare_needs_a_config(self):
        with pytest.raises(TypeError, match="config must be a PrepareConfig"):
            prepare({"src": "x"})
