"""What a ``localize`` run learned from hand boxes, kept beside a model or forgotten.

A run writes what it learned (the cell localizer, or the calibrated threshold) into its own
output folder only; :func:`keep_learned` puts it beside a classifier (the pipeline does, and
``boxstrap localize --keep-learned``) so that later runs box new photos the same way, and
:func:`forget_learned` removes it.
"""

from __future__ import annotations

import os
from pathlib import Path

from groundwork.atomic import write_bytes
from localize.calibration import FILENAME as CALIBRATION
from localize.cell_localizer import FILENAME as LOCALIZER

__all__ = ["LEARNED_FILES", "forget_learned", "keep_learned"]

#: What a run learns from hand boxes, written into its output folder (and by keep_learned beside a model).
LEARNED_FILES = (LOCALIZER, CALIBRATION)


def keep_learned(out_dir: str | os.PathLike, model_dir: str | os.PathLike) -> list[Path]:
    """Put what a :func:`localize_photos` run learned from hand boxes (in ``out_dir``: the cell
    localizer, the calibrated threshold) beside the model in ``model_dir``, replacing what was
    there, so that ``boxstrap localize MODEL new_photos`` boxes new photos the same way; return the
    files written. A run that learned nothing changes nothing there."""

    names = [name for name in LEARNED_FILES if (Path(out_dir) / name).is_file()]
    if not names:
        return []
    forget_learned(model_dir)
    return [write_bytes(Path(model_dir) / name, (Path(out_dir) / name).read_bytes()) for name in names]


def forget_learned(model_dir: str | os.PathLike) -> None:
    """Remove what :func:`keep_learned` put beside a model (or what a run learned, from its folder)."""
    for name in LEARNED_FILES:
        (Path(model_dir) / name).unlink(missing_ok=True)
