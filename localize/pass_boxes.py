"""Pseudo boxes made inside the classifier pass, chunk by chunk (:class:`PassBoxes`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from localize.cell_localizer import CellLocalizer
from localize.pseudo_boxes import LocalizeConfig, PseudoBoxes, known_classes, pseudo_boxes

__all__ = ["PassBoxes"]


@dataclass(frozen=True)
class PassBoxes:
    """How the pass boxes its photos when the boxes need nothing of other photos (no learning from
    hand boxes at this run, no DDT): :func:`localize.pseudo_boxes.pseudo_boxes` on each chunk, where
    its maps were made (on the Ray worker with ``--ray``), instead of on all photos afterwards.

    ``labels`` are the classifier's (an item's ``label`` among them is its known class).
    """

    config: LocalizeConfig
    labels: tuple[str, ...]
    input_size: tuple[int, int]
    localizer: CellLocalizer | None = None
    calibrated_threshold: float | None = None

    def __call__(self, items, images, probabilities, class_maps, features, map_features) -> list[tuple]:
        known = known_classes([getattr(it, "label", None) for it in items], self.labels)
        boxed = pseudo_boxes(images, probabilities, class_maps, features, known=known, input_size=self.input_size,
                             config=self.config, localizer=self.localizer, map_features=map_features,
                             calibrated_threshold=self.calibrated_threshold)
        return [(boxed.boxes[i], boxed.scores[i], int(boxed.classes[i]), boxed.heatmaps[i], boxed.notes[i])
                for i in range(len(images))]

    @staticmethod
    def gather(boxed: list[tuple], probabilities: np.ndarray, features: np.ndarray) -> PseudoBoxes:
        """The photos' values from the pass as one :class:`PseudoBoxes`."""
        b, s, c, h, n = zip(*boxed, strict=True)
        return PseudoBoxes(boxes=list(b), scores=list(s), classes=np.asarray(c), probabilities=probabilities,
                           heatmaps=list(h), features=features, notes=list(n))
