"""Log-sum-exp global pooling: a smooth maximum over each class map.

``LogSumExpPooling2D(sharpness=r)`` pools ``(N, H, W, C)`` to ``(N, C)``::

    s[c] = max(x[..., c]) + log(mean(exp(r * (x[..., c] - max)))) / r

``r -> 0`` gives the average, ``r -> inf`` the maximum. Between them each class score comes from
the strongest part of its own map (the block), while every position still gets some gradient,
so training is stable. It is built from plain ops (max, sub, mul, exp, mean, log, add), which
Core ML converts, and is a registered serializable Keras layer: a model using it loads with
``keras.saving.load_model(..., safe_mode=True)`` once this module is imported.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["LogSumExpPooling2D"]


@keras.saving.register_keras_serializable(package="boxstrap")
class LogSumExpPooling2D(keras.layers.Layer):
    """Global log-sum-exp pooling over height and width.

    Parameters
    ----------
    sharpness : float
        ``r`` above, > 0. Around 1-10 for logits of unit scale.

    Raises
    ------
    ValueError
        If ``sharpness`` is not a positive number.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((1, 2, 2, 1), "float32"); x[0, 0, 0, 0] = 10.0
    >>> float(LogSumExpPooling2D(sharpness=100.0)(x)[0, 0]) > 9.9
    True
    """

    def __init__(self, sharpness: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(sharpness, int | float) or not sharpness > 0:
            raise ValueError(f"sharpness must be a number > 0. Received: sharpness={sharpness!r}")
        self.sharpness = float(sharpness)

    def call(self, inputs):
        r = self.sharpness
        peak = ops.max(inputs, axis=(1, 2), keepdims=True)
        spread = ops.mean(ops.exp(r * (inputs - peak)), axis=(1, 2))
        return ops.squeeze(peak, axis=(1, 2)) + ops.log(spread) / r

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "sharpness": self.sharpness}
