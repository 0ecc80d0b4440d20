import numpy as np
import pytest

from classifier.model import build_classifier
from localize.pseudo_boxes import LocalizeConfig, forward, pseudo_boxes


def _scene(rng, n=6, size=(48, 64)):
    """Images with a red square; class maps that peak on it (class 1) and nowhere for class 0."""
    images, maps, truth = [], [], []
    for _ in range(n):
        image = np.full((*size, 3), 90, np.uint8)
        y, x = rng.integers(4, size[0] - 20), rng.integers(4, size[1] - 20)
        image[y:y + 16, x:x + 16] = (220, 30, 30)
        cm = np.zeros((size[0] // 4, size[1] // 4, 2), np.float32)
        cm[y // 4:(y + 16) // 4, x // 4:(x + 16) // 4, 1] = 5.0
        images.append(image)
        maps.append(cm)
        truth.append([x, y, x + 16, y + 16])
    features = np.stack(maps).astype(np.float16)
    features = np.concatenate([features, features[..., 1:] * 0.5], axis=-1)
    probabilities = np.tile(np.array([[0.1, 0.9]], np.float32), (n, 1))
    return images, probabilities, np.stack(maps), features, np.array(truth, float)


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


class TestPseudoBoxes:
    @pytest.mark.parametrize("method", ["cam", "grabcut", "ddt"])
    def test_boxes_find_the_object(self, method):
        images, p, cm, f, truth = _scene(np.random.default_rng(0))
        out = pseudo_boxes(images, p, cm, f, input_size=(48, 64), config=LocalizeConfig(method=method, threshold=0.5))
        assert all(len(b) == 1 for b in out.boxes)
        ious = [_iou(b[0], t) for b, t in zip(out.boxes, truth, strict=True)]
        assert min(ious) > 0.5, ious
        assert list(out.classes) == [1] * 6 and out.notes == [""] * 6

    def test_known_label_is_used_and_doubt_flagged(self):
        images, p, cm, f, _ = _scene(np.random.default_rng(1), n=2)
        out = pseudo_boxes(images, p, cm, f, known=[0, None], config=LocalizeConfig(min_confidence=0.5))
        assert list(out.classes) == [0, 1]
        # Class 0's map is flat: no box, and the known label's low probability is flagged.
        assert len(out.boxes[0]) == 0
        assert out.notes[0] == "no box: empty heatmap; low confidence (0.10)"

    def test_lengths_must_agree(self):
        images, p, cm, f, _ = _scene(np.random.default_rng(2), n=2)
        with pytest.raises(ValueError, match="one entry per image"):
            pseudo_boxes(images[:1], p, cm, f)

    def test_bad_config(self):
        with pytest.raises(ValueError, match="method must be one of"):
            LocalizeConfig(method="magic")


class TestForward:
    def test_one_pass_gives_all_three(self):
        model = build_classifier(2, (64, 64), filters=(4, 4, 8, 8, 8), weights="none")
        x = np.zeros((3, 64, 64, 3), np.float32)
        p, cm, f = forward(model, x, batch_size=2)
        assert p.shape == (3, 2) and cm.shape == (3, 4, 4, 2) and f.shape == (3, 4, 4, 8)
        assert f.dtype == np.float16
