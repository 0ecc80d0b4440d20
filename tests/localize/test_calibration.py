import json

import numpy as np
import pytest

from localize.boxes import DEFAULT_THRESHOLD
from localize.calibration import (
    FILENAME,
    ThresholdCalibration,
    calibrate_threshold,
    load_calibration,
    save_calibration,
)


def graded_map(inner):
    """A 60x60 map whose object [15, 15, 45, 45) sits at heat 0.5 inside a halo of 0.25 and a
    core of 1.0 ([25, 25, 35, 35)): thresholds in (0.25, 0.5] box the object exactly."""
    h = np.zeros((60, 60))
    h[5:55, 5:55] = 0.25
    h[15:45, 15:45] = inner
    h[25:35, 25:35] = 1.0
    return h


class TestCalibrateThreshold:
    def test_picks_threshold_that_boxes_the_object(self):
        maps = [graded_map(0.5), graded_map(0.45)]
        gt = [np.array([[15, 15, 45, 45]])] * 2
        cal = calibrate_threshold(maps, gt, thresholds=[0.1, 0.2, 0.3, 0.4, 0.6, 0.8])
        # 0.3 and 0.4 are tied at BoxAcc 1; the middle of a tie wins -> 0.4 (index 1 of 2)
        assert cal.threshold == 0.4
        assert cal.method == "box_accuracy" and cal.n_images == 2
        assert cal.box_accuracy == (1.0, 1.0, 1.0)

    def test_single_best_threshold(self):
        maps = [graded_map(0.5), graded_map(0.32)]
        gt = [np.array([[15, 15, 45, 45]])] * 2
        cal = calibrate_threshold(maps, gt, thresholds=[0.1, 0.2, 0.3, 0.4, 0.6, 0.8])
        assert cal.threshold == 0.3

    def test_bad_mode(self):
        with pytest.raises(ValueError, match="mode must be"):
            calibrate_threshold([graded_map(0.5)], [np.array([[15, 15, 45, 45]])], mode="some")


class TestSaveLoad:
    def test_round_trip(self, tmp_path):
        cal = ThresholdCalibration(threshold=0.35, method="box_accuracy", box_accuracy=(0.9, 0.8, 0.4), n_images=12)
        path = save_calibration(cal, tmp_path)
        assert path.name == FILENAME
        assert json.loads(path.read_text())["threshold"] == 0.35
        assert load_calibration(tmp_path) == cal

    def test_default_without_file(self, tmp_path):
        cal = load_calibration(tmp_path)
        assert cal.threshold == DEFAULT_THRESHOLD == 0.2 and cal.method == "default"

    def test_broken_file(self, tmp_path):
        (tmp_path / FILENAME).write_text('{"threshold": 0.3, "colour": 1}')
        with pytest.raises(ValueError, match="unknown ThresholdCalibration fields"):
            load_calibration(tmp_path)
        (tmp_path / FILENAME).write_text('{"threshold": 3}')
        with pytest.raises(ValueError, match="threshold must be in"):
            load_calibration(tmp_path)

    def test_save_wrong_type(self, tmp_path):
        with pytest.raises(TypeError, match="ThresholdCalibration"):
            save_calibration({"threshold": 0.2}, tmp_path)

    def test_invalid_values(self):
        with pytest.raises(ValueError, match="method must be"):
            ThresholdCalibration(method="guess")
