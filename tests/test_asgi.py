"""The ASGI middleware under a real server (uvicorn on 127.0.0.1), both modes."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st

from mailspool import Settings
from mailspool._asgi import read_body
from mailspool.integrations.asgi import MailspoolMiddleware, Receive, Send
from tests import framework_common as common
from tests.fixtures.smtp_server import SMTPSink

lifespan_events: list[str] = []


async def view(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            lifespan_events.append(event["type"])
            await send({"type": event["type"] + ".complete"})
            if event["type"] == "lifespan.shutdown":
                return
    common.send_from_view()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@contextmanager
def running_uvicorn(app: Any) -> Iterator[str]:
    """uvicorn in a thread on a free port; its base URL."""
    port = common.free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def settings_for(store_url: str, smtp_server: SMTPSink) -> Settings:
    return Settings.load(store=store_url, priority_transport=smtp_server.url)


def test_before_mode_stores_500_before_the_response(spool: Path, smtp_server: SMTPSink) -> None:
    lifespan_events.clear()
    app = MailspoolMiddleware(view, settings=settings_for(f"file://{spool}", smtp_server))
    with running_uvicorn(app) as url:
        status, body = common.get(f"{url}/")
        assert (status, body) == (200, b"ok")
        common.assert_priority_only(smtp_server)
        assert len(common.queued_files(spool)) == 1

    assert lifespan_events == ["lifespan.startup", "lifespan.shutdown"]  # passed through
    common.drain(spool, smtp_server)
    common.assert_followers_once_whole(smtp_server)


def test_a_500_response_drops_the_deferred_mail(spool: Path, smtp_server: SMTPSink) -> None:
    async def failing(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await view(scope, receive, send)  # the lifespan, as the other app answers it
            return
        common.send_from_view()
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"oops"})

    app = MailspoolMiddleware(failing, settings=settings_for(f"file://{spool}", smtp_server))
    with running_uvicorn(app) as url, pytest.raises(urllib.error.HTTPError) as answered:
        common.get(f"{url}/")
    assert answered.value.code == 500
    assert common.queued_files(spool) == []


def test_after_mode_answers_while_the_store_is_still_writing(
    spool: Path, smtp_server: SMTPSink
) -> None:
    store = common.HangingStore(spool)
    settings = settings_for(common.install_store(store), smtp_server)
    with running_uvicorn(MailspoolMiddleware(view, mode="after", settings=settings)) as url:
        status, body = common.get(f"{url}/")
        assert (status, body) == (200, b"ok")
        assert store.entered.wait(10)
        assert common.queued_files(spool) == []  # the client had its answer first
        store.release.set()
        deadline = time.monotonic() + 30
        while not common.queued_files(spool):
            assert time.monotonic() < deadline
            time.sleep(0.01)

    common.drain(spool, smtp_server)
    common.assert_followers_once_whole(smtp_server)


@pytest.mark.parametrize("mode", ["before", "after"])
def test_websocket_scope_passes_through(mode: str) -> None:
    import asyncio

    seen: list[str] = []

    async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        await send({"type": "websocket.close"})

    sent: list[Any] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "websocket.connect"}

    asyncio.run(MailspoolMiddleware(app, mode=mode)({"type": "websocket"}, receive, send))

    assert seen == ["websocket"]
    assert sent == [{"type": "websocket.close"}]


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=8), st.integers(0, 200))
def test_a_body_is_read_whole_or_refused_past_its_limit(chunks: list[bytes], limit: int) -> None:
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop(0)

    body = asyncio.run(read_body(receive, limit))
    whole = b"".join(chunks)
    assert body == (whole if len(whole) <= limit else None)
