"""Classification metrics (pure numpy) and the two plots written beside a trained model.

:func:`classification_metrics` returns accuracy, per-class precision/recall and the confusion
matrix as a JSON-ready dict; :func:`plot_training_curves` and :func:`plot_confusion_matrix`
write PNGs with matplotlib's Agg backend.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.atomic import atomic_open

__all__ = ["classification_metrics", "confusion_matrix", "plot_confusion_matrix", "plot_training_curves"]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``m[t, p]`` of true class ``t`` predicted as ``p``.

    Parameters
    ----------
    y_true, y_pred : (N,) int ndarray
        Class indices in ``[0, num_classes)``.

    Returns
    -------
    (C, C) int64 ndarray

    Raises
    ------
    ValueError
        If the shapes differ or an index is out of range.

    Examples
    --------
    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2).tolist()
    [[1, 0], [1, 1]]
    """
    y_true = np.asarray(y_true, np.int64).ravel()
    y_pred = np.asarray(y_pred, np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length. Received: {y_true.shape}, {y_pred.shape}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} must hold class indices in [0, {num_classes}). "
                             f"Received range: [{y.min()}, {y.max()}]")
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/support and the confusion matrix.

    Parameters
    ----------
    y_true : (N,) int ndarray
    probabilities : (N, C) float ndarray
    labels : C strs

    Returns
    -------
    dict
        ``{"count", "accuracy", "accuracy_interval", "per_class": {label: {"precision", "recall",
        "support"}}, "confusion_matrix": [[...]]}`` (rows true, columns predicted; precision
        ``None`` for a class never predicted). ``accuracy_interval`` is the accuracy's 95% Wilson
        score interval ``[low, high]`` (``scipy.stats.binomtest``), what the photos counted can
        tell: 5 of 5 right is 0.57-1.00. It counts the photos as independent draws; shots of one
        scene are not, so with capture groups it is if anything too narrow.

    Raises
    ------
    ValueError
        If ``probabilities`` is not (N, len(labels)).
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(labels):
        raise ValueError(f"probabilities must be (N, {len(labels)}). Received shape: {probabilities.shape}")
    y_pred = probabilities.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    per_class = {}
    for c, label in enumerate(labels):
        predicted, support = matrix[:, c].sum(), matrix[c].sum()
        per_class[label] = {
            "precision": float(matrix[c, c] / predicted) if predicted else None,
            "recall": float(matrix[c, c] / support) if support else None,
            "support": int(support),
        }
    total, right = int(matrix.sum()), int(np.trace(matrix))
    interval = None
    if total:
        from scipy.stats import binomtest

        ci = binomtest(right, total).proportion_ci(confidence_level=0.95, method="wilson")
        interval = [float(ci.low), float(ci.high)]
    return {
        "count": total,
        "accuracy": right / total if total else None,
        "accuracy_interval": interval,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def plot_training_curves(history: dict[str, Sequence[float]], path: str | os.PathLike) -> Path:
    """Plot loss and accuracy per epoch (keys ``loss``, ``val_loss``, ``accuracy``, ...) to a PNG.

    A ``phase`` list in ``history`` (1 or 2 per epoch) draws a line where fine-tuning starts.
    """
    fig = _figure(1, 2, (10, 4))
    axes = fig.axes
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            values = history.get(key)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, label=key)
        phases = list(history.get("phase", []))
        if 2 in phases:
            ax.axvline(phases.index(2) + 0.5, color="grey", lw=0.8, label="fine-tuning starts")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    return _save(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], path: str | os.PathLike,
                          *, title: str = "confusion matrix") -> Path:
    """Draw a confusion matrix (rows true, columns predicted) with counts to a PNG."""
    matrix = np.asarray(matrix)
    fig = _figure(1, 1, (1.2 * len(labels) + 3, 1.2 * len(labels) + 2.5))
    ax = fig.axes[0]
    ax.imshow(matrix, cmap="Blues")
    for (t, p), count in np.ndenumerate(matrix):
        ax.text(p, t, str(count), ha="center", va="center",
                color="white" if count > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def _figure(rows: int, cols: int, size: tuple[float, float]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="tight")
    for i in range(rows * cols):
        fig.add_subplot(rows, cols, i + 1)
    return fig


def _save(fig, path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_open(path) as handle:
        fig.savefig(handle, format="png", dpi=100)
    return Path(path)
