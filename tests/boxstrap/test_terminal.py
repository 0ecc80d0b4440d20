"""What the command line shows on the terminal: warnings, not the log (that is for ``-v``)."""

import logging

import pytest

from boxstrap import cli


@pytest.mark.parametrize("verbose", [False, True])
def test_terminal_shows_warnings_and_the_log_only_when_verbose(monkeypatch, capsys, verbose):
    # The root logger as a fresh process has it: no handlers (pytest's set aside for this test).
    bare_root = logging.getLogger()
    monkeypatch.setattr(bare_root, "handlers", [])
    monkeypatch.setattr(bare_root, "level", bare_root.level)
    cli._log_to_terminal(verbose=verbose)
    logging.getLogger("datasets.review").info("wrote one overlay")
    logging.getLogger("datasets.review").warning("a photo could not be read")
    err = capsys.readouterr().err
    assert "WARNING datasets.review: a photo could not be read" in err
    assert ("wrote one overlay" in err) == verbose
    # Called again (a second command in one process), it adds no second handler.
    cli._log_to_terminal(verbose=verbose)
    assert len(bare_root.handlers) == 1


def test_an_embedding_programs_handlers_are_left_alone(capsys):
    root = logging.getLogger()
    before = list(root.handlers)
    cli._log_to_terminal(verbose=False)
    assert root.handlers == before
