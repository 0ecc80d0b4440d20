"""The pure parts of benchmarks/decoding.py: nested boxes, the mirrored photo's cells, the decoding."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "decoding.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("decoding_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(SCRIPT.parent))  # benchmarks import their shared modules
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(SCRIPT.parent))


# cx, cy, w, h: a large box, a small one inside it (IoU 0.25 with it), one elsewhere.
BOXES = np.array([[0.5, 0.5, 0.4, 0.4], [0.45, 0.5, 0.2, 0.2], [0.9, 0.9, 0.1, 0.1]])


def test_nested_drops_a_box_inside_a_more_confident_one(bench):
    assert bench.nested(BOXES, np.array([0.9, 0.8, 0.7]), 0.5, 0.3).tolist() == [False, True, False]
    # The container less confident, or under the confidence threshold: nothing dropped.
    assert not bench.nested(BOXES, np.array([0.7, 0.8, 0.7]), 0.5, 0.3).any()
    assert not bench.nested(BOXES, np.array([0.2, 0.1, 0.7]), 0.5, 0.3).any()
    # Half the small box inside: dropped at a share of 0.5, kept at 0.6.
    half_out = np.array([[0.5, 0.5, 0.4, 0.4], [0.7, 0.5, 0.2, 0.2]])
    assert bench.nested(half_out, np.array([0.9, 0.8]), 0.5, 0.3).tolist() == [False, True]
    assert bench.nested(half_out, np.array([0.9, 0.8]), 0.6, 0.3).tolist() == [False, False]


def test_decode_with_nested_boxes_keeps_fewer_than_iou_alone(bench):
    confidence = np.array([[0.9], [0.8], [0.7]])
    plain, _ = bench.decode(confidence, BOXES, {"confidence": 0.3, "iou": 0.45})
    nested, scores = bench.decode(confidence, BOXES, {"confidence": 0.3, "iou": 0.45, "inside": 0.5})
    assert len(plain) == 3  # IoU 0.25 < 0.45: Core ML's suppression keeps the box inside
    np.testing.assert_allclose(nested, BOXES[[0, 2]])
    np.testing.assert_allclose(scores, [0.9, 0.7])


def test_mirror_averages_with_the_mirrored_photos_cells(bench):
    rng = np.random.default_rng(0)
    grid = (2, 3)
    confidence = rng.uniform(0.4, 1.0, (6, 2))
    coordinates = np.column_stack([rng.uniform(0.2, 0.8, (6, 2)), rng.uniform(0.05, 0.1, (6, 2))])
    # What the model would give the mirrored photo of a photo it sees symmetrically: the same
    # cells mirrored; averaging then changes nothing.
    mirrored = bench.unmirror(confidence, coordinates, grid)
    np.testing.assert_allclose(bench.unmirror(*mirrored, grid)[1], coordinates)
    variant = {"confidence": 0.3, "iou": 0.45}
    plain = bench.decode(confidence, coordinates, variant)
    both = bench.decode(confidence, coordinates, variant | {"mirror": 1}, mirrored, grid)
    np.testing.assert_allclose(both[0], plain[0])
    np.testing.assert_allclose(both[1], plain[1])
    # A mirrored photo that disagrees moves the boxes halfway towards its own.
    shifted = (mirrored[0], mirrored[1] + [0.1, 0, 0, 0])
    boxes, _ = bench.decode(confidence, coordinates, variant | {"mirror": 1}, shifted, grid)
    np.testing.assert_allclose(np.sort(boxes[:, 0]), np.sort(coordinates[:, 0] - 0.05))


def test_average_outputs_is_one_ensemble_of_the_models(bench):
    rng = np.random.default_rng(1)

    def photo():
        return (rng.dirichlet([1, 1]), rng.uniform(0, 1, (6, 2)), rng.uniform(0, 1, (6, 4)), (4, 6),
                (rng.uniform(0, 1, (6, 2)), rng.uniform(0, 1, (6, 4))))

    a, b, c = photo(), photo(), photo()
    mean = bench.average_outputs([a, b, c])
    for k in range(3):
        np.testing.assert_allclose(mean[k], (a[k] + b[k] + c[k]) / 3)
    assert mean[3] == (4, 6)
    for k in range(2):
        np.testing.assert_allclose(mean[4][k], (a[4][k] + b[4][k] + c[4][k]) / 3)
    # One model is its own average.
    assert bench.average_outputs([a]) is a
