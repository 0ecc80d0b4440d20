"""TensorFlow's start-up lines kept off the terminal: logged on success, shown on failure."""

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from groundwork.tensorflow_startup import start_tensorflow

ROOT = Path(__file__).resolve().parents[2]

# A stand-in for TensorFlow that writes to file descriptor 2 from "C++" (os.write, below Python's
# sys.stderr) at import and when its devices are listed, as TensorFlow 2.21 does.
NOISY = '''
import os
os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\\n")
if {fail}:
    raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")

class config:
    @staticmethod
    def list_physical_devices():
        os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\\n")
        return []
'''


@pytest.fixture
def fake_tensorflow(tmp_path, monkeypatch):
    def make(name: str, *, fail: bool) -> str:
        (tmp_path / f"{name}.py").write_text(NOISY.format(fail=fail))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name
    return make


def test_start_up_lines_go_to_the_log_not_the_terminal(fake_tensorflow, capfd, caplog):
    name = fake_tensorflow("quiet_fake_tf", fail=False)
    with caplog.at_level(logging.DEBUG, logger="groundwork.tensorflow_startup"):
        module = start_tensorflow(name)
    print("after", file=sys.stderr)  # standard error works again once it returns
    out, err = capfd.readouterr()
    assert err == "after\n"
    assert module is sys.modules[name]
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [f"{name} start-up: I0000 port.cc:153] oneDNN custom operations are on.",
                      f"{name} start-up: E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)"]
    # Imported once: a second call captures nothing and logs nothing.
    caplog.clear()
    assert start_tensorflow(name) is module
    assert caplog.records == []


def test_a_failed_import_shows_what_it_wrote_and_raises(fake_tensorflow, capfd):
    name = fake_tensorflow("broken_fake_tf", fail=True)
    with pytest.raises(ImportError, match="libtensorflow_framework"):
        start_tensorflow(name)
    print("after", file=sys.stderr)
    assert capfd.readouterr().err == "I0000 port.cc:153] oneDNN custom operations are on.\nafter\n"


def test_without_a_temporary_folder_it_imports_as_usual(fake_tensorflow, capfd, monkeypatch):
    import tempfile

    def unwritable():
        raise OSError("No usable temporary directory found")

    monkeypatch.setattr(tempfile, "TemporaryFile", unwritable)
    name = fake_tensorflow("plain_fake_tf", fail=False)
    assert start_tensorflow(name) is sys.modules[name]
    assert "oneDNN custom operations" in capfd.readouterr().err  # not hidden, but not lost either


def _run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=ROOT)


def test_tensorflow_starts_and_runs_without_a_line_on_standard_error():
    done = _run("""
        from groundwork.tensorflow_startup import start_tensorflow
        tf = start_tensorflow()
        print(float(tf.reduce_sum(tf.constant([1.0, 2.0]) * 2)))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "6.0"
    assert done.stderr == ""


def test_commands_that_say_so_never_import_tensorflow(tmp_path):
    # demo-data, prepare and evaluate-boxes are TENSORFLOW = False: their start is not slowed by it.
    done = _run(f"""
        import sys
        from boxstrap import cli
        src, out = {str(tmp_path / "demo")!r}, {str(tmp_path / "prepared")!r}
        assert cli.main(["demo-data", "--out", src, "--per-class", "3", "--size", "64x96"]) == 0
        assert cli.main(["prepare", src, "--out", out]) == 0
        assert cli.main(["evaluate-boxes", src + "/boxes.json", src + "/boxes.json"]) == 0
        print("tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False False"


def test_retracing_hints_go_to_the_log_not_the_terminal():
    # As the commands log: everything at INFO to the run's log (here stdout), warnings to the
    # terminal (stderr). A tf.function retraced on every call makes TensorFlow's retracing warning.
    done = _run("""
        import logging, sys
        log_file = logging.StreamHandler(sys.stdout)
        log_file.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        terminal = logging.StreamHandler(sys.stderr)
        terminal.setLevel(logging.WARNING)
        logging.getLogger().setLevel(logging.INFO)
        logging.getLogger().addHandler(log_file)
        logging.getLogger().addHandler(terminal)
        from groundwork.tensorflow_startup import start_tensorflow
        tf = start_tensorflow()
        double = tf.function(lambda x: x * 2, autograph=False)
        for n in range(1, 8):
            double(tf.zeros((n,)))
        logging.getLogger("tensorflow").warning("another warning")
    """)
    assert done.returncode == 0, done.stderr
    assert "INFO tensorflow: 5 out of the last 5 calls to" in done.stdout
    assert "triggered tf.function retracing" in done.stdout
    assert done.stderr == "another warning\n"
