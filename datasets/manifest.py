"""The manifest of a prepared dataset: one record per image, written by ``boxstrap prepare``.

``DIR/manifest.json`` is the single source the later stages read (training,
localisation). Paths inside it are relative to ``DIR`` and use forward slashes, so a prepared
folder can be moved or zipped whole.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groundwork.atomic import write_json
from groundwork.paths import confined

__all__ = ["FILENAME", "Manifest", "Record", "load_manifest", "save_manifest"]

FILENAME = "manifest.json"
SPLITS = ("train", "valid", "test")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Record:
    """One prepared image.

    ``path`` is the prepared image relative to the manifest's folder; ``source`` the original
    file as given (absolute); ``source_size``/``size`` are ``(width, height)``; ``phash`` a hex
    perceptual hash; ``captured_at`` ISO-8601 from EXIF or ``None``; ``group`` the capture
    group id (duplicates and bursts share one); ``split`` one of ``SPLITS`` or ``None``;
    ``colour`` the image's :func:`datasets.images.colour_signature` ("" in older manifests).
    """

    path: str
    label: str
    source: str
    sha256: str
    source_size: tuple[int, int]
    size: tuple[int, int]
    phash: str
    captured_at: str | None = None
    group: int | None = None
    split: str | None = None
    colour: str = ""


@dataclass(frozen=True)
class Manifest:
    """A prepared dataset: its records, class labels, skipped files and grouping report."""

    root: Path
    records: tuple[Record, ...]
    labels: tuple[str, ...]
    skipped: tuple[dict[str, str], ...] = ()
    groups: dict[str, Any] = field(default_factory=dict)
    conflicts: tuple[dict[str, Any], ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> list[Record]:
        """Records of one split, in manifest order.

        Raises
        ------
        ValueError
            If ``name`` is not one of ``SPLITS``.
        """
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}. Received: {name!r}")
        return [r for r in self.records if r.split == name]

    def image_path(self, record: Record) -> Path:
        """Absolute path of a record's prepared image."""
        return self.root / record.path

    def label_index(self, record: Record) -> int:
        return self.labels.index(record.label)


def save_manifest(manifest: Manifest) -> Path:
    """Write ``manifest.json`` into ``manifest.root`` atomically and return its path."""
    data = {
        "format_version": FORMAT_VERSION,
        "labels": list(manifest.labels),
        "settings": manifest.settings,
        "records": [_record_dict(r) for r in manifest.records],
        "skipped": list(manifest.skipped),
        "groups": manifest.groups,
        "conflicts": list(manifest.conflicts),
    }
    return write_json(Path(manifest.root) / FILENAME, data)


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read a manifest from ``path`` (the ``manifest.json`` file or the folder holding it).

    Raises
    ------
    FileNotFoundError
        If there is no manifest there (the message says how to make one).
    ValueError
        If the file is not a boxstrap manifest.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"No manifest at {path}. Make one with `boxstrap prepare SRC --out DIR`.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        records = tuple(
            Record(**{**r, "source_size": tuple(r["source_size"]), "size": tuple(r["size"])})
            for r in data["records"]
        )
        manifest = Manifest(
            root=path.parent.resolve(),
            records=records,
            labels=tuple(data["labels"]),
            skipped=tuple(data.get("skipped", ())),
            groups=data.get("groups", {}),
            conflicts=tuple(data.get("conflicts", ())),
            settings=data.get("settings", {}),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a boxstrap manifest ({type(error).__name__}: {error}).") from None
    except RecursionError:
        raise ValueError(f"{path} is not a boxstrap manifest (nested too deeply).") from None
    for record in manifest.records:  # prepared images live in the manifest's folder, nowhere else
        if not isinstance(record.path, str):
            raise ValueError(f"{path} is not a boxstrap manifest: a record's path is {record.path!r}.")
        confined(manifest.root, record.path, source=str(path))
    return manifest


def _record_dict(record: Record) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(record).items()}
