"""A Flask app's mailspool settings: the ``MAILSPOOL_*`` keys of ``app.config``, then the
environment, each checked by its row of the settings table. Read by the extension
(``integrations.flask``), the ``flask mailspool`` commands (``cli.flask_group``) and the
feedback blueprint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailspool.config import Settings

__all__ = ["config_key", "config_values", "load_settings"]

_PREFIX = "MAILSPOOL_"


def load_settings(config: Mapping[str, Any], **explicit: Any) -> Settings:
    """mailspool's settings: ``explicit`` (a command's flags), a Flask config, then
    ``MAILSPOOL_*`` variables; every value checked, an unknown ``MAILSPOOL_*`` key refused."""
    return Settings.load(framework=config_values(config), framework_key=config_key, **explicit)


def config_key(name: str) -> str:
    """A setting's key as written in a Flask config: ``app.config['MAILSPOOL_STORE']``."""
    return f"app.config[{(_PREFIX + name.upper())!r}]"


def config_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``MAILSPOOL_*`` keys of a Flask config, by setting name."""
    return {
        key[len(_PREFIX) :].lower(): value
        for key, value in config.items()
        if key.startswith(_PREFIX)
    }
