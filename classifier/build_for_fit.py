"""``build_for_fit``: a compiled Keras model's training state created before ``fit``, so that its
train step is traced once, not twice.

Keras 3 on TensorFlow (without a distribution strategy) leaves the optimizer's slots and the
compiled losses' and metrics' trackers to the first trace of the train step. A ``tf.function``
whose first trace creates variables is traced a second time, and the trace is most of what a
small fit costs: a box head on a few grids fits in 1.8 s with two traces and 1.0 s with one
(``benchmarks/NOTES.md``, "Where a run's time goes"). The numbers are the same to the bit: the
variables are the same, and building them draws no random number.
"""

from __future__ import annotations

__all__ = ["build_for_fit"]


def build_for_fit(net, batch: tuple) -> None:
    """Create ``net``'s optimizer, loss and metric variables from one batch, as ``fit`` would.

    Parameters
    ----------
    net : keras.Model
        Compiled, not yet fitted.
    batch : tuple
        ``(x, y)`` or ``(x, y, sample_weight)`` shaped as ``fit``'s batches (a batch of zeros does).
        Only its structure and shapes matter: the metrics are reset afterwards.

    Examples
    --------
    >>> import keras, numpy as np
    >>> net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> net.compile(optimizer="adam", loss="mse", metrics=["mae"])
    >>> build_for_fit(net, (np.zeros((1, 2)), np.zeros((1, 1))))
    >>> net.optimizer.built
    True
    """
    x, y, *rest = batch
    sample_weight = rest[0] if rest else None
    net.optimizer.build(net.trainable_variables)
    y_pred = net(x, training=False)
    net.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
    net.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
    net.reset_metrics()
