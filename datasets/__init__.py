"""datasets: from a folder of phone photos per class to a clean, leak-free, reproducible split.

Ingest (EXIF rotation, metadata stripped, resized), capture groups (duplicates and bursts),
group-aware split, reading images as the network sees them, annotation files and synthetic demo scenes.
"""

__boxstrap_stage__ = "datasets"

__all__: list[str] = []
