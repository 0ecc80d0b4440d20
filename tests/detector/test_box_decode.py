import numpy as np
import pytest

from detector.box_decode import box_agreement, detector_boxes, non_max_suppression


def _cells(rng, boxes, spread=0.01, per_box=4):
    """Cells around each ``(cx, cy, w, h)`` box, their boxes jittered by ``spread``."""
    out = [np.asarray(b) + rng.normal(0, spread, 4) for b in boxes for _ in range(per_box)]
    return np.clip(np.array(out), 0.01, 0.99)


class TestBoxAgreement:
    def test_cells_that_box_one_object_alike_agree(self):
        rng = np.random.default_rng(0)
        coords = _cells(rng, [(0.3, 0.5, 0.2, 0.3), (0.7, 0.5, 0.2, 0.3)], spread=0.001)
        agreement = box_agreement(np.full((len(coords), 2), 0.5), coords)
        np.testing.assert_allclose(agreement, 1.0)

    def test_a_cell_boxing_the_object_a_little_apart_counts_for_less(self):
        """A cell matches at the IoUs up to its box's IoU: at IoU 0.72 five of the ten (0.5-0.7)."""
        coords = np.array([[0.3, 0.5, 0.2, 0.3], [0.3, 0.5, 0.2, 0.3], [0.3, 0.5, 0.2 / 0.72, 0.3]])
        agreement = box_agreement(np.array([[0.5], [0.5], [1.0]]), coords)
        assert agreement[0] == pytest.approx((0.5 + 0.5 + 0.5 * 1.0) / 2.0)
        assert agreement[2] == pytest.approx((1.0 + 0.5 * 1.0) / 2.0)
        np.testing.assert_allclose(box_agreement(np.array([[0.5], [0.5], [1.0]]), coords, match_ious=[0.5]), 1.0)

    def test_a_box_over_two_objects_disagrees_with_the_cells_that_box_each(self):
        """Two objects boxed alike by their cells, and one confident cell boxing the pair as one:
        the pair's box agrees with nothing but itself, and lowers the others' agreement a little."""
        rng = np.random.default_rng(1)
        coords = np.vstack([_cells(rng, [(0.3, 0.5, 0.2, 0.3), (0.6, 0.5, 0.2, 0.3)], spread=0.001),
                            [[0.45, 0.5, 0.5, 0.3]]])
        conf = np.r_[np.full(8, 0.4), 0.9][:, None]
        agreement = box_agreement(conf, coords)
        assert agreement[-1] == pytest.approx(0.9 / (0.9 + 8 * 0.4))
        assert np.all(agreement[:-1] > 0.6) and np.all(agreement[:-1] < 1)

    def test_confidence_weighs_each_cell(self):
        coords = np.array([[0.3, 0.5, 0.2, 0.3], [0.3, 0.5, 0.2, 0.3], [0.45, 0.5, 0.5, 0.3]])  # IoU 0.4
        low = box_agreement(np.array([[0.5], [0.5], [0.1]]), coords)[0]
        high = box_agreement(np.array([[0.5], [0.5], [0.9]]), coords)[0]
        assert low == pytest.approx(1 / 1.1) and high == pytest.approx(1 / 1.9)

    def test_no_cell_gives_no_agreement(self):
        assert box_agreement(np.zeros((0, 2)), np.zeros((0, 4))).shape == (0,)
        assert box_agreement(np.full((2, 1), 0.5), np.full((2, 4), 0.5), rows=[]).shape == (0,)

    def test_rows_are_judged_against_every_cell(self):
        """The agreement of some cells (the kept boxes') is theirs among all the cells, in the order asked."""
        rng = np.random.default_rng(3)
        coords = np.vstack([_cells(rng, [(0.3, 0.5, 0.2, 0.3), (0.5, 0.5, 0.2, 0.3)]), [[0.4, 0.5, 0.45, 0.3]]])
        conf = rng.uniform(0.1, 0.9, (len(coords), 2))
        every = box_agreement(conf, coords)
        assert len(np.unique(every.round(6))) > 2  # the cells differ, so the rows' order shows
        np.testing.assert_allclose(box_agreement(conf, coords, rows=np.array([8, 0, 5])), every[[8, 0, 5]])


class TestDetectorBoxes:
    def test_keeps_what_suppression_keeps_scored_by_agreement_best_first(self):
        """The boxes are Core ML's suppression's; their scores are the confidence times the
        agreement, and the order follows the scores, so a confident box the cells disagree on can
        fall behind a less confident one they agree on."""
        rng = np.random.default_rng(2)
        coords = np.vstack([_cells(rng, [(0.2, 0.5, 0.15, 0.3)]), _cells(rng, [(0.5, 0.5, 0.2, 0.3)]),
                            [[0.6, 0.5, 0.45, 0.3]]])
        conf = np.c_[np.r_[np.full(4, 0.5), np.full(4, 0.45), 0.8], np.zeros(9)]
        kept_confidence, kept, index = non_max_suppression(conf, coords, return_index=True)
        boxes, scores, classes = detector_boxes(conf, coords)
        assert index[0] == 8 and len(boxes) == len(kept)  # suppression: the wide box first
        assert {tuple(b) for b in boxes} == {tuple(b) for b in kept}
        expected = kept_confidence[:, 0] * box_agreement(conf, coords)[index]
        np.testing.assert_allclose(scores, np.sort(expected)[::-1])
        assert boxes[0][0] != pytest.approx(0.6)  # the wide box is no longer first
        assert np.all(np.diff(scores) <= 0) and classes.tolist() == [0] * len(boxes)

    def test_no_box_above_the_threshold(self):
        boxes, scores, classes = detector_boxes(np.full((3, 1), 0.1), np.full((3, 4), 0.5))
        assert boxes.shape == (0, 4) and scores.shape == (0,) and classes.shape == (0,)
