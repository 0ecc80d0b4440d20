"""Tiny prepared datasets for the training tests: coloured squares on noise, two classes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from datasets.manifest import Manifest, Record, save_manifest

TINY_FILTERS = (4, 4, 8, 8, 8)


def make_manifest(root, *, per_split=(8, 4, 4), size=(32, 32), seed=0) -> Manifest:
    """Write a tiny dataset: "red" images hold a red square, "blue" ones a blue square."""
    rng = np.random.default_rng(seed)
    records = []
    height, width = size
    for split, count in zip(("train", "valid", "test"), per_split, strict=True):
        for i in range(count):
            label = ("red", "blue")[i % 2]
            image = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
            y, x = rng.integers(0, height - 12), rng.integers(0, width - 12)
            image[y:y + 12, x:x + 12] = (230, 20, 20) if label == "red" else (20, 20, 230)
            path = f"images/{split}_{i:03d}.png"
            (root / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / path)
            records.append(Record(path=path, label=label, source=str(root / path), sha256=f"{split}{i}{seed}",
                                  source_size=(width, height), size=(width, height), phash="0" * 16,
                                  group=len(records), split=split))
    manifest = Manifest(root=root, records=tuple(records), labels=("blue", "red"))
    save_manifest(manifest)
    return manifest
