"""TensorFlow started without its C++ start-up lines on the terminal.

Importing TensorFlow 2.21 (the plain ``tensorflow`` package, built with CUDA) and its first look
for devices write lines from C++ straight to the process's standard error: oneDNN's notice,
"Could not find cuda drivers", and on a machine without a GPU an ``E`` line, "failed call to
cuInit". They are written before TensorFlow's logging reads ``TF_CPP_MIN_LOG_LEVEL`` (absl's "All
log messages before absl::InitializeLog() is called are written to STDERR"), so that variable
does not hide them. :func:`start_tensorflow` imports TensorFlow and lists its devices with file
descriptor 2 pointed at a temporary file, then logs what was written there at DEBUG (the
terminal shows it with ``boxstrap -v``). If the import fails, the captured text is written to
standard error before the error goes on: a broken install still says why.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import tempfile
from types import ModuleType

__all__ = ["start_tensorflow"]

log = logging.getLogger(__name__)


def start_tensorflow(module: str = "tensorflow") -> ModuleType:
    """Import TensorFlow (``module``) and find its devices, its start-up output logged at DEBUG.

    Returns the module. Does nothing more once the module is imported. Call it before any other
    thread writes to standard error: the capture is the process's file descriptor 2.
    """
    if module in sys.modules:
        return sys.modules[module]
    try:
        captured = tempfile.TemporaryFile()
    except OSError:  # no temporary folder to write to: the lines go where they always went
        return _import(module)
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to hide anything from
        captured.close()
        return _import(module)
    failed = True
    with captured:
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            tf = _import(module)
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            if failed:
                sys.stderr.write(text)
                sys.stderr.flush()
    for line in text.splitlines():
        log.debug("%s start-up: %s", module, line)
    return tf


def _import(module: str) -> ModuleType:
    tf = importlib.import_module(module)
    tf.config.list_physical_devices()  # the CUDA probe, whose lines come here rather than later
    return tf
