"""The dashboard's HTTP records, free of any framework: a request in, a response out.

Adapters (``asgi_app``, ``wsgi_app``) turn a server's request into a ``Request`` and a
``Response`` back into what that server sends; the pages never see which one it is.
Everything in a request is hostile: sizes are bounded and forms parsed strictly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from mailspool._asgi import ASGIApp, Receive, Scope, Send, read_body

__all__ = ["MAX_BODY", "Handler", "Request", "Response", "asgi_app", "wsgi_app"]

log = logging.getLogger("mailspool.web")

#: The largest request body read (an SNS notification is far smaller).
MAX_BODY = 256 * 1024


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request: header names lower-case, the body read whole (bounded)."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    scheme: str = "http"
    root: str = ""  # where the app is mounted ("" at the server's root)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def cookie(self, name: str) -> str:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(self.header("cookie"))
        except Exception:  # a malformed Cookie header counts as none
            return ""
        morsel = jar.get(name)
        return morsel.value if morsel is not None else ""

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body; a repeated name keeps its last value."""
        if not self.header("content-type").startswith("application/x-www-form-urlencoded"):
            return {}
        try:
            fields = parse_qs(self.body.decode("utf-8"), strict_parsing=False, max_num_fields=100)
        except (UnicodeDecodeError, ValueError):
            return {}
        return {name: values[-1] for name, values in fields.items()}

    def arguments(self) -> dict[str, str]:
        fields = parse_qs(self.query, max_num_fields=20)
        return {name: values[-1] for name, values in fields.items()}


@dataclass(slots=True)
class Response:
    """A response; ``stream`` (a download) replaces ``body``: its chunks are sent as
    they are taken, without a length (chunked), and it is closed once sent."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: Iterator[bytes] | None = None

    def all_headers(self) -> list[tuple[str, str]]:
        length = [] if self.stream is not None else [("content-length", str(len(self.body)))]
        return [("content-type", self.content_type), *length, *self.headers]


Handler = Callable[[Request], Response]


def asgi_app(handler: Handler) -> ASGIApp:
    """An ASGI application around ``handler``; the handler runs in a thread (it reads
    the store, which may be S3)."""
    import asyncio

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await read_body(receive, MAX_BODY)
        if body is None:
            response = Response(413, b"request body too large", "text/plain; charset=utf-8")
        else:
            response = await asyncio.to_thread(handler, _asgi_request(scope, body))
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.all_headers()]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if response.stream is None:
            await send({"type": "http.response.body", "body": response.body})
        else:
            await _send_stream(response.stream, receive, send)

    return app


async def _send_stream(stream: Iterator[bytes], receive: Receive, send: Send) -> None:
    """Send each chunk as it is read (in a thread: it may come from S3). The server's
    flow control holds ``send`` while the client is slow, so one chunk or two are in
    memory at a time; a client gone stops the reading. An error half-way ends the
    response unfinished, which the client sees as a cut download, never as complete."""
    import asyncio

    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    try:
        while not gone.is_set():
            chunk = await asyncio.to_thread(next, stream, None)
            if chunk is None:
                await send({"type": "http.response.body", "body": b""})
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except OSError as err:  # servers that raise when the client has gone
        log.info("a download stopped half-way: %s", err)
    except Exception:
        log.exception("a download stopped half-way")
    finally:
        watcher.cancel()
        _close(stream)


def _close(stream: Iterator[bytes]) -> None:
    close = getattr(stream, "close", None)
    if close is None:
        return
    try:
        close()
    except ValueError:  # still running in its thread (the server is stopping): it ends there
        log.debug("a download's reader was still running when it was closed")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _asgi_request(scope: Scope, body: bytes) -> Request:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        headers[name.decode("latin-1").lower()] = value.decode("latin-1")
    prefix = scope.get("root_path", "")
    return Request(
        method=scope["method"],
        path=scope["path"].removeprefix(prefix) or "/",
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=body,
        scheme=scope.get("scheme", "http"),
        root=prefix,
    )


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_app(handler: Handler) -> WSGIApp:
    """A WSGI application around ``handler`` (Flask: ``DispatcherMiddleware``)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            response = Response(413, b"request body too large", "text/plain; charset=utf-8")
        else:
            response = handler(_wsgi_request(environ, environ["wsgi.input"].read(length)))
        start_response(f"{response.status} {_reason(response.status)}", response.all_headers())
        if response.stream is not None:
            return response.stream  # the server takes the chunks and calls its close()
        return [response.body]

    return app


def _wsgi_request(environ: dict[str, Any], body: bytes) -> Request:
    headers = {
        name[5:].replace("_", "-").lower(): str(value)
        for name, value in environ.items()
        if name.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return Request(
        method=environ.get("REQUEST_METHOD", "GET"),
        path=environ.get("PATH_INFO", "") or "/",
        query=environ.get("QUERY_STRING", ""),
        headers=headers,
        body=body,
        scheme=environ.get("wsgi.url_scheme", "http"),
        root=environ.get("SCRIPT_NAME", ""),
    )


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
