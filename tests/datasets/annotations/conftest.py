"""Shared tiny annotations for the annotation-format tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from datasets.annotations import Box, ImageAnnotation

LABELS = ("one", "ten")


@pytest.fixture
def anns() -> list[ImageAnnotation]:
    """Three images: integer boxes, fractional boxes with scores, and none; nested image paths."""
    return [
        ImageAnnotation("one/a.jpg", 64, 48, (Box("one", 0, 0, 10, 12), Box("ten", 20, 5, 64, 48)), label="one"),
        ImageAnnotation("ten/b.png", 40, 30, (Box("ten", 1.5, 2.25, 30.75, 29.5, score=0.875),)),
        ImageAnnotation("ten/c.jpg", 32, 32, (), label="ten"),
    ]


def make_images(root: Path, anns: list[ImageAnnotation]) -> None:
    """Write a tiny image of the right size for each annotation under ``root``."""
    for ann in anns:
        path = root / ann.image
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (ann.width, ann.height), (90, 120, 30)).save(path)


def same_boxes(a: list[ImageAnnotation], b: list[ImageAnnotation], tol: float = 1e-3) -> bool:
    """True when both lists hold the same images with the same boxes (coordinates within ``tol``)."""
    if [x.image for x in a] != [x.image for x in b]:
        return False
    for x, y in zip(a, b, strict=True):
        if (x.width, x.height, x.labels()) != (y.width, y.height, y.labels()) or len(x.boxes) != len(y.boxes):
            return False
        if len(x.boxes) and abs(x.xyxy() - y.xyxy()).max() > tol:
            return False
    return True
