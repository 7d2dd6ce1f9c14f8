"""Just enough TOML writing for syncd configs: tables of strings, numbers, booleans, lists."""

from __future__ import annotations

import json
from typing import Any


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` merged into a copy of ``base``, table by table; a None value drops the key."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif isinstance(value, dict):
            out[key] = merge({}, value)
        else:
            out[key] = value
    return out


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(config: dict[str, Any]) -> str:
    lines: list[str] = []
    for key, value in config.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_value(value)}")
    for table, values in config.items():
        if isinstance(values, dict):
            lines.append(f"\n[{table}]")
            lines.extend(f"{k} = {_value(v)}" for k, v in values.items())
    return "\n".join(lines).lstrip("\n") + "\n"
