"""``progress_bar``: a tqdm bar on a terminal only.

Sent to a file (CI, a scheduler, ``> run.log``), a bar's every refresh would land in the log; each
long step logs one summary line instead (its ``log.info``). Every progress bar of boxstrap is made
here so that rule holds everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(iterable: Iterable[Any] | None = None, *, enabled: bool = True, **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)``, shown only when ``enabled`` and stderr is a terminal.

    Examples
    --------
    >>> sum(progress_bar(range(3), desc="count"))  # not a terminal here: no bar
    3
    """
    from tqdm import tqdm

    # tqdm's disable=None turns the bar off when its stream is not a terminal.
    return tqdm(iterable, disable=None if enabled else True, **kwargs)
