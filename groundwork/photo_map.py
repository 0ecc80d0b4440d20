"""``photo_map``: one function over many photos, in this process or on a Ray cluster, same results.

The photo passes (``localize``, ``predict``, ``detect``, the box model's descriptors) are
embarrassingly parallel: each photo's forward passes are independent of every other's. A *work*
is a picklable callable that takes a chunk of items (photos to read where they are) and returns
one result per item; it loads its model itself, once per process. :func:`photo_map` runs it over
``items`` chunk by chunk and yields the results in the items' order:

- without ``ray``: here, chunk after chunk (Ray is not imported);
- with ``ray`` (:class:`RayOptions`): on Ray Data (``map_batches`` over the chunks with a pool of
  actors, each holding one copy of the work and so one loaded model). The chunks are the same as
  the local path's, so every forward pass sees the same batch; results come back to the caller,
  which writes its files as a local run does. Ray retries the chunks of a worker that dies.

The caller's progress bar counts photos as their chunks come back (one bar over all photos).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from groundwork.progress import progress_bar

__all__ = ["LOCAL", "RayOptions", "RayUnavailable", "photo_map"]

log = logging.getLogger(__name__)

LOCAL = "local"
START_ONE = "Start one with `ray start --head` (see the README), or pass --ray alone for this machine."
RAY_MISSING = ("--ray needs Ray, which is not installed: pip install 'boxstrap[ray]' (on every machine of "
               "the cluster, the same versions as here).")


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster asked for cannot be reached."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a :func:`photo_map` runs on Ray.

    Attributes
    ----------
    address : str
        ``"local"``: a Ray instance started on this machine for the run (stopped after it);
        otherwise a running cluster's address (``HOST:6379`` of ``ray start --head``, or ``auto``).
    workers : int or None
        Actors, each loading the model once; None = the cluster's CPUs // ``cpus_per_worker``.
    cpus_per_worker : int
        CPUs Ray reserves per actor; its TensorFlow uses as many threads.
    """

    address: str = LOCAL
    workers: int | None = None
    cpus_per_worker: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or not self.address.strip():
            raise ValueError(f"ray address must be 'local' or a cluster address. Received: {self.address!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ValueError(f"ray workers must be an int >= 1 or None. Received: {self.workers!r}")
        if not isinstance(self.cpus_per_worker, int) or self.cpus_per_worker < 1:
            raise ValueError(f"ray cpus_per_worker must be an int >= 1. Received: {self.cpus_per_worker!r}")


def photo_map(work: Callable[[list[Any]], list[Any]], items: Sequence[Any], *, chunk_size: int = 8,
              ray: RayOptions | None = None, progress: bool = True, desc: str = "photos") -> Iterator[Any]:
    """Yield ``work``'s result for every item, in the items' order.

    Parameters
    ----------
    work : callable
        ``work(chunk) -> results``, one result per item of the chunk (a list of at most
        ``chunk_size`` items). Picklable when ``ray`` is given.
    items : sequence
        What ``work`` reads (paths every Ray worker can see, with ``ray``).
    chunk_size : int
        Items per call of ``work`` (a forward pass's batch).
    ray : RayOptions or None
        Run on Ray (see the module text); None runs here.
    progress : bool
        One progress bar over the items (on a terminal only).
    desc : str
        The bar's label.

    Raises
    ------
    RayUnavailable
        With ``ray`` when Ray is not installed or the cluster cannot be reached.
    ValueError
        If ``chunk_size`` < 1 or ``work`` returns another number of results than it was given items.
    """
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1. Received: {chunk_size!r}")
    items = list(items)
    chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
    with progress_bar(total=len(items), desc=desc, unit="img", enabled=progress) as bar:
        if ray is None:
            for chunk in chunks:
                results = _checked(work(chunk), chunk)
                bar.update(len(chunk))
                yield from results
        elif chunks:  # nothing to do starts no Ray
            yield from _ray_map(work, chunks, ray, bar.update)


def _checked(results: list[Any], chunk: list[Any]) -> list[Any]:
    if len(results) != len(chunk):
        raise ValueError(f"work returned {len(results)} results for {len(chunk)} items")
    return results


def _ray_map(work, chunks: list[list[Any]], options: RayOptions, update: Callable[[int], Any]) -> Iterator[Any]:
    ray = _import_ray()
    started = _connect(ray, options)
    try:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the caller's bar is the one bar
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        # ... and Ray Data's warning that its bars are off would only say so
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = options.workers or max(1, cpus // options.cpus_per_worker)
        log.info("ray: %d chunk(s) of photos on %d worker(s) x %d CPU (cluster: %d CPUs)", len(chunks), workers,
                 options.cpus_per_worker, cpus)
        # Items and results cross as pickled bytes (Arrow keeps bytes as they are): Ray itself pickles
        # what it sends, and both ends are this program.
        rows = ray.data.from_items([{"chunk": k, "items": ray.cloudpickle.dumps(chunk)}
                                    for k, chunk in enumerate(chunks)], override_num_blocks=max(1, len(chunks)))
        threads = str(options.cpus_per_worker)
        results = rows.map_batches(
            _Actor, fn_constructor_kwargs={"work": work}, batch_size=1, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers), num_cpus=options.cpus_per_worker,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "TF_NUM_INTRAOP_THREADS": threads,
                                      "TF_NUM_INTEROP_THREADS": "1"}})
        waiting: dict[int, list[Any]] = {}
        following = 0
        for row in results.iter_rows():
            k = int(row["chunk"])
            results_k = pickle.loads(row["results"])
            if isinstance(results_k, _Failed):  # the work's own error, raised here as a local run raises it
                results_k.error.add_note(f"(on the Ray worker at {results_k.host})")
                raise results_k.error
            waiting[k] = _checked(results_k, chunks[k])
            update(len(chunks[k]))
            while following in waiting:
                yield from waiting.pop(following)
                following += 1
        if following != len(chunks):
            raise RuntimeError(f"ray returned {following} of {len(chunks)} chunks of photos")
    finally:
        if started:
            ray.shutdown()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable(RAY_MISSING) from None
    return ray


def _connect(ray, options: RayOptions) -> bool:
    """Join (or, for ``local``, start) Ray unless this process already has; True if we did."""
    if ray.is_initialized():
        return False
    common = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
    if options.address != LOCAL:
        _probe(options.address)  # Ray itself waits minutes for an address that does not answer
    try:
        if options.address == LOCAL:
            ray.init(address="local", num_cpus=os.cpu_count(), **common)
        else:
            ray.init(address=options.address, **common)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise RayUnavailable(f"ray: cannot reach a cluster at {options.address!r}: {error}. {START_ONE}") from None
    return True


def _probe(address: str, timeout: float = 5.0) -> None:
    """Refuse at once a ``HOST:PORT`` (or ``ray://HOST:PORT``) where nothing answers within ``timeout``."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like: Ray finds the cluster (and says so quickly when there is none)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise RayUnavailable(f"ray: cannot reach a cluster at {address!r}: nothing answers there ({error}). "
                             f"{START_ONE}") from None


@dataclass(frozen=True)
class _Failed:
    error: Exception
    host: str


class _Actor:
    """One Ray actor: holds a copy of the work (so one loaded model) and runs it on chunks."""

    def __init__(self, work) -> None:
        self.work = work

    def __call__(self, batch: dict) -> dict:
        import numpy as np
        from ray import cloudpickle

        results = []
        for packed in batch["items"]:
            items = pickle.loads(packed)
            try:
                out = _checked(self.work(items), items)
            except Exception as error:  # sent back whole: the caller sees the error a local run raises
                import socket

                out = _Failed(error, socket.gethostname())
            results.append(cloudpickle.dumps(out))
        return {"chunk": np.asarray(batch["chunk"], np.int64), "results": np.array(results, dtype=object)}
