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

Once started, TensorFlow's Python warning that a ``tf.function`` "triggered tf.function
retracing" (a hint to whoever writes a training loop; boxstrap traces each of its short-lived
models' functions once, and a rerun that skips the classifier's training sees it after the box
model's first predictions) is logged at INFO instead: it goes to the run's log, and to the
terminal only with ``boxstrap -v``. TensorFlow's other warnings are left as they are.
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

    Returns the module. Once the module is imported a call only makes sure the retracing warning
    is demoted (see the module's docstring). Call it before any other thread writes to standard
    error: the capture is the process's file descriptor 2.
    """
    _demote_tracing_hints()
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


class _TracingHint(logging.Filter):
    """Logs TensorFlow's "triggered tf.function retracing" warning at INFO (see the module's docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "triggered tf.function retracing" in record.getMessage():
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


def _demote_tracing_hints() -> None:
    tensorflow_log = logging.getLogger("tensorflow")  # TensorFlow's Python logger (tf.get_logger())
    if not any(isinstance(f, _TracingHint) for f in tensorflow_log.filters):
        tensorflow_log.addFilter(_TracingHint())
