"""datasets: from a folder of phone photos per class to a clean, leak-free, reproducible split.

Ingest (EXIF rotation, metadata stripped, resized), capture groups (duplicates and bursts),
group-aware split, reading images as the network sees them, annotation files and synthetic demo scenes;
and what the box stages share: the photos a stage works on (:mod:`datasets.photo_items`), the files
of a folder of boxes (:mod:`datasets.box_folder`), review pictures (:mod:`datasets.review`) and
boxes scored against ground truth (:mod:`datasets.evaluate`).
"""

__boxstrap_stage__ = "datasets"

__all__: list[str] = []
