"""``epoch_log``: a Keras callback that writes each epoch's numbers to the log, not the terminal.

Keras prints a line (or a bar) per epoch when ``fit`` is verbose; over a pipeline run that is
hundreds of lines between the ones a person reads. boxstrap fits quietly and logs one INFO line
per epoch instead: it lands in the run's log file (``RUN/log.txt``) and on the terminal with
``boxstrap -v``.
"""

from __future__ import annotations

import logging

__all__ = ["epoch_log", "keras_verbose"]

log = logging.getLogger(__name__)


def epoch_log(what: str, logger: logging.Logger = log, *, keys: tuple[str, ...] | None = None):
    """A ``keras.callbacks.Callback`` logging ``"<what> epoch i/n: loss ..., val_loss ..."``: every
    number Keras reports (but the learning rate), or only ``keys``, in their order.

    Examples
    --------
    >>> import keras, numpy as np
    >>> net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> net.compile(loss="mse")
    >>> _ = net.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=1, verbose=0, callbacks=[epoch_log("tiny")])
    """
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            shown = [k for k in keys if k in logs] if keys is not None else sorted(set(logs) - {"learning_rate"})
            numbers = ", ".join(f"{k} {float(logs[k]):.4g}" for k in shown)
            logger.info("%s epoch %d/%s: %s", what, epoch + 1, self.params.get("epochs", "?"), numbers)

    return EpochLog()


def keras_verbose(verbose: int) -> int:
    """The ``verbose`` to give Keras's ``fit`` for boxstrap's ``verbose``: its own line per epoch
    only at 2 and above; below that :func:`epoch_log` logs each epoch.

    >>> [keras_verbose(v) for v in (0, 1, 2)]
    [0, 0, 2]
    """
    return 2 if verbose >= 2 else 0
