"""A small YAML writer for CloudFormation templates (no PyYAML dependency).

Mappings and lists in block style; every string is written as a JSON string, which is
valid YAML and never mistaken for a number, a boolean or a tag.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["dump"]


def dump(value: Any) -> str:
    """The YAML text of a document made of dicts, lists, strings, numbers and booleans."""
    return "\n".join(_lines(value, 0)) + "\n"


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return [pad + "{}"]
        out = []
        for key, item in value.items():
            name = json.dumps(str(key)) if not str(key).replace("_", "").isalnum() else str(key)
            if _scalar(item) or not item:
                out.append(f"{pad}{name}: {_scalar_text(item)}")
            else:
                out.append(f"{pad}{name}:")
                out.extend(_lines(item, indent + 2))
        return out
    if isinstance(value, list):
        if not value:
            return [pad + "[]"]
        out = []
        for item in value:
            if _scalar(item) or not item:
                out.append(f"{pad}- {_scalar_text(item)}")
            else:
                inner = _lines(item, indent + 2)
                out.append(f"{pad}- {inner[0].lstrip()}")
                out.extend(inner[1:])
        return out
    return [pad + _scalar_text(value)]


def _scalar(value: Any) -> bool:
    return not isinstance(value, Mapping | list)


def _scalar_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(str(value))
