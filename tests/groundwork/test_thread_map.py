import threading

import pytest

from groundwork.thread_map import available_cores, thread_imap, thread_map


def test_results_keep_the_items_order_on_several_threads():
    seen = set()

    def slow_square(x):
        seen.add(threading.get_ident())
        threading.Event().wait(0.002 * (10 - x))  # later items finish first
        return x * x

    assert thread_map(slow_square, range(10), workers=3) == [x * x for x in range(10)]
    assert len(seen) > 1


def test_one_worker_runs_here():
    threads = set()
    assert thread_map(lambda x: threads.add(threading.get_ident()) or x, [1, 2, 3], workers=1) == [1, 2, 3]
    assert threads == {threading.get_ident()}


def test_first_failure_in_item_order_is_raised():
    def fail_on_odd(x):
        threading.Event().wait(0.01 if x == 1 else 0.0)  # item 3 fails first, item 1 is raised
        if x % 2:
            raise ValueError(f"item {x}")
        return x

    with pytest.raises(ValueError, match="item 1"):
        thread_map(fail_on_odd, range(6), workers=2)


def test_empty_and_bad_workers():
    assert thread_map(str, [], workers=4) == []
    with pytest.raises(ValueError, match="workers must be >= 1"):
        thread_map(str, [1], workers=0)
    assert available_cores() >= 1


def test_cores_at_most_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cores() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert available_cores() >= 1


def test_thread_imap_yields_in_order_as_results_come():
    done = []

    def slow(x):
        threading.Event().wait(0.002 * (6 - x))
        done.append(x)
        return -x

    results = thread_imap(slow, range(6), workers=3)
    assert next(results) == 0  # the first item's result, whichever call finished first
    assert list(results) == [-1, -2, -3, -4, -5]
    assert sorted(done) == list(range(6))
    with pytest.raises(ValueError, match="workers must be >= 1"):
        next(thread_imap(str, [1], workers=0))
