"""Checks of the Python environment that must pass before any stage is imported."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["EnvironmentClash", "check_stage_packages"]

_PROJECT_PACKAGES = ("groundwork", "datasets", "classifier", "localize", "detector", "verify")
_MARKER = "__boxstrap_stage__"


class EnvironmentClash(RuntimeError):
    """A top-level package name of boxstrap resolves to another distribution's package."""


def check_stage_packages() -> None:
    """Make sure ``groundwork``, ``datasets``, ``classifier``, ``localize``, ``detector`` and ``verify`` are boxstrap's own.

    boxstrap's stage packages are top-level packages. Hugging Face's ``datasets`` has the same
    top-level name, so in an environment holding both one shadows the other, and the failure
    would otherwise surface as a confusing ``ImportError`` deep inside a stage.

    Raises
    ------
    EnvironmentClash
        Naming the package, where it was found and what to do.
    """
    for name in _PROJECT_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise EnvironmentClash(
                f"boxstrap's '{name}' package is not importable. Reinstall boxstrap "
                "(`pip install -e .` in the project folder)."
            )
        init = Path(spec.origin)
        try:
            text = init.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        if _MARKER not in text:
            other = "Hugging Face's `datasets`" if name == "datasets" else f"another '{name}' package"
            raise EnvironmentClash(
                f"The top-level package '{name}' in this environment is {other} ({init.parent}), "
                f"not boxstrap's stage of the same name. boxstrap cannot share an environment with it. "
                "Run boxstrap in its own virtual environment (`python -m venv .venv && "
                ".venv/bin/pip install -e .`, or through `tox`, whose environments hold only boxstrap), "
                f"or remove the other package there (`pip uninstall {name}`)."
            )
