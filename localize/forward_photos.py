"""``forward_photos``: the classifier's localizing pass over photos, here or on Ray.

:func:`forward_photos` reads the photos, runs :class:`localize.multi_view_maps.ForwardPass` on
them chunk by chunk through :func:`groundwork.photo_map.photo_map` (so ``--ray`` spreads the
chunks over a cluster), and gathers the results in the photos' order: the readable photos, their
probabilities, class maps and descriptors, and the unreadable ones listed. ``localize`` and the
box model's descriptors read photos through it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from classifier.photo_work import PhotoWork, run_photo_work
from classifier.trained_model import TrainedModel, load_trained_model
from groundwork.photo_map import RayOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForwardOutputs:
    """The readable items, their photos and :func:`localize.multi_view_maps.forward`'s arrays."""

    items: list[Any]
    images: list[np.ndarray]
    probabilities: np.ndarray
    class_maps: np.ndarray
    features: np.ndarray
    map_features: np.ndarray
    skipped: list[dict[str, str]]


class _ForwardWork(PhotoWork):
    def __init__(self, trained: TrainedModel, *, scales: Sequence[float], flip: bool, keep_images: bool) -> None:
        super().__init__(trained.directory, trained.model_sha256, loaded=trained)
        self.scales, self.flip, self.keep_images = tuple(scales), flip, keep_images
        self._pass = None

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._pass = None

    def load(self, directory):
        return load_trained_model(directory)

    def run(self, model: TrainedModel, images: list[np.ndarray]) -> list[tuple]:
        from localize.multi_view_maps import ForwardPass

        pre = model.preprocessing
        if self._pass is None:
            self._pass = ForwardPass(model.model, feature_layer=model.feature_layer, input_size=pre.input_size,
                                     scales=self.scales, flip=self.flip, preprocessing=pre)
        x = np.stack([pre.apply(pre.resize(image)) for image in images]).astype(np.float32)
        arrays = self._pass(x, images)
        return [(image if self.keep_images else None, *(a[i] for a in arrays)) for i, image in enumerate(images)]


def forward_photos(trained: TrainedModel, items: Sequence[Any], *, scales: Sequence[float] = (1.0,),
                   flip: bool = False, batch_size: int = 8, ray: RayOptions | None = None,
                   keep_images: bool = True, progress: bool = True, source: Any = None) -> ForwardOutputs:
    """The localizing pass over ``items`` (each with a ``path``; ``name`` names it in ``skipped``).

    Photos that cannot be read are left out and listed (:func:`classifier.photo_work.run_photo_work`,
    which also raises ValueError when none can be). With ``ray`` the chunks of ``batch_size``
    photos run on Ray workers (the same chunks as here, so the same batches). ``keep_images=False``
    returns no photos (``images`` holds None per item): less to send back when they are not needed.
    """
    work = _ForwardWork(trained, scales=scales, flip=flip, keep_images=keep_images)
    readable, results, skipped = run_photo_work(work, items, batch_size=batch_size, ray=ray, progress=progress,
                                                desc="classifier pass", source=source)
    probabilities, class_maps, features, map_features = (np.stack(column) for column in
                                                         zip(*(r[1:] for r in results), strict=True))
    return ForwardOutputs(readable, [r[0] for r in results], probabilities, class_maps, features, map_features,
                          skipped)
