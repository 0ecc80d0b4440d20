"""detector: the box model trained on pseudo boxes, its Core ML detector export, and `detect` on new photos."""

__boxstrap_stage__ = "detector"

__all__: list[str] = []
