"""Stage configs: one frozen dataclass per stage, saved as JSON beside what it produced."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, TypeVar

from groundwork.atomic import write_json

__all__ = ["config_to_dict", "load_config", "save_config"]

C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return a JSON-ready dict of a config dataclass (tuples become lists, paths strings)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config must be a dataclass instance. Received: {type(config).__name__}")

    def plain(value: Any) -> Any:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return config_to_dict(value)
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def save_config(config: Any, path: str | os.PathLike) -> Path:
    """Write ``config`` as JSON to ``path`` (atomically), with its class name, and return the path."""
    return write_json(path, {"config": type(config).__name__, **config_to_dict(config)})


def load_config(cls: type[C], path: str | os.PathLike) -> C:
    """Read a config written by :func:`save_config` back into ``cls``.

    Lists become tuples where the field's default is a tuple. Unknown keys are an error
    that names them, so a config from another version is not silently half-read; a file of
    another config class, or a value the class refuses, is an error that names the file.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"No config file at {path}.") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be a config file") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a {cls.__name__} file holds a JSON object. Received: {type(data).__name__}")
    kind = data.pop("config", None)
    if kind is not None and kind != cls.__name__:
        raise ValueError(f"{path} holds a {kind}, not a {cls.__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{path}: unknown {cls.__name__} fields {unknown}. Known: {sorted(fields)}")
    for name, value in list(data.items()):
        if isinstance(value, list):
            data[name] = _tuples(value)
    try:
        return cls(**data)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{path}: {error}") from None


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value
