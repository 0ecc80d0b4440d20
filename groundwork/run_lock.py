"""One run per folder: an exclusive lock held for the length of a run.

``with run_lock(folder, "boxstrap pipeline"):`` takes an exclusive ``fcntl.flock`` on
``folder/.boxstrap.lock`` (or a named lock file beside a folder that a run replaces whole) and
writes the holder's process id, host and command into it. A second run asking for the same
lock is refused at once with :class:`RunLocked`, which names the first run's process id. The
operating system releases a ``flock`` when its process dies, however it dies, so a lock left by
a killed run is simply free: the next run takes it (and says whose it was) without guessing
from process ids whether the holder is alive.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCK_NAME", "RunLocked", "run_lock"]

log = logging.getLogger(__name__)

LOCK_NAME = ".boxstrap.lock"


class RunLocked(RuntimeError):
    """Another run holds the folder."""


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, command: str, *, lock_file: str | os.PathLike | None = None,
             remove: bool = False) -> Iterator[Path]:
    """Hold the folder's run lock for the ``with`` block; yield the lock file's path.

    Parameters
    ----------
    folder : path
        The folder a run writes (created if missing, when the lock lives inside it).
    command : str
        What holds it, for the message a second run gets.
    lock_file : path, optional
        Where the lock lives instead of ``folder/.boxstrap.lock`` (for a folder that is replaced
        whole at the end of a run, e.g. a model directory).
    remove : bool
        Delete the lock file when the block ends (for a lock file beside the user's folders).
        A run that opened it just before would then hold a lock nobody else can see: a window of
        microseconds, accepted to leave no file behind.

    Raises
    ------
    RunLocked
        If another process holds the lock (its process id, host, command and start are named).
    """
    import fcntl

    path = Path(lock_file) if lock_file is not None else Path(folder) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole run
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(f"{folder} is in use by another run: {_holder(path)}. Wait for it to finish or "
                            "stop it, or choose another folder.") from None
        previous = _holder(path)
        if previous != "unknown":
            log.info("took over the lock on %s (its last holder, %s, has ended)", folder, previous)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        try:
            yield path
        finally:
            if remove:
                path.unlink(missing_ok=True)
            else:
                handle.seek(0)
                handle.truncate()
                handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def _holder(path: Path) -> str:
    """Who the lock file says holds it: 'process 123 on host (command, started ...)' or 'unknown'."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (f"process {int(info['pid'])} on {info.get('host', '?')} ({info.get('command', '?')}, "
                f"started {info.get('started', '?')})")
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"
