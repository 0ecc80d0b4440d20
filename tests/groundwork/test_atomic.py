import json
import os

import pytest

from groundwork import atomic


class TestAtomic:
    def test_write_json(self, tmp_path):
        path = atomic.write_json(tmp_path / "sub" / "a.json", {"x": [1, 2]})
        assert json.loads(path.read_text()) == {"x": [1, 2]}

    def test_interrupted_write_keeps_old_content(self, tmp_path):
        path = tmp_path / "a.txt"
        path.write_text("old")
        with pytest.raises(KeyboardInterrupt):
            with atomic.atomic_open(path) as handle:
                handle.write(b"new, half")
                raise KeyboardInterrupt
        assert path.read_text() == "old"
        assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]

    @pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
    def test_unwritable_folder_is_named(self, tmp_path):
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(PermissionError, match="locked"):
                atomic.write_text(locked / "a.txt", "x")
        finally:
            locked.chmod(0o700)


def test_atomic_output_has_the_usual_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        path = atomic.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
