"""WSGI middleware: one mailspool request scope per request.

    app = MailspoolMiddleware(app, mode="before")   # or mode="after"

Two modes, one trade-off:

- ``"before"`` (the default, the article's way): the e-mails are written before the
  response completes. The last chunk of the body is held back until the write is done,
  so a client that has the whole response knows its e-mails are stored. It waits for
  the write (one store write per meta group; at most ``MAILSPOOL_WRITE_TIMEOUT`` when
  the store fails, then the fallback).
- ``"after"``: the body passes through untouched and the e-mails are written in the
  response's ``close()``, which the server calls once it has handed the body over. The
  client never waits for the store; the cost is a window in which the client has its
  answer but the e-mails are not stored yet (a crash there loses them), and the server's
  worker thread stays busy until the write is done. With a chunked response some
  servers send the final chunk only after ``close()``.

Each request runs in a copy of the context, so the scope never leaks into the server's
thread, however the server interleaves calls.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from mailspool.config import Settings
from mailspool.errors import ConfigurationError
from mailspool.producer.scope import RequestScope

__all__ = ["MailspoolMiddleware", "Mode", "WSGIApp"]

Mode = Literal["before", "after"]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
SettingsSource = Settings | Callable[[], Settings] | None


def check_mode(mode: str) -> Mode:
    """The mode, checked: ``"before"`` or ``"after"``."""
    if mode not in ("before", "after"):
        raise ConfigurationError(f"mode must be 'before' or 'after', not {mode!r}")
    return mode  # type: ignore[return-value]


def settings_source(source: SettingsSource) -> Settings | Callable[[], Settings]:
    """What a middleware keeps: the settings given, a callable that makes them per
    request (Flask's, since a test may change ``app.config``), or, when none is given,
    the settings loaded once, now: a mistake fails the server's start."""
    return Settings.load() if source is None else source


def resolve_settings(source: Settings | Callable[[], Settings]) -> Settings:
    """The settings for one request."""
    return source if isinstance(source, Settings) else source()


class MailspoolMiddleware:
    """Wraps a WSGI application; see the module doc for the two modes."""

    def __init__(self, app: WSGIApp, *, mode: str = "before", settings: SettingsSource = None):
        self.app = app
        self.mode = check_mode(mode)
        self.settings = settings_source(settings)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        scope = RequestScope(settings=resolve_settings(self.settings))
        context = contextvars.copy_context()
        context.run(scope.__enter__)

        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            scope.respond(_status_code(status))  # a 5xx: the request failed (on_error)
            return start_response(status, headers, exc_info)

        try:
            result = context.run(self.app, environ, start)
        except BaseException as err:
            context.run(scope.__exit__, type(err), err, err.__traceback__)
            raise
        return _Body(scope, context, result, self.mode)


@dataclass(slots=True)
class _Body:
    """The response body, run in the request's context; writes the scope once."""

    scope: RequestScope
    context: contextvars.Context
    inner: Iterable[bytes]
    mode: Mode
    finished: bool = field(default=False, init=False)

    def __iter__(self) -> Iterator[bytes]:
        iterator = self.context.run(iter, self.inner)
        if self.mode == "after":
            yield from self._pass_through(iterator)
            return
        held: bytes | None = None
        for chunk in self._pass_through(iterator):
            if held is not None:
                yield held
            held = chunk
        self._close_inner()
        self._finish(None, None, None)
        if held is not None:
            yield held

    def _pass_through(self, iterator: Iterator[bytes]) -> Iterator[bytes]:
        while True:
            try:
                chunk = self.context.run(next, iterator, None)
            except BaseException as err:
                self._close_inner()
                self._finish(type(err), err, err.__traceback__)
                raise
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        """Called by the server when it is done with the body: write what is left."""
        try:
            self._close_inner()
        finally:
            self._finish(None, None, None)

    def _close_inner(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            inner_close, self.inner = close, ()
            self.context.run(inner_close)

    def _finish(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.finished:
            self.finished = True
            self.context.run(self.scope.__exit__, exc_type, exc, tb)


def _status_code(status: str) -> int:
    """``"500 Internal Server Error"`` -> 500; 0 for a status line that is not one."""
    code = status.partition(" ")[0]
    return int(code) if code.isdigit() and len(code) == 3 else 0
