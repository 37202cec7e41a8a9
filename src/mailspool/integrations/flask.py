"""Flask glue: ``Mailspool(app)`` or ``Mailspool().init_app(app)``.

The extension wraps ``app.wsgi_app`` in the WSGI middleware, so the request's e-mails
are written when it ends (a failed request's are dropped unless ``MAILSPOOL_ON_ERROR``
says ``write``) and ``mailspool.send_mail`` works inside every view. Settings come from ``app.config``
(``MAILSPOOL_STORE``, ``MAILSPOOL_PRIORITY_TRANSPORT``, ...), then the environment;
``MAILSPOOL_MIDDLEWARE_MODE`` is ``"before"`` (default) or ``"after"`` (see
``mailspool.integrations.wsgi``). ``init_app`` checks them: a bad value, or a
``MAILSPOOL_*`` key of ``app.config`` that is no setting, raises ``ConfigurationError``
when the app is made, not at its first request.

It also adds ``flask mailspool`` to the app's CLI: ``worker`` (``--drain`` to deliver
everything pending and exit), ``status``, ``failed``, ``quarantine`` and ``gc``, the
``mailspool`` commands themselves, reading ``app.config`` first.
"""

from __future__ import annotations

import click
from flask import Flask

from mailspool.errors import ConfigurationError
from mailspool.integrations.flask_settings import config_key, load_settings
from mailspool.integrations.wsgi import MailspoolMiddleware

__all__ = ["AppConfigurationError", "Mailspool", "config_key", "load_settings"]


class AppConfigurationError(ConfigurationError, click.ClickException):
    """The app's mailspool settings are wrong. A ``ConfigurationError`` for the server
    that imports the app; and, since the ``flask`` command imports the app before it
    runs any of its commands, one line (``Error: ...``, exit 1) there, as ``mailspool``
    itself prints it, instead of a traceback."""

    def __init__(self, message: str) -> None:
        click.ClickException.__init__(self, message)

    def __str__(self) -> str:
        return self.message


class Mailspool:
    """The Flask extension: one mailspool request scope per request."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Check the settings and wrap the application; the config is read again per
        request, so tests may change it. Raises ``AppConfigurationError`` (a
        ``ConfigurationError``) naming a bad key or value."""
        try:
            mode = load_settings(app.config).middleware_mode
        except ConfigurationError as err:
            raise AppConfigurationError(str(err)) from err
        app.wsgi_app = MailspoolMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, mode=mode, settings=lambda: load_settings(app.config)
        )
        app.extensions["mailspool"] = self
        from mailspool.cli.flask_group import mailspool_group

        app.cli.add_command(mailspool_group)
