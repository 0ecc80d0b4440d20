"""Tests of groundwork.progress: bars on a terminal, nothing in a log file."""

import io

from groundwork.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_no_bar():
    log = io.StringIO()
    assert sum(progress_bar(range(50), desc="work", file=log, mininterval=0)) == sum(range(50))
    assert log.getvalue() == ""


def test_a_terminal_gets_the_bar_unless_disabled():
    terminal = _Terminal()
    list(progress_bar(range(5), desc="work", file=terminal, mininterval=0))
    assert "work" in terminal.getvalue() and "5/5" in terminal.getvalue()
    quiet = _Terminal()
    list(progress_bar(range(5), desc="work", file=quiet, enabled=False))
    assert quiet.getvalue() == ""
