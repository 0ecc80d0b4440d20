"""localize: class heatmaps (and a few hand boxes) to pseudo bounding boxes, written for review and scored.

The box model trained on them is the ``detector`` package's; the two meet only through the folder
of boxes ``localize`` writes (:mod:`datasets.box_folder`).
"""

__boxstrap_stage__ = "localize"

__all__: list[str] = []
