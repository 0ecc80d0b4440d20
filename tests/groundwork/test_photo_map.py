"""photo_map: results in the items' order, here and on a local Ray; Ray imported only when asked for."""

import subprocess
import sys

import pytest

from groundwork.photo_map import RayOptions, RayUnavailable, photo_map


class Square:
    """A work: one result per item, and the chunk it was computed in (to see the chunks)."""

    def __init__(self):
        self.calls = []

    def __call__(self, chunk):
        self.calls.append(list(chunk))
        return [(x * x, tuple(chunk)) for x in chunk]


class TestLocal:
    def test_results_in_order_chunk_by_chunk(self):
        work = Square()
        out = list(photo_map(work, range(7), chunk_size=3, progress=False))
        assert [r[0] for r in out] == [x * x for x in range(7)]
        assert work.calls == [[0, 1, 2], [3, 4, 5], [6]]

    def test_a_work_returning_too_few_results_is_an_error(self):
        with pytest.raises(ValueError, match="returned 1 results for 2 items"):
            list(photo_map(lambda chunk: chunk[:1], [1, 2], chunk_size=2, progress=False))

    @pytest.mark.parametrize("size", [0, -1, 1.5])
    def test_chunk_size_is_checked(self, size):
        with pytest.raises(ValueError, match="chunk_size"):
            list(photo_map(Square(), [1], chunk_size=size, progress=False))

    def test_nothing_to_do_gives_nothing(self):
        assert list(photo_map(Square(), [], progress=False)) == []


class TestRayOptions:
    @pytest.mark.parametrize("kwargs, pattern", [
        ({"address": ""}, "address"), ({"workers": 0}, "workers"), ({"cpus_per_worker": 0}, "cpus_per_worker")])
    def test_bad_values_are_named(self, kwargs, pattern):
        with pytest.raises(ValueError, match=pattern):
            RayOptions(**kwargs)

    def test_without_ray_installed_the_message_says_how_to_install_it(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
        with pytest.raises(RayUnavailable, match=r"pip install 'boxstrap\[ray\]'"):
            list(photo_map(Square(), [1], ray=RayOptions(), progress=False))

    def test_an_unreachable_cluster_is_a_clear_error_not_a_hang(self):
        pytest.importorskip("ray")
        with pytest.raises(RayUnavailable, match=r"cannot reach a cluster at '127\.0\.0\.1:1'"):
            list(photo_map(Square(), [1], ray=RayOptions(address="127.0.0.1:1"), progress=False))


def test_commands_without_ray_do_not_import_it():
    code = ("import sys; import boxstrap.cli, localize.localize_photos, detector.detect_photos, classifier.predict, "
            "detector.train_box_model, boxstrap.commands.predict; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import the tests
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_on_a_local_ray_the_results_equal_the_local_ones(local_ray):
    here = list(photo_map(Square(), range(11), chunk_size=4, progress=False))
    there = photo_map(Square(), range(11), chunk_size=4, ray=RayOptions(workers=2), progress=False)
    assert list(there) == here
    # The same chunks as here: each result came from the chunk the local run made.
    assert [r[1] for r in here] == [tuple(range(0, 4))] * 4 + [tuple(range(4, 8))] * 4 + [tuple(range(8, 11))] * 3
    assert local_ray.is_initialized()  # a Ray this process had started is left running


class DieOnce:
    """A work whose process dies (as a machine going away would) on its first chunk only."""

    def __init__(self, marker):
        self.marker = marker

    def __call__(self, chunk):
        import os

        if not self.marker.exists():
            self.marker.write_text("died")
            os._exit(1)
        return [x + 1 for x in chunk]


def test_a_worker_that_dies_is_replaced_and_its_chunk_rerun(local_ray, tmp_path):
    out = list(photo_map(DieOnce(tmp_path / "died"), range(6), chunk_size=2, ray=RayOptions(workers=1),
                         progress=False))
    assert out == [x + 1 for x in range(6)]
    assert (tmp_path / "died").read_text() == "died"  # it did die once


class Refuses:
    def __call__(self, chunk):
        raise ValueError("model.keras here holds another model")


def test_a_works_error_on_a_worker_is_raised_here_as_itself(local_ray):
    with pytest.raises(ValueError, match="holds another model") as caught:
        list(photo_map(Refuses(), [1, 2, 3], chunk_size=2, ray=RayOptions(workers=1), progress=False))
    assert any("on the Ray worker at" in note for note in caught.value.__notes__)
