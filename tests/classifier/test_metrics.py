"""Tests of classifier.metrics."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.metrics import (
    classification_metrics,
    confusion_matrix,
    plot_confusion_matrix,
    plot_training_curves,
)


class TestConfusionMatrix:
    def test_counts(self):
        m = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), 3)
        assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]

    def test_length_mismatch(self):
        with pytest.raises(ValueError, match="same length"):
            confusion_matrix(np.array([0, 1]), np.array([0]), 2)

    def test_out_of_range(self):
        with pytest.raises(ValueError, match=r"y_pred must hold class indices in \[0, 2\)"):
            confusion_matrix(np.array([0, 1]), np.array([0, 2]), 2)


class TestClassificationMetrics:
    def test_values(self):
        probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
        result = classification_metrics(np.array([0, 1, 1, 1]), probabilities, ["one", "ten"])
        assert result["count"] == 4
        assert result["accuracy"] == pytest.approx(0.75)
        assert result["per_class"]["one"] == {"precision": 0.5, "recall": 1.0, "support": 1}
        assert result["per_class"]["ten"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "support": 3}
        assert result["confusion_matrix"] == [[1, 0], [1, 2]]
        # 3 of 4 right: Wilson's 95% score interval, by hand centre 0.628 and half-width 0.327.
        assert result["accuracy_interval"] == pytest.approx([0.3006, 0.9544], abs=1e-4)

    def test_the_interval_narrows_with_photos_and_holds_all_right(self):
        few = classification_metrics(np.zeros(5, int), np.tile([[1.0, 0.0]], (5, 1)), ["a", "b"])
        many = classification_metrics(np.zeros(100, int), np.tile([[1.0, 0.0]], (100, 1)), ["a", "b"])
        assert few["accuracy"] == many["accuracy"] == 1.0
        assert few["accuracy_interval"][1] == many["accuracy_interval"][1] == pytest.approx(1.0)
        assert few["accuracy_interval"][0] == pytest.approx(0.5655, abs=1e-4)
        assert many["accuracy_interval"][0] == pytest.approx(0.9630, abs=1e-4)

    def test_no_photos_no_interval(self):
        result = classification_metrics(np.zeros(0, int), np.zeros((0, 2)), ["a", "b"])
        assert result["count"] == 0 and result["accuracy"] is None and result["accuracy_interval"] is None

    def test_never_predicted_class_has_no_precision(self):
        result = classification_metrics(np.array([0, 1]), np.array([[1.0, 0.0], [1.0, 0.0]]), ["a", "b"])
        assert result["per_class"]["b"]["precision"] is None

    def test_bad_shape(self):
        with pytest.raises(ValueError, match=r"probabilities must be \(N, 2\)"):
            classification_metrics(np.array([0]), np.array([[1.0, 0.0, 0.0]]), ["a", "b"])


class TestPlots:
    def test_pngs(self, tmp_path):
        history = {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.5], "accuracy": [0.5, 0.8, 0.9],
                   "val_accuracy": [0.5, 0.7, 0.9], "phase": [1, 1, 2]}
        for path in (plot_training_curves(history, tmp_path / "curves.png"),
                     plot_confusion_matrix(np.array([[3, 1], [0, 4]]), ["a", "b"], tmp_path / "cm.png")):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
