"""Tests of groundwork.paths.confined: names read from files stay inside their folder."""

from pathlib import Path

import pytest

from groundwork.paths import confined


@pytest.mark.parametrize("name", ["one/IMG_1.jpg", "IMG_1.jpg", "a\\b.jpg", "./x/y.png"])
def test_relative_names_join(tmp_path, name):
    path = confined(tmp_path, name)
    assert path.is_relative_to(tmp_path) and path != tmp_path


@pytest.mark.parametrize("name", ["../x.jpg", "one/../../x.jpg", "/etc/passwd", "C:\\x.jpg", "..\\x.jpg", "", "."])
def test_escapes_are_refused_naming_the_source(tmp_path, name):
    with pytest.raises(ValueError, match=r"leaves .* \(in boxes\.json\): image and file names must be relative"):
        confined(tmp_path, name, source="boxes.json")


def test_accepts_paths(tmp_path):
    assert confined(tmp_path, Path("a") / "b.png") == tmp_path / "a" / "b.png"
