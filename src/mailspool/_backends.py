"""Pluggable backends imported on first use: a missing extra names what to install."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from mailspool.errors import MissingDependency

#: scheme -> (what needs it, the extra to install, the top-level modules it provides)
Extras = Mapping[str, tuple[str, str, frozenset[str]]]


def load_backend(backends: Mapping[str, str], extras: Extras, scheme: str) -> Any:
    """The class ``backends[scheme]`` names (``"module:Class"``), imported now."""
    module_name, _, name = backends[scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        extra = extras.get(scheme)
        if extra is None or (err.name or "").partition(".")[0] not in extra[2]:
            raise
        raise MissingDependency(extra[0], extra[1]) from err
    return getattr(module, name)
