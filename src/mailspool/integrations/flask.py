"""Flask glue: ``Mailspool(app)`` or ``Mailspool().init_app(app)``.

The extension wraps ``app.wsgi_app`` in the WSGI middleware, so the request's e-mails
are written even when a view raises (``MAILSPOOL_ON_ERROR`` decides what then) and
``mailspool.send_mail`` works inside every view. Settings come from ``app.config``
(``MAILSPOOL_STORE``, ``MAILSPOOL_PRIORITY_TRANSPORT``, ...), then the environment;
``MAILSPOOL_MIDDLEWARE_MODE`` is ``"before"`` (default) or ``"after"`` (see
``mailspool.integrations.wsgi``).

It also adds ``flask mailspool`` to the app's CLI: ``worker`` (``--drain`` to deliver
everything pending and exit), ``status``, ``failed``, ``quarantine`` and ``gc``, the
``mailspool`` commands themselves, reading ``app.config`` first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from mailspool.config import Settings
from mailspool.integrations.wsgi import MailspoolMiddleware

__all__ = ["Mailspool", "load_settings"]

_PREFIX = "MAILSPOOL_"


def load_settings(config: Mapping[str, Any]) -> Settings:
    """mailspool's settings from a Flask config, then ``MAILSPOOL_*`` variables."""
    return Settings.load(framework=config_values(config))


def config_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``MAILSPOOL_*`` keys of a Flask config, by setting name."""
    return {
        key[len(_PREFIX) :].lower(): value
        for key, value in config.items()
        if key.startswith(_PREFIX)
    }


class Mailspool:
    """The Flask extension: one mailspool request scope per request."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Wrap the application; the config is read per request, so tests may change it."""
        mode = load_settings(app.config).middleware_mode
        app.wsgi_app = MailspoolMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, mode=mode, settings=lambda: load_settings(app.config)
        )
        app.extensions["mailspool"] = self
        from mailspool.integrations.flask_cli import mailspool_group

        app.cli.add_command(mailspool_group)
