"""``thread_map``: one function over many items on every core of this machine, results in order.

The per-photo loops after the classifier pass (GrabCut, boxing a map at a hundred thresholds)
spend their time inside OpenCV and numpy, which release the GIL, so threads run them side by
side without copying the photos into other processes. Each call must not depend on the calls
before it: GrabCut seeds its own k-means per call (``cv2.setRNGSeed`` is per thread), so a
photo's box is the same on any thread and in any order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["available_cores", "thread_imap", "thread_map"]

T = TypeVar("T")


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the system tells it, at most
    ``OMP_NUM_THREADS`` when that is set (as :mod:`groundwork.photo_map` sets it for each Ray
    worker, so that workers sharing a machine do not each take every core)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        cores = min(cores, int(limit))
    return max(1, cores)


def thread_map(fn: Callable[[Any], T], items: Iterable[Any], *, workers: int | None = None) -> list[T]:
    """``[fn(item) for item in items]``, computed on ``workers`` threads (default: every core).

    The results keep the items' order. The first item whose call raises (in that order) raises
    here; calls not started by then are cancelled.

    Examples
    --------
    >>> thread_map(lambda x: x * x, range(5), workers=2)
    [0, 1, 4, 9, 16]
    """
    return list(thread_imap(fn, items, workers=workers))


def thread_imap(fn: Callable[[Any], T], items: Iterable[Any], *, workers: int | None = None) -> Iterator[T]:
    """:func:`thread_map` yielding each result as soon as it and those before it are done (for a
    progress bar over the items); the same order, failures and cancelling.

    Examples
    --------
    >>> next(thread_imap(lambda x: x + 1, [1, 2], workers=2))
    2
    """
    items = list(items)
    workers = available_cores() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1. Received: {workers}")
    if workers == 1 or len(items) < 2:
        yield from (fn(item) for item in items)
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        yield from pool.map(fn, items)
