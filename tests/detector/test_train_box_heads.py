"""Several ``"centres"`` heads trained at once (the shipped box model and its fold models)."""

import dataclasses
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from classifier.backbones.vgg16 import VGG16
from classifier.model import build_classifier
from detector.box_model import build_box_model
from detector.box_train_config import BoxTrainConfig
from detector.box_views import pad_boxes, views_dataset
from detector.train_box_head import train_box_heads
from detector.train_box_model import _shared_rows, train_on_target_sets, train_on_targets

TINY = (4, 4, 8, 8, 8)
LEFT = np.array([[0.25, 0.5, 0.25, 0.25]], np.float32)
RIGHT = np.array([[0.75, 0.5, 0.25, 0.25]], np.float32)


@pytest.fixture(scope="module")
def classifier():
    return build_classifier(2, (128, 128), backbone="vgg16", filters=TINY, weights="none")


def blank_grids(n, seed=0):
    """Feature grids that say nothing of where the object is: a head can only learn its targets' mean."""
    return np.random.default_rng(seed).normal(0, 0.1, (n, 8, 8, 8)).astype(np.float32)


def two_object_grids(n, seed=0):
    """Grids with an object under each of LEFT (channel 0 lit) and RIGHT (channel 1 lit)."""
    grids = blank_grids(n, seed)
    grids[:, 3:5, 1:3, 0] += 3.0
    grids[:, 3:5, 5:7, 1] += 3.0
    return grids


def peak_box(head, features):
    scores, boxes = head.predict(features, verbose=0)
    return boxes[np.arange(len(boxes)), np.argmax(scores, axis=1)]


class TestTrainBoxHeads:
    def test_each_head_learns_only_the_photos_it_weighs(self, classifier):
        # Every grid holds two objects (channel 0 lit on the left, channel 1 on the right); half the
        # photos' box is the left one, half the right one. Head 0 weighs only the left boxes, head
        # 1 only the right ones: each must find its own side.
        features = two_object_grids(64)
        boxes = pad_boxes([LEFT] * 32 + [RIGHT] * 32)
        weights = np.zeros((64, 3), np.float32)
        weights[:32, 0] = weights[32:, 1] = weights[:, 2] = 1
        config = BoxTrainConfig(reduce_filters=4, epochs=20, crops=0, flip=False, learning_rate=1e-2)
        heads = [build_box_model(classifier, config, feature_layer=VGG16.feature_layer)[1] for _ in range(3)]
        histories = train_box_heads(heads, features, boxes, weights, config, verbose=0)
        assert [len(h["loss"]) for h in histories] == [20, 20, 20]
        assert all(h["loss"][-1] < h["loss"][0] for h in histories)
        test = two_object_grids(8, seed=1)
        left, right = peak_box(heads[0], test), peak_box(heads[1], test)
        np.testing.assert_allclose(left[:, 0], 0.25, atol=0.07)
        np.testing.assert_allclose(right[:, 0], 0.75, atol=0.07)

    def test_a_head_without_a_box_is_refused(self, classifier):
        config = BoxTrainConfig(reduce_filters=4, epochs=1, crops=0)
        heads = [build_box_model(classifier, config, feature_layer=VGG16.feature_layer)[1] for _ in range(2)]
        weights = np.array([[1, 0], [1, 0]], np.float32)
        with pytest.raises(ValueError, match="box head 1"):
            train_box_heads(heads, blank_grids(2), pad_boxes([LEFT, RIGHT]), weights, config, verbose=0)

    @pytest.mark.parametrize("config", [BoxTrainConfig(head="cells"), BoxTrainConfig(paste=1)])
    def test_needs_the_centres_head_without_pasted_views(self, classifier, config):
        with pytest.raises(ValueError, match="paste=0"):
            train_box_heads([], blank_grids(2), pad_boxes([LEFT, RIGHT]), np.ones((2, 0)), config)
        with pytest.raises(ValueError, match="without pasted views"):
            views_dataset(blank_grids(2), pad_boxes([LEFT, RIGHT]), config, weights=np.ones((2, 1)))

    def test_weights_must_match_the_photos(self):
        with pytest.raises(ValueError, match=r"weights must be \(N, K\)"):
            views_dataset(blank_grids(3), pad_boxes([LEFT] * 3), BoxTrainConfig(), weights=np.ones((2, 1)))


class TestTargetSets:
    def test_shared_rows_keep_each_sets_rows_repeats_and_targets(self):
        # Row 0: a hand box in set 0, its held-out pseudo box in set 1; row 1: the same pseudo box
        # in both; row 2: no box in set 1.
        set0 = ([RIGHT, LEFT, LEFT], {0: RIGHT})
        set1 = ([LEFT, LEFT, np.zeros((0, 4), np.float32)], {})
        rows, boxes, counts = _shared_rows([set0, set1], 3, 3)
        assert rows.tolist() == [0, 0, 1, 2]
        np.testing.assert_array_equal(boxes[0], RIGHT)
        np.testing.assert_array_equal(boxes[1], LEFT)
        assert counts.tolist() == [[3, 0], [0, 1], [1, 1], [1, 0]]

    def test_the_shipped_model_trains_alone_and_the_folds_together(self, classifier, caplog):
        trained = SimpleNamespace(model=classifier, feature_layer=VGG16.feature_layer)  # what training reads
        features = blank_grids(24)
        targets = [LEFT] * 12 + [RIGHT] * 12
        held_out = list(targets)
        held_out[0] = RIGHT
        sets = [(targets, {0: LEFT, 12: RIGHT}), (held_out, {12: RIGHT}), (targets, {0: LEFT})]
        config = BoxTrainConfig(reduce_filters=4, epochs=2, crops=0)
        with caplog.at_level(logging.INFO, logger="detector.train_box_head"):
            out = train_on_target_sets(trained, features, sets, config)
        assert any("2 box heads together" in r.getMessage() for r in caplog.records)
        assert len(out) == 3
        for box_model, predicted, history in out:
            assert len(predicted) == 24 and len(history["loss"]) == 2
            assert box_model.output_names[-1] == "boxes"
        assert len({id(model) for model, _, _ in out}) == 3
        # The shipped model is the one train_on_targets trains: the same boxes to the bit.
        _, alone, _ = train_on_targets(trained, features, *sets[0], config)
        for (b, s, d), (b2, s2, d2) in zip(out[0][1], alone, strict=True):
            np.testing.assert_array_equal(b, b2)
            np.testing.assert_array_equal(s, s2)
            np.testing.assert_array_equal(d, d2)

    def test_fold_sets_that_share_few_rows_train_one_after_another(self, classifier):
        # Every photo's target differs between the two fold sets: together they would step through
        # twice the rows of either, so each trains alone, as train_on_targets trains it.
        trained = SimpleNamespace(model=classifier, feature_layer=VGG16.feature_layer)
        features = blank_grids(8)
        sets = [([LEFT] * 8, {}), ([LEFT] * 8, {}), ([RIGHT] * 8, {})]
        config = BoxTrainConfig(reduce_filters=4, epochs=2, crops=0)
        out = train_on_target_sets(trained, features, sets, config)
        for (_, predicted, _), (targets, hand) in zip(out[1:], sets[1:], strict=True):
            _, alone, _ = train_on_targets(trained, features, targets, hand, config)
            for (b, *_), (b2, *_) in zip(predicted, alone, strict=True):
                np.testing.assert_array_equal(b, b2)

    @pytest.mark.parametrize("fold_targets", [[LEFT] * 12 + [RIGHT] * 12, [RIGHT] * 24],
                             ids=["together", "one after another"])
    def test_each_model_starts_from_its_own_start_model(self, classifier, fold_targets):
        # A later self-training round starts each set's model from the round before's model of the
        # same set: with a learning rate too small to move them, the weights are the start models'.
        trained = SimpleNamespace(model=classifier, feature_layer=VGG16.feature_layer)
        features = two_object_grids(24)
        targets = [LEFT] * 12 + [RIGHT] * 12
        sets = [(targets, {}), (targets, {}), (fold_targets, {})]
        config = BoxTrainConfig(reduce_filters=4, epochs=3, crops=0, learning_rate=1e-2)
        first = train_on_target_sets(trained, features, sets, config)
        still = dataclasses.replace(config, epochs=1, learning_rate=1e-12)
        warm = train_on_target_sets(trained, features, sets, still, start=[m for m, _, _ in first])
        # Without a start model a set's model starts from a new build's weights, far from the start models'.
        cold = [build_box_model(classifier, config, feature_layer=VGG16.feature_layer)[0] for _ in sets]
        for (before, _, _), (after, _, _), fresh in zip(first, warm, cold, strict=True):
            start = np.concatenate([w.ravel() for w in before.get_weights()])
            np.testing.assert_allclose(np.concatenate([w.ravel() for w in after.get_weights()]), start, atol=1e-6)
            assert not np.allclose(np.concatenate([w.ravel() for w in fresh.get_weights()]), start, atol=1e-3)
        with pytest.raises(ValueError, match="one model per set"):
            train_on_target_sets(trained, features, sets, still, start=[first[0][0]])
