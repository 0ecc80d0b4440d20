"""One run per folder: a second run is refused naming the first; a killed run's lock is free."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from groundwork.run_lock import LOCK_NAME, RunLocked, run_lock

HOLD = textwrap.dedent("""
    import sys, time
    from groundwork.run_lock import run_lock
    with run_lock(sys.argv[1], "holder"):
        print("held", flush=True)
        time.sleep(60)
""")


def _holder(folder):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert process.stdout.readline().strip() == "held"
    return process


class TestRunLock:
    def test_a_second_run_is_refused_naming_the_first(self, tmp_path):
        holder = _holder(tmp_path)
        try:
            with pytest.raises(RunLocked, match=rf"in use by another run: process {holder.pid} on .*holder"):
                with run_lock(tmp_path, "second"):
                    pass
        finally:
            holder.kill()
            holder.wait()

    def test_a_killed_runs_lock_is_taken_over(self, tmp_path, caplog):
        import logging

        holder = _holder(tmp_path)
        holder.kill()  # SIGKILL: no clean-up ran, the file still names it
        holder.wait()
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid
        with caplog.at_level(logging.INFO, logger="groundwork.run_lock"):
            with run_lock(tmp_path, "next") as path:
                assert json.loads(path.read_text())["pid"] == os.getpid()
        assert f"process {holder.pid}" in caplog.text and "has ended" in caplog.text

    def test_a_lock_beside_a_folder_is_removed_after_the_run(self, tmp_path):
        with run_lock(tmp_path, "train", lock_file=tmp_path / ".model.lock", remove=True) as path:
            assert path.is_file()
        assert not path.exists()

    def test_released_after_the_block_even_on_error(self, tmp_path):
        with pytest.raises(KeyError):
            with run_lock(tmp_path, "first"):
                raise KeyError("boom")
        with run_lock(tmp_path, "again"):
            pass
        assert (tmp_path / LOCK_NAME).read_text() == ""

    def test_pipeline_and_train_hold_their_folders(self, tmp_path):
        from boxstrap.cli import main

        holder = _holder(tmp_path / "run")
        try:
            assert main(["pipeline", str(tmp_path), "--out", str(tmp_path / "run")]) == 1
        finally:
            holder.kill()
            holder.wait()
        from classifier.train import train
        from datasets.ingest import prepare
        from datasets.prepare_config import PrepareConfig
        from datasets.synthetic import DemoDataConfig, write_demo_data

        write_demo_data(tmp_path / "photos", DemoDataConfig(per_class=3, size=(64, 80)), progress=False)
        prepare(PrepareConfig(src=tmp_path / "photos", out=tmp_path / "prepared", resplit=True), progress=None)
        model = tmp_path / "model"
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD.replace("run_lock(sys.argv[1], \"holder\")",
                                                "run_lock(sys.argv[1], \"holder\", lock_file=sys.argv[2])"),
             str(tmp_path), str(tmp_path / ".model.lock")], stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        assert holder.stdout.readline().strip() == "held"
        try:
            with pytest.raises(RunLocked, match=f"process {holder.pid}"):
                train(tmp_path / "prepared", model)
        finally:
            holder.kill()
            holder.wait()
