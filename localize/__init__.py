"""localize: class heatmaps to pseudo bounding boxes, their review and scores, and a box model."""

__boxstrap_stage__ = "localize"

__all__: list[str] = []
