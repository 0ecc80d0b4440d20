"""``PhotoWork``: a model's pass over a chunk of photos, the same here and on a Ray worker.

A command that runs a network over many photos hands a :class:`PhotoWork` to
:func:`groundwork.photo_map.photo_map`. The work reads each photo where it is
(:func:`datasets.tf_input.read_rgb`: a path every worker can see), runs :meth:`PhotoWork.run`
on the readable ones and returns one result per photo: the subclass's, or :class:`Skipped` with
the reason a photo could not be read. :func:`run_photo_work` runs a work over photos and sorts
the results into the readable photos' and the skipped ones (each named in a warning).

A work pickles without its model: a Ray worker loads the model from ``directory`` once, on its
first chunk, and refuses a file whose SHA-256 differs from the one the caller loaded (a cluster
machine with another copy of the model). In this process the caller's loaded model is reused.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.photo_map import RayOptions, photo_map
from groundwork.tensorflow_startup import start_tensorflow

__all__ = ["PhotoWork", "Skipped", "run_photo_work"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skipped:
    """A photo that could not be read: ``reason`` names the file and the problem."""

    reason: str


class PhotoWork:
    """Base of the per-chunk passes: subclasses set :meth:`load` and :meth:`run`.

    Parameters
    ----------
    directory : path
        The model directory (as the caller and every worker see it).
    model_sha256 : str
        The SHA-256 of the model file the caller loaded.
    loaded : object, optional
        That loaded model, reused in this process (never pickled).
    """

    def __init__(self, directory, model_sha256: str, loaded: Any = None) -> None:
        self.directory = Path(directory)
        self.model_sha256 = model_sha256
        self._loaded = loaded

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._loaded = None

    def load(self, directory: Path) -> Any:
        """The model read from ``directory`` (with a ``model_sha256`` attribute)."""
        raise NotImplementedError

    def run(self, model: Any, images: list[np.ndarray], items: list[Any]) -> list[Any]:
        """One result per image (upright RGB uint8), for a batch of readable photos (and their items)."""
        raise NotImplementedError

    @property
    def model(self) -> Any:
        if self._loaded is None:
            # On a Ray worker TensorFlow starts here: its C++ start-up lines go to the worker's log at
            # DEBUG, not to the terminal of the run (where Ray forwards a worker's stderr).
            start_tensorflow()
            loaded = self.load(self.directory)
            if self.model_sha256 and loaded.model_sha256 != self.model_sha256:
                raise ValueError(f"{self.directory} on this worker holds another model (SHA-256 "
                                 f"{loaded.model_sha256[:12]}) than the one the run started with "
                                 f"({self.model_sha256[:12]}); give every machine the same model folder.")
            self._loaded = loaded
        return self._loaded

    def __call__(self, items: list[Any]) -> list[Any]:
        """Read every item's photo (``item.path``, or the item itself when it is a path) and run."""
        from datasets.tf_input import read_rgb

        results: list[Any] = [None] * len(items)
        images, where = [], []
        for i, item in enumerate(items):
            try:
                images.append(read_rgb(getattr(item, "path", item)))
                where.append(i)
            except ValueError as error:
                results[i] = Skipped(str(error))
            except FileNotFoundError as error:  # gone since it was listed, or not shared with this machine
                results[i] = Skipped(f"{error} (looked for on {socket.gethostname()})")
        if images:
            for i, result in zip(where, self.run(self.model, images, [items[i] for i in where]), strict=True):
                results[i] = result
        return results


def run_photo_work(work: PhotoWork, items: Sequence[Any], *, batch_size: int = 8, ray: RayOptions | None = None,
                   progress: bool = True, desc: str = "photos", source: Any = None
                   ) -> tuple[list[Any], list[Any], list[dict[str, str]]]:
    """Run ``work`` over ``items`` (:func:`groundwork.photo_map.photo_map`, chunks of ``batch_size``).

    Returns
    -------
    readable : list
        The items whose photo was read, in order.
    results : list
        ``work``'s result for each of them.
    skipped : list of dict
        ``image`` (the item's ``name``), ``file`` and ``reason`` per unreadable photo, each also
        logged as a warning.

    Raises
    ------
    ValueError
        If no photo at all can be read (naming the first reason; ``source`` names the folder).
    """
    readable, results, skipped = [], [], []
    for item, result in zip(items, photo_map(work, items, chunk_size=batch_size, ray=ray, progress=progress,
                                             desc=desc), strict=True):
        if isinstance(result, Skipped):
            log.warning("%s; skipped", result.reason)
            skipped.append({"image": getattr(item, "name", str(item)), "file": str(getattr(item, "path", item)),
                            "reason": result.reason})
        else:
            readable.append(item)
            results.append(result)
    if not readable:
        raise ValueError(f"images: none of the {len(items)} image(s) under {source} could be read; the first: "
                         f"{skipped[0]['reason']}")
    return readable, results, skipped
