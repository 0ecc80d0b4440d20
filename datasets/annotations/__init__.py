"""Bounding-box annotation files: one in-memory form, a reader and a writer per format.

Formats: Pascal VOC XML, COCO JSON, YOLO txt + ``data.yaml``, Apple Create ML JSON and
boxstrap's boxes JSON (``valid_boxes.json``). See :mod:`datasets.annotations.annotation` for the
pixel convention and :mod:`datasets.annotations.formats` for the format table.
"""

from datasets.annotations.annotation import TOLERANCE, Box, ImageAnnotation
from datasets.annotations.formats import FORMATS, detect_format, read_annotations, write_annotations

__all__ = ["Box", "FORMATS", "ImageAnnotation", "TOLERANCE", "detect_format", "read_annotations",
           "write_annotations"]
