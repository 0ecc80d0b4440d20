"""The ``boxstrap`` command line: one subcommand per module in :mod:`boxstrap.commands`.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``,
and ``TENSORFLOW = False`` if it never needs TensorFlow (the others get it started quietly, before
they run: :mod:`groundwork.tensorflow_startup`). It parses flags into its stage's config
dataclass and calls one library function; the work itself lives in the stage packages.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence

# TensorFlow's C++ log below warnings is noise for a command-line user. (Its start-up lines come
# before this is read: groundwork.tensorflow_startup keeps them off the terminal.)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import boxstrap
from boxstrap import commands
from boxstrap.environment import EnvironmentClash, check_stage_packages
from groundwork.photo_map import RayUnavailable
from groundwork.run_lock import RunLocked
from groundwork.tensorflow_startup import start_tensorflow

__all__ = ["build_parser", "main"]

log = logging.getLogger("boxstrap")

# The order commands are listed in ``boxstrap --help``: the order a user runs them.
_ORDER = ["demo-data", "prepare", "train", "predict", "export", "verify", "localize",
          "evaluate-boxes", "train-boxes", "export-boxes", "detect", "pipeline"]


def _command_modules():
    found = []
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        found.append(importlib.import_module(f"boxstrap.commands.{info.name}"))

    def rank(module):
        return (_ORDER.index(module.NAME) if module.NAME in _ORDER else len(_ORDER), module.NAME)

    return sorted(found, key=rank)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="boxstrap",
        description=(
            "Turn a folder of phone photos per class into a verified Core ML classifier, "
            "and bootstrap the bounding boxes you never drew."
        ),
        epilog="Run `boxstrap COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"boxstrap {boxstrap.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the log on the terminal too (every step, every file written, every epoch)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(_run=module.run, _tensorflow=getattr(module, "TENSORFLOW", True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``boxstrap`` console script; returns the exit status."""
    try:
        check_stage_packages()
    except EnvironmentClash as error:
        print(f"boxstrap: {error}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    _log_to_terminal(verbose=args.verbose)
    # On Linux, importing coremltools warns that its Core ML bindings are missing: expected here
    # (verify runs the reference runtime instead), so it is not worth a user's attention.
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        if args._tensorflow:
            start_tensorflow()
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("boxstrap: interrupted; finished outputs are kept, rerun the same command to go on.",
              file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
            ValueError, TypeError, RunLocked, RayUnavailable) as error:
        if args.verbose:
            raise
        print(f"boxstrap {args.command}: error: {error}", file=sys.stderr)
        return 1


class _Terminal(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a record comes (not the one it was made with)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _log_to_terminal(*, verbose: bool) -> None:
    """Warnings and errors on stderr; with ``verbose`` the whole log.

    The log is kept at INFO (DEBUG with ``verbose``) for the files a command writes it to
    (``boxstrap pipeline``: ``RUN/log.txt``); the terminal gets each command's own report. A root
    logger that has handlers already (an embedding program's, pytest's) is given none.
    """
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    terminal = next((h for h in root.handlers if isinstance(h, _Terminal)), None)
    if terminal is None and not root.handlers:
        terminal = _Terminal()
        terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(terminal)
    if terminal is not None:
        terminal.setLevel(logging.NOTSET if verbose else logging.WARNING)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
