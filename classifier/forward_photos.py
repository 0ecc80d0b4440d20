"""``forward_photos``: the classifier's localizing pass over photos, here or on Ray.

:func:`forward_photos` reads the photos, runs :class:`classifier.multi_view_maps.ForwardPass` on
them chunk by chunk through :func:`groundwork.photo_map.photo_map` (so ``--ray`` spreads the
chunks over a cluster), and gathers the results in the photos' order: the readable photos, their
probabilities, class maps and descriptors, and the unreadable ones listed. ``localize`` and the
box model's descriptors read photos through it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifier.photo_work import PhotoWork, run_photo_work
from classifier.trained_model import TrainedModel, load_trained_model
from groundwork.photo_map import RayOptions

__all__ = ["ForwardOutputs", "PhotoBoxer", "forward_photos"]

#: What a pass may also run on each chunk where its maps were made (on its Ray worker with ``ray``):
#: called as ``boxer(items, images, probabilities, class_maps, features, map_features)``, it returns
#: one picklable value per photo (``localize``'s pseudo boxes of the photo). It must be picklable.
PhotoBoxer = Callable[..., Sequence[Any]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForwardOutputs:
    """The readable items, their photos, :func:`classifier.multi_view_maps.forward`'s arrays and, with a
    ``boxes`` callable, its value for each readable photo (``boxed``)."""

    items: list[Any]
    images: list[np.ndarray]
    probabilities: np.ndarray
    class_maps: np.ndarray
    features: np.ndarray
    map_features: np.ndarray
    skipped: list[dict[str, str]]
    boxed: list[Any] | None = None


class _ForwardWork(PhotoWork):
    def __init__(self, trained: TrainedModel, *, scales: Sequence[float], flip: bool, keep_images: bool,
                 boxes: PhotoBoxer | None) -> None:
        super().__init__(trained.directory, trained.model_sha256, loaded=trained)
        self.scales, self.flip, self.keep_images, self.boxes = tuple(scales), flip, keep_images, boxes
        self._pass = None

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._pass = None

    def load(self, directory):
        return load_trained_model(directory)

    def run(self, model: TrainedModel, images: list[np.ndarray], items) -> list[tuple]:
        from classifier.multi_view_maps import ForwardPass

        pre = model.preprocessing
        if self._pass is None:
            self._pass = ForwardPass(model.model, feature_layer=model.feature_layer, input_size=pre.input_size,
                                     scales=self.scales, flip=self.flip, preprocessing=pre,
                                     map_layer=model.map_layer, size_multiple=model.backbone.size_multiple)
        x = np.stack([pre.apply(pre.resize(image)) for image in images]).astype(np.float32)
        arrays = self._pass(x, images)
        boxed = None if self.boxes is None else self.boxes(items, images, *arrays)
        return [(image if self.keep_images else None, *(a[i] for a in arrays), None if boxed is None else boxed[i])
                for i, image in enumerate(images)]


def forward_photos(trained: TrainedModel, items: Sequence[Any], *, scales: Sequence[float] = (1.0,),
                   flip: bool = False, batch_size: int = 8, ray: RayOptions | None = None,
                   keep_images: bool = True, progress: bool = True, source: Any = None,
                   boxes: PhotoBoxer | None = None, cache: Path | None = None) -> ForwardOutputs:
    """The localizing pass over ``items`` (each with a ``path``; ``name`` names it in ``skipped``).

    Photos that cannot be read are left out and listed (:func:`classifier.photo_work.run_photo_work`,
    which also raises ValueError when none can be). With ``ray`` the chunks of ``batch_size``
    photos run on Ray workers (the same chunks as here, so the same batches). ``keep_images=False``
    returns no photos (``images`` holds None per item): less to send back when they are not needed.
    With ``boxes`` (a :data:`PhotoBoxer`) every chunk is also boxed in its pass (``boxed``).

    With ``cache`` (a path without suffix: ``cache.npz`` and ``cache.json`` are written beside each
    other) the pass's arrays are kept, and a later call for the same photos (paths, sizes and
    modification times), model and views reads them back instead of running the network: a rerun
    with other hand boxes (or corrected ones) costs no classifier pass.
    """
    key = _cache_key(trained, items, scales, flip) if cache is not None else None
    cached = _read_cache(cache, key) if cache is not None else None
    if cached is not None:
        return _from_cache(cached, items, keep_images=keep_images, boxes=boxes)
    work = _ForwardWork(trained, scales=scales, flip=flip, keep_images=keep_images, boxes=boxes)
    readable, results, skipped = run_photo_work(work, items, batch_size=batch_size, ray=ray, progress=progress,
                                                desc="classifier pass", source=source)
    probabilities, class_maps, features, map_features = (np.stack(column) for column in
                                                         zip(*(r[1:5] for r in results), strict=True))
    boxed = None if boxes is None else [r[5] for r in results]
    if cache is not None:
        _write_cache(cache, key, [it.name for it in readable], skipped, probabilities, class_maps, features,
                     map_features)
    return ForwardOutputs(readable, [r[0] for r in results], probabilities, class_maps, features, map_features,
                          skipped, boxed)


def _cache_key(trained: TrainedModel, items: Sequence[Any], scales, flip: bool) -> dict:
    photos = []
    for item in items:
        try:
            stat = Path(item.path).stat()
            photos.append([item.name, str(item.path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            photos.append([item.name, str(item.path), None, None])
    return {"model_sha256": trained.model_sha256, "map_layer": trained.map_layer, "scales": [float(v) for v in scales],
            "flip": bool(flip), "photos": photos}


def _read_cache(cache: Path, key: dict) -> dict | None:
    try:
        saved = json.loads(cache.with_suffix(".json").read_text(encoding="utf-8"))
        if saved.get("key") != json.loads(json.dumps(key)):
            return None
        with np.load(cache.with_suffix(".npz")) as arrays:
            loaded = {name: arrays[name] for name in ("probabilities", "class_maps", "features", "map_features")}
    except (FileNotFoundError, ValueError, KeyError, OSError):
        return None
    if len(loaded["probabilities"]) != len(saved["readable"]):
        return None
    log.info("classifier pass read back from %s (same photos, model and views)", cache.with_suffix(".npz"))
    return loaded | {"readable": saved["readable"], "skipped": saved["skipped"]}


def _write_cache(cache: Path, key: dict, readable: list[str], skipped, *arrays) -> None:
    from groundwork.atomic import atomic_open, write_json

    cache.parent.mkdir(parents=True, exist_ok=True)
    names = ("probabilities", "class_maps", "features", "map_features")
    with atomic_open(cache.with_suffix(".npz")) as handle:
        np.savez(handle, **dict(zip(names, arrays, strict=True)))
    write_json(cache.with_suffix(".json"), {"key": key, "readable": readable, "skipped": list(skipped)})


def _from_cache(cached: dict, items: Sequence[Any], *, keep_images: bool, boxes: PhotoBoxer | None) -> ForwardOutputs:
    from datasets.tf_input import read_rgb

    by_name = {item.name: item for item in items}
    readable = [by_name[name] for name in cached["readable"]]
    images = [read_rgb(item.path) if keep_images or boxes is not None else None for item in readable]
    arrays = [cached[name] for name in ("probabilities", "class_maps", "features", "map_features")]
    boxed = None if boxes is None else list(boxes(readable, images, *arrays))
    return ForwardOutputs(readable, images if keep_images else [None] * len(readable), *arrays,
                          list(cached["skipped"]), boxed)
