"""``boxstrap prepare``: from a folder of photos per class to a prepared, grouped, split dataset.

``SRC`` is either a folder per class (``SRC/<class>/*.jpg``; split here, seeded and group-aware)
or an existing split (``SRC/training/<class>/``, ``SRC/valid/<class>/``, optional
``SRC/test/<class>/``; ``train/`` instead of ``training/`` is fine), kept as given unless
``resplit``; then the report counts the valid and test images that share a capture group with a
training image (leakage).

Output (``SRC`` is only read)::

    DIR/prepare_config.json      PrepareConfig of the run
    DIR/images/<class>/<stem>-<sha256[:12]>.jpg   upright RGB, longer side <= max_side, no metadata
    DIR/manifest.json            datasets.manifest.Manifest (records, groups, conflicts, skipped)
    DIR/.prepare_progress.json   what was already written, so a rerun of the same config resumes

Images are stored per class (not per split) so that a new split never moves files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from datasets.groups import capture_groups, parse_phash
from datasets.images import IMAGE_KINDS, IMAGE_SUFFIXES, UnreadableImage, read_image
from datasets.manifest import FILENAME as MANIFEST_FILENAME
from datasets.manifest import Manifest, Record, save_manifest
from datasets.prepare_config import PrepareConfig
from datasets.split import SPLITS, leakage, split_groups
from groundwork.atomic import write_bytes, write_json
from groundwork.config import config_to_dict, save_config
from groundwork.thread_map import thread_map

__all__ = ["prepare"]

log = logging.getLogger(__name__)

CONFIG_FILENAME = "prepare_config.json"
PROGRESS_FILENAME = ".prepare_progress.json"
IMAGES_DIRNAME = "images"
_SPLIT_FOLDERS = {"training": "train", "train": "train", "valid": "valid", "test": "test"}
_NOT_IDENTITY = ("overwrite", "strict")  # flags that do not make a different run
_CHECKPOINT_EVERY = 25
#: Files read before their conversion is spread over the cores.
_CONVERT_CHUNK = 16

Progress = Callable[[int, int, Path], None]


@dataclass(frozen=True)
class _Candidate:
    path: Path
    label: str
    folder_split: str | None  # split of a given layout, else None


def prepare(config: PrepareConfig, progress: Progress | None = None) -> Manifest:
    """Ingest, group and split ``config.src`` into ``config.out`` and write the manifest.

    Parameters
    ----------
    config : PrepareConfig
    progress : callable, optional
        Called as ``progress(done, total, path)`` before each image.

    Returns
    -------
    Manifest
        As written to ``config.out / "manifest.json"``.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        If ``src`` is missing or not a folder.
    ValueError
        If ``src`` has fewer than 2 classes, an empty class folder, a class with no readable
        image, ``out`` inside ``src``, or (``strict``) an unreadable image; the message names it.
    FileExistsError
        If ``out`` holds a different run or unrelated files and ``overwrite`` is off.
    PermissionError
        If ``out`` cannot be written.
    """
    if not isinstance(config, PrepareConfig):
        raise TypeError(f"config must be a PrepareConfig. Received: {type(config).__name__}")
    started = time.perf_counter()
    src, out = config.src.resolve(), config.out.resolve()
    if not src.exists():
        raise FileNotFoundError(f"Source folder {src} does not exist. Give a folder with one folder per class.")
    if not src.is_dir():
        raise NotADirectoryError(f"Source {src} is not a folder. Give a folder with one folder per class.")
    if out == src or src in out.parents:
        raise ValueError(f"--out {out} is inside the source folder {src}; choose an output folder outside it.")
    layout, candidates, skipped = _discover(src)
    labels = sorted({c.label for c in candidates})
    cache = _start_output(config, src, out)
    log.info("read %d candidate files in %d classes from %s (%s)", len(candidates), len(labels), src, layout)

    written, kept, skipped = _ingest(config, out, candidates, skipped, cache, progress)
    read_seconds = time.perf_counter() - started
    missing = [label for label in labels if not any(c.label == label for c, _ in kept)]
    if missing:
        raise ValueError(f"No readable image for class(es) {missing} in {src} (see the skipped files above). "
                         "Add readable photos to those folders or remove them.")

    label_index = np.array([labels.index(c.label) for c, _ in kept], dtype=np.int64)
    groups = capture_groups(
        [e["sha256"] for _, e in kept], parse_phash([e["phash"] for _, e in kept]), label_index,
        times=np.array([_seconds(e["captured_at"]) for _, e in kept], dtype=np.float64),
        stems=[unicodedata.normalize("NFC", c.path.stem) for c, _ in kept],
        near_threshold=config.phash_threshold, burst_seconds=config.burst_seconds,
        burst_gap=config.burst_gap, burst_max_distance=config.burst_max_distance,
        colours=[e.get("colour", "") for _, e in kept], colour_max_distance=config.colour_max_distance,
    )
    if layout == "given" and not config.resplit:
        splits = np.array([c.folder_split for c, _ in kept])
    else:
        splits = split_groups(groups.group, label_index, valid=config.valid, test=config.test, seed=config.seed)

    records = tuple(
        Record(path=e["path"], label=c.label, source=str(c.path), sha256=e["sha256"],
               source_size=tuple(e["source_size"]), size=tuple(e["size"]), phash=e["phash"],
               captured_at=e["captured_at"], group=int(g), split=str(s), colour=e.get("colour", ""))
        for (c, e), g, s in zip(kept, groups.group, splits, strict=True)
    )
    report = groups.report()
    report["split_counts"] = {
        label: {s: sum(1 for r in records if r.label == label and r.split == s) for s in SPLITS} for label in labels
    }
    report["groups_per_split"] = {s: len({r.group for r in records if r.split == s}) for s in SPLITS}
    leaks = leakage(groups.group, splits, parse_phash([r.phash for r in records]),
                    near_threshold=config.phash_threshold)
    report["groups_in_two_splits"] = leaks.pop("groups_in_two_splits")
    if layout == "given" and not config.resplit:
        report["leakage"] = leaks
    conflicts = tuple(
        {"kind": c["kind"], "distance": c["distance"],
         "images": [{"source": records[i].source, "label": records[i].label, "path": records[i].path}
                    for i in (c["a"], c["b"])]}
        for c in groups.conflicts
    )
    settings = {**config_to_dict(config), "src": str(src), "out": str(out), "layout": layout,
                "split": "given" if layout == "given" and not config.resplit else "seeded"}
    manifest = Manifest(root=out, records=records, labels=tuple(labels), skipped=tuple(skipped),
                        groups=report, conflicts=conflicts, settings=settings)
    path = save_manifest(manifest)
    log.info("prepared %d images (%d newly written) in %.1f s (%.1f s reading and converting); wrote %s",
             len(records), written, time.perf_counter() - started, read_seconds, path)
    return manifest


def _discover(src: Path) -> tuple[str, list[_Candidate], list[dict[str, str]]]:
    """The layout of ``src``, its candidate image files (sorted) and the files skipped by name."""
    folders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = {p.name for p in folders}
    split_names = names & set(_SPLIT_FOLDERS)
    skipped: list[dict[str, str]] = []  # files beside the class folders (README, boxes.json) are ignored
    if split_names:
        unknown = sorted(names - set(_SPLIT_FOLDERS))
        if {"training", "train"} <= names:
            raise ValueError(f"{src} has both training/ and train/; keep one of them.")
        if unknown or "valid" not in names or not names & {"training", "train"}:
            raise ValueError(
                f"{src} mixes split folders {sorted(split_names)} with {unknown or 'nothing else'}. Use either "
                "SRC/<class>/ folders, or SRC/training/<class>/ + SRC/valid/<class>/ (+ optional SRC/test/<class>/)."
            )
        class_dirs = []
        for split_dir in folders:
            inner = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
            class_dirs += [(d, _SPLIT_FOLDERS[split_dir.name]) for d in inner]
        layout = "given"
    else:
        class_dirs = [(d, None) for d in folders]
        layout = "class_folders"
    labels = sorted({unicodedata.normalize("NFC", d.name) for d, _ in class_dirs})
    if len(labels) < 2:
        raise ValueError(
            f"{src} holds {len(labels)} class folder(s) {labels}; need at least 2 classes, one folder "
            "per class (SRC/<class>/*.jpg)."
        )
    candidates = []
    for folder, split in class_dirs:
        label = unicodedata.normalize("NFC", folder.name)
        images = 0
        for path in sorted(folder.iterdir()):
            if path.is_dir():
                skipped.append({"source": str(path), "reason": "folder inside a class folder (not read)"})
            elif path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("._"):
                candidates.append(_Candidate(path, label, split))
                images += 1
            else:
                skipped.append({"source": str(path), "reason": f"not an image file ({IMAGE_KINDS}): {path.name}"})
        if not images:
            raise ValueError(
                f"Class folder {folder} holds no images ({IMAGE_KINDS}). Add photos or remove the folder."
            )
    for entry in skipped:
        log.warning("skipped %s: %s", entry["source"], entry["reason"])
    return layout, candidates, skipped


def _identity(config: PrepareConfig, src: Path, out: Path) -> dict[str, Any]:
    data = {**config_to_dict(config), "src": str(src), "out": str(out)}
    for name in _NOT_IDENTITY:
        data.pop(name)
    return data


def _start_output(config: PrepareConfig, src: Path, out: Path) -> dict[str, Any]:
    """Check and claim ``out``; return the progress cache of an earlier run of the same config."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a folder.")
    identity = _identity(config, src, out)
    config_path = out / CONFIG_FILENAME
    same_run = False
    if config_path.is_file():
        try:
            previous = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            previous = {}
        previous.pop("config", None)
        for name in _NOT_IDENTITY:
            previous.pop(name, None)
        differing = sorted(k for k in set(identity) | set(previous) if identity.get(k) != previous.get(k))
        same_run = not differing
        if not same_run and not config.overwrite:
            raise FileExistsError(
                f"{out} holds a different prepare run (differs in {differing}). Pass --overwrite to replace "
                "it, or choose another --out."
            )
    elif out.is_dir() and any(out.iterdir()) and not config.overwrite:
        raise FileExistsError(
            f"{out} is not empty and holds no prepare run. Choose a new or empty --out, or pass --overwrite."
        )
    if config.overwrite and config_path.is_file():  # only an earlier prepare run's own outputs
        same_run = False
        shutil.rmtree(out / IMAGES_DIRNAME, ignore_errors=True)
        for name in (MANIFEST_FILENAME, CONFIG_FILENAME, PROGRESS_FILENAME):
            (out / name).unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise PermissionError(
            f"Cannot create the output folder {out}: permission denied. Choose an --out you can write to."
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise PermissionError(f"Cannot write into the output folder {out}: permission denied. "
                              "Choose an --out you can write to.")
    (out / MANIFEST_FILENAME).unlink(missing_ok=True)  # a manifest only exists for a finished run
    save_config(dataclasses.replace(config, src=src, out=out), config_path)
    if not same_run:
        return {}
    try:
        cache = json.loads((out / PROGRESS_FILENAME).read_text(encoding="utf-8"))
        return cache["entries"] if cache.get("identity") == identity else {}
    except (OSError, json.JSONDecodeError, KeyError, AttributeError):
        return {}


def _ingest(
    config: PrepareConfig, out: Path, candidates: list[_Candidate], skipped: list[dict[str, str]],
    cache: dict[str, Any], progress: Progress | None,
) -> tuple[int, list[tuple[_Candidate, dict[str, Any]]], list[dict[str, str]]]:
    """Read, convert and write every candidate; return the number written, the kept images, skipped."""
    identity = _identity(config, config.src.resolve(), out)
    entries: dict[str, dict[str, Any]] = {}
    kept: list[tuple[_Candidate, dict[str, Any]]] = []
    used: set[str] = set()
    new = 0
    skipped = list(skipped)

    def checkpoint() -> None:
        write_json(out / PROGRESS_FILENAME, {"identity": identity, "entries": {**cache, **entries}})

    try:
        for start in range(0, len(candidates), _CONVERT_CHUNK):
            # Read and name the files here, in order; convert the new ones on every core (Pillow
            # decodes, resizes and encodes without the GIL); then keep or skip them in order.
            chunk = [_read_candidate(candidate, used, cache, out) for candidate in candidates[start:start + _CONVERT_CHUNK]]
            converted = thread_map(lambda one: None if one.reason or one.entry else _convert(one.data, config.max_side),
                                   chunk)
            for done, (one, image) in enumerate(zip(chunk, converted, strict=True), start=start):
                if progress is not None:
                    progress(done, len(candidates), one.candidate.path)
                if one.reason:
                    _skip(config, skipped, one.source, one.reason)
                    continue
                entry = one.entry
                if entry is None:
                    if isinstance(image, UnreadableImage):
                        _skip(config, skipped, one.source, str(image))
                        continue
                    write_bytes(out / one.rel, image.jpeg)
                    entry = {"sha256": one.sha256, "path": one.rel, "source_size": list(image.source_size),
                             "size": list(image.size), "phash": image.phash, "captured_at": image.captured_at,
                             "colour": image.colour}
                    new += 1
                    if new % _CHECKPOINT_EVERY == 0:
                        checkpoint()
                entries[one.source] = entry
                kept.append((one.candidate, entry))
        if progress is not None and candidates:
            progress(len(candidates), len(candidates), candidates[-1].path)
    finally:
        if entries:
            checkpoint()
    log.info("%d images written, %d reused from an earlier run, %d files skipped",
             new, len(kept) - new, len(skipped))
    return new, kept, skipped


@dataclass
class _Read:
    """One candidate file read: its bytes and name, or its cached entry, or why it is skipped."""

    candidate: _Candidate
    source: str
    data: bytes = b""
    sha256: str = ""
    rel: str = ""
    entry: dict[str, Any] | None = None
    reason: str = ""


def _read_candidate(candidate: _Candidate, used: set[str], cache: dict[str, Any], out: Path) -> _Read:
    source = str(candidate.path)
    try:
        data = candidate.path.read_bytes()
    except OSError as error:
        return _Read(candidate, source, reason=f"cannot read the file ({error.strerror or error})")
    sha256 = hashlib.sha256(data).hexdigest()
    rel = _unique_name(candidate, sha256, used)
    cached = cache.get(source)
    if cached and cached.get("sha256") == sha256 and cached.get("path") == rel and (out / rel).is_file():
        return _Read(candidate, source, rel=rel, sha256=sha256, entry=cached)
    return _Read(candidate, source, data=data, sha256=sha256, rel=rel)


def _convert(data: bytes, max_side: int):
    """:func:`read_image`, or the :class:`UnreadableImage` it raised (skipped in order by the caller)."""
    try:
        return read_image(data, max_side=max_side)
    except UnreadableImage as error:
        return error


def _skip(config: PrepareConfig, skipped: list[dict[str, str]], source: str, reason: str) -> None:
    if config.strict:
        raise ValueError(f"{source}: {reason}. Remove or replace the file, or run without --strict to skip it.")
    log.warning("skipped %s: %s", source, reason)
    skipped.append({"source": source, "reason": reason})


def _unique_name(candidate: _Candidate, sha256: str, used: set[str]) -> str:
    """``images/<class>/<stem>-<sha12>.jpg``; a second identical file of one class gets ``-2``..."""
    stem = re.sub(r"[^\w.-]+", "_", unicodedata.normalize("NFC", candidate.path.stem)).strip("._")[:80] or "image"
    base = f"{IMAGES_DIRNAME}/{candidate.label}/{stem}-{sha256[:12]}"
    rel, k = f"{base}.jpg", 1
    while rel in used:
        k += 1
        rel = f"{base}-{k}.jpg"
    used.add(rel)
    return rel


def _seconds(captured_at: str | None) -> float:
    if not captured_at:
        return float("nan")
    moment = datetime.fromisoformat(captured_at)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
