"""What the commands that box photos (``localize``, ``detect``) print at the end: their scores, the
files they wrote, and the photos they skipped (exit status 1 when any was)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["print_scores", "print_written", "report_skipped"]


def print_scores(scores: Mapping, ground_truth: str, out: Path) -> None:
    """One line of box scores against the hand-checked boxes."""
    print(f"scores vs {ground_truth}: CorLoc {scores['corloc']:.3f}, mean IoU {scores['mean_iou']:.3f}, "
          f"recall over all boxes {scores['recall50']:.3f}, extra boxes per photo {scores['extra_per_photo']:.2f}, "
          f"mAP@0.5 {scores['map50']:.3f} (all in {out / 'scores.json'})")


def print_written(out: Path, formats: Sequence[str], paths: Mapping[str, str], *, overlays: bool) -> None:
    """Where each annotation format and the review pictures went."""
    for fmt in formats:
        print(f"  {fmt:10s} {out / paths[fmt]}")
    print(f"  review     {out / 'contact_sheets'}/ (lowest confidence first), {out / 'review.json'}"
          + (f", {out / 'overlays'}/" if overlays else ""))


def report_skipped(command: str, skipped: Sequence[Mapping[str, str]], read: int, out: Path) -> int:
    """Name each unreadable photo on stderr; the exit status: 1 if any was skipped, else 0."""
    if not skipped:
        return 0
    for entry in skipped:
        print(f"boxstrap {command}: {entry['reason']}; skipped", file=sys.stderr)
    print(f"boxstrap {command}: {len(skipped)} of {read + len(skipped)} images could not be read "
          f"(listed in {out / 'skipped.json'})", file=sys.stderr)
    return 1
