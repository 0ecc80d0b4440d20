import pytest

from datasets.image_files import image_files
from datasets.images import IMAGE_SUFFIXES


def _touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def _names(root):
    return [p.relative_to(root).as_posix() for p in image_files(root)]


class TestImageFiles:
    def test_recursive_and_sorted(self, tmp_path):
        _touch(tmp_path, "b/x.png", "a/y.jpg", "c.jpg", "a/z/w.heic")
        assert _names(tmp_path) == ["a/y.jpg", "a/z/w.heic", "b/x.png", "c.jpg"]
        assert all(p.is_absolute() == tmp_path.is_absolute() for p in image_files(tmp_path))

    def test_suffix_is_case_insensitive(self, tmp_path):
        _touch(tmp_path, "IMG_1.JPG", "IMG_2.HEIC", "IMG_3.Png", "IMG_4.jpeg")
        assert _names(tmp_path) == ["IMG_1.JPG", "IMG_2.HEIC", "IMG_3.Png", "IMG_4.jpeg"]

    def test_every_image_suffix_and_nothing_else(self, tmp_path):
        _touch(tmp_path, *(f"a{suffix}" for suffix in IMAGE_SUFFIXES), "notes.txt", "boxes.json", "raw.dng", "jpg")
        assert _names(tmp_path) == sorted(f"a{suffix}" for suffix in IMAGE_SUFFIXES)

    def test_hidden_files_and_folders_are_skipped(self, tmp_path):
        _touch(tmp_path, "one/IMG_1.jpg", "one/._IMG_1.jpg", ".DS_Store", "one/.hidden.png",
               ".thumbnails/t.jpg", "__MACOSX/one/._IMG_1.jpg", "one/.git/x.jpg")
        assert _names(tmp_path) == ["one/IMG_1.jpg"]

    def test_hidden_folder_given_itself_is_searched(self, tmp_path):
        _touch(tmp_path / ".photos", "a.jpg")
        assert _names(tmp_path / ".photos") == ["a.jpg"]

    def test_folders_named_like_images_are_not_files(self, tmp_path):
        (tmp_path / "album.jpg").mkdir()
        _touch(tmp_path, "album.jpg/a.png")
        assert _names(tmp_path) == ["album.jpg/a.png"]

    def test_empty_folder_gives_empty_list(self, tmp_path):
        assert image_files(tmp_path) == []

    def test_missing_folder_is_named(self, tmp_path):
        with pytest.raises(FileNotFoundError, match=r"folder .*nope does not exist"):
            image_files(tmp_path / "nope")

    def test_file_is_refused(self, tmp_path):
        _touch(tmp_path, "a.jpg")
        with pytest.raises(NotADirectoryError, match=r"folder .*a\.jpg is a file"):
            image_files(tmp_path / "a.jpg")

    def test_wrong_type(self):
        with pytest.raises(TypeError, match="folder must be a str or PathLike. Received: int"):
            image_files(3)
