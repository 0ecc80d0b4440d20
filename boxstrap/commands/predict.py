"""Classify photos with a trained model directory.

Each IMAGE_OR_DIR is an image file or a folder searched recursively for .jpg/.png/.heic files.
Images are read upright (EXIF orientation applied), resized and preprocessed exactly as in
training (the model directory's preprocessing.json). Prints one line per image (file, label, its
probability, and a fourth column "doubtful" when that probability is below --min-confidence), or
with --json one JSON object per line ({"file", "label", "probabilities", "doubtful"}). A doubtful
photo is one the model is unsure of: often a photo of something it was not trained on, which it
still gives one of its classes. --overlay-dir writes, per image,
a PNG of the predicted class's map drawn over the photo. An unreadable image is reported on
stderr and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from boxstrap.commands._ray import add_ray_arguments, ray_options
from datasets.review import MIN_CONFIDENCE

__all__ = ["HELP", "NAME", "add_arguments", "run"]

NAME = "predict"
HELP = "classify photos with a trained model (optionally drawing class heatmaps)"
BATCH = 8
OVERLAY_MAX_SIDE = 800


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", type=Path, help="trained model directory (boxstrap train --out)")
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders")
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    parser.add_argument("--overlay-dir", type=Path,
                        help="write <name>_overlay.png per image: the predicted class's map over the photo")
    parser.add_argument("--min-confidence", type=float, default=MIN_CONFIDENCE, metavar="P",
                        help=f"mark a photo doubtful when its label's probability is below P (default {MIN_CONFIDENCE}, "
                             "as localize and detect flag photos for review)")
    parser.add_argument("--batch-size", type=int, default=BATCH, help=f"images per forward pass (default {BATCH})")
    add_ray_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from classifier.photo_work import Skipped
    from classifier.predict import PredictWork
    from classifier.trained_model import load_trained_model
    from groundwork.photo_map import photo_map

    if not 0.0 <= args.min_confidence <= 1.0:
        raise ValueError(f"--min-confidence must be a probability in [0, 1]. Received: {args.min_confidence}")
    if args.overlay_dir is not None:
        from groundwork.paths import check_out_folder

        check_out_folder(args.overlay_dir, what="--overlay-dir")
    files = _image_files(args.images)
    trained = load_trained_model(args.model_dir)
    overlays = args.overlay_dir is not None
    work = PredictWork(trained, heatmaps=overlays, images=overlays)
    failed = doubtful = 0
    used_names: set[str] = set()
    results = photo_map(work, files, chunk_size=args.batch_size, ray=ray_options(args), desc="predict")
    for path, result in zip(files, results, strict=True):
        if isinstance(result, Skipped):
            failed += 1
            print(f"boxstrap predict: {result.reason}; skipped", file=sys.stderr)
            continue
        probabilities, heatmap, image = result
        scores = {label: round(float(p), 6) for label, p in zip(trained.labels, probabilities, strict=True)}
        label = trained.labels[int(probabilities.argmax())]
        unsure = bool(probabilities.max() < args.min_confidence)
        doubtful += unsure
        if args.json:
            print(json.dumps({"file": str(path), "label": label, "probabilities": scores, "doubtful": unsure}))
        else:
            print(f"{path}\t{label}\t{scores[label]:.3f}" + ("\tdoubtful" if unsure else ""))
        if overlays:
            _write_overlay(args.overlay_dir, path, image, heatmap, used_names)
        sys.stdout.flush()
    if overlays:
        print(f"wrote {len(files) - failed} heatmap overlays to {args.overlay_dir}", file=sys.stderr)
    if doubtful:
        print(f"boxstrap predict: {doubtful} of {len(files) - failed} photos doubtful (their label's probability "
              f"below {args.min_confidence:g}): check them", file=sys.stderr)
    if failed:
        print(f"boxstrap predict: {failed} of {len(files)} images could not be read", file=sys.stderr)
    return 1 if failed else 0


def _image_files(paths: list[Path]) -> list[Path]:
    from datasets.image_files import image_files
    from datasets.images import IMAGE_SUFFIXES

    files = []
    for path in paths:
        if path.is_dir():
            found = image_files(path)
            if not found:
                print(f"boxstrap predict: no images ({', '.join(IMAGE_SUFFIXES)}) in {path}", file=sys.stderr)
            others = sorted(p for p in path.rglob("*") if p.is_file() and p not in set(found)
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
            for other in others:  # listed, as prepare lists them: never a silent gap
                print(f"boxstrap predict: {other}: not an image ({other.suffix or 'no suffix'}); skipped",
                      file=sys.stderr)
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"IMAGE_OR_DIR must be an image file or a folder. Received: {str(path)!r} "
                                    "(does not exist)")
    if not files:
        raise ValueError(f"no images found in {[str(p) for p in paths]}")
    return files


def _write_overlay(directory: Path, path: Path, image, heatmap, used: set[str]) -> Path:
    import io

    import numpy as np
    from PIL import Image

    from classifier.heatmap_overlay import heatmap_overlay
    from groundwork.atomic import write_bytes

    picture = Image.fromarray(image)
    picture.thumbnail((OVERLAY_MAX_SIDE, OVERLAY_MAX_SIDE), Image.Resampling.BILINEAR)
    drawn = heatmap_overlay(np.asarray(picture), heatmap)
    name, n = f"{path.stem}_overlay.png", 1
    while name in used:
        n += 1
        name = f"{path.stem}_{n}_overlay.png"
    used.add(name)
    buffer = io.BytesIO()
    Image.fromarray(drawn).save(buffer, format="PNG")
    return write_bytes(directory / name, buffer.getvalue())
