"""The feedback endpoints together, routed by path, for every way of serving them.

``FeedbackEndpoints.handle(method, path, query, headers, body)`` answers
``POST <prefix>/events/ses`` and ``GET|POST <prefix>/unsubscribe``; a part that is not
configured (no SNS topic allowed, no unsubscribe URL and secret) answers 404.
``mailspool serve``, the ASGI app (``asgi_app``), the Flask blueprint
(``mailspool.integrations.flask_feedback``) and the Django URLs
(``mailspool.integrations.django_feedback``) all call it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from mailspool._asgi import ASGIApp, Receive, Send, read_body
from mailspool.feedback.http import MAX_BODY, SesEndpoint
from mailspool.feedback.response import Response
from mailspool.feedback.unsubscribe import UnsubscribeEndpoint

__all__ = ["SES_PATH", "UNSUBSCRIBE_PATH", "FeedbackEndpoints", "asgi_app"]

SES_PATH = "/events/ses"
UNSUBSCRIBE_PATH = "/unsubscribe"


@dataclass(frozen=True, slots=True)
class FeedbackEndpoints:
    """The SNS endpoint and the unsubscribe endpoint (either may be absent)."""

    ses: SesEndpoint | None = None
    unsubscribe: UnsubscribeEndpoint | None = None

    def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Response:
        if path.endswith(SES_PATH) and self.ses is not None:
            return self.ses.handle(method, headers, body)
        if path.endswith(UNSUBSCRIBE_PATH) and self.unsubscribe is not None:
            return self.unsubscribe.handle(method, query, headers, body)
        return Response.text(404, "not found")


def asgi_app(endpoints: FeedbackEndpoints | Callable[[], FeedbackEndpoints]) -> ASGIApp:
    """An ASGI application serving the endpoints (mount it at any prefix). The store
    work runs in a thread, so the event loop stays free."""

    async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive, MAX_BODY)
        if body is None:
            response = Response.text(413, "too large")
        else:
            target = endpoints if isinstance(endpoints, FeedbackEndpoints) else endpoints()
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            query = scope.get("query_string", b"").decode("latin-1")
            response = await asyncio.to_thread(
                target.handle, scope["method"], scope["path"], query, headers, body
            )
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.encode(), v.encode()) for k, v in response.headers],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    return app
