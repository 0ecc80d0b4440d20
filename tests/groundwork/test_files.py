import hashlib

from groundwork.files import disk_size, file_sha256


class TestFileSha256:
    def test_matches_hashlib_across_chunks(self, tmp_path):
        data = bytes(range(256)) * 5000  # over one 1 MiB read
        path = tmp_path / "a.bin"
        path.write_bytes(data)
        assert file_sha256(path) == hashlib.sha256(data).hexdigest()


class TestDiskSize:
    def test_file(self, tmp_path):
        (tmp_path / "a").write_bytes(b"12345")
        assert disk_size(tmp_path / "a") == 5

    def test_folder_counts_every_file_below(self, tmp_path):
        package = tmp_path / "m.mlpackage"
        (package / "Data" / "weights").mkdir(parents=True)
        (package / "Manifest.json").write_bytes(b"{}")
        (package / "Data" / "weights" / "weight.bin").write_bytes(b"x" * 100)
        assert disk_size(package) == 102
