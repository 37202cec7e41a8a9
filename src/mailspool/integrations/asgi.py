"""ASGI middleware: one mailspool request scope per HTTP request.

    app = MailspoolMiddleware(app, mode="before")   # or mode="after"

- ``"before"`` (the default): the buffered e-mails are written just before the final
  ``http.response.body`` (``more_body`` false) goes out, so a client that has the whole
  response knows its e-mails are stored; it waits for that one write.
- ``"after"``: the final body goes out first and the e-mails are written right after it
  was sent: the client never waits for the store, at the price of a window in which it
  has its answer and the e-mails are not stored yet.

Either way, e-mails sent after the response (background tasks) are written when the
application returns. The write runs in a thread, so the event loop stays free. Lifespan
and websocket scopes pass through untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from mailspool._asgi import ASGIApp, Receive, Send
from mailspool.integrations.wsgi import (
    SettingsSource,
    check_mode,
    resolve_settings,
    settings_source,
)
from mailspool.producer.scope import RequestScope

__all__ = ["ASGIApp", "MailspoolMiddleware", "Receive", "Send"]

Message = MutableMapping[str, Any]


class MailspoolMiddleware:
    """Wraps an ASGI application; see the module doc for the two modes."""

    def __init__(self, app: ASGIApp, *, mode: str = "before", settings: SettingsSource = None):
        self.app = app
        self.mode = check_mode(mode)
        self.settings = settings_source(settings)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_scope = RequestScope(settings=resolve_settings(self.settings))
        async with request_scope:
            await self.app(scope, receive, self._wrap(send, request_scope))

    def _wrap(self, send: Send, request_scope: RequestScope) -> Send:
        before = self.mode == "before"

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                request_scope.respond(int(message.get("status", 200)))
            final = message["type"] == "http.response.body" and not message.get("more_body", False)
            if final and before:
                await asyncio.to_thread(request_scope.conclude)
            await send(message)
            if final and not before:
                await asyncio.to_thread(request_scope.conclude)

        return wrapped
