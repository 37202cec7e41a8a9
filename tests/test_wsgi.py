"""The WSGI middleware under a real server (waitress on 127.0.0.1), both modes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import waitress

from mailspool import Settings, send_message
from mailspool.integrations.wsgi import MailspoolMiddleware
from tests import framework_common as common
from tests.fixtures.smtp_server import SMTPSink


def view(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    common.send_from_view()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@contextmanager
def running_waitress(app: Any) -> Iterator[str]:
    """waitress in a thread on a free port; its base URL."""
    port = common.free_port()
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=2)
    closing = threading.Event()

    def serve() -> None:
        try:
            server.run()
        except (OSError, ValueError):  # its loop met the socket closed under it: the end
            if not closing.is_set():
                raise

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        closing.set()
        server.close()
        thread.join(10)


def settings_for(store_url: str, smtp_server: SMTPSink) -> Settings:
    return Settings.load(store=store_url, priority_transport=smtp_server.url)


def test_before_mode_stores_500_before_the_response(spool: Path, smtp_server: SMTPSink) -> None:
    settings = settings_for(f"file://{spool}", smtp_server)
    with running_waitress(MailspoolMiddleware(view, settings=settings)) as url:
        status, body = common.get(f"{url}/")
        assert (status, body) == (200, b"ok")
        common.assert_priority_only(smtp_server)
        assert len(common.queued_files(spool)) == 1  # stored before the client had its answer

    common.drain(spool, smtp_server)
    common.assert_followers_once_whole(smtp_server)


def test_after_mode_answers_while_the_store_is_still_writing(
    spool: Path, smtp_server: SMTPSink
) -> None:
    store = common.HangingStore(spool)
    settings = settings_for(common.install_store(store), smtp_server)
    app = MailspoolMiddleware(view, mode="after", settings=settings)
    with running_waitress(app) as url:
        status, body = common.get(f"{url}/")
        assert (status, body) == (200, b"ok")
        assert store.entered.wait(10)
        assert common.queued_files(spool) == []  # the client had its answer first
        store.release.set()

    common.drain(spool, smtp_server)
    common.assert_followers_once_whole(smtp_server)


def test_a_view_that_raises_still_writes_its_mail_with_on_error_write(spool: Path) -> None:
    def failing(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        common.send_from_view(3)
        raise RuntimeError("boom")

    settings = Settings.load(
        store=f"file://{spool}", priority_transport="memory:", on_error="write"
    )
    app = MailspoolMiddleware(failing, settings=settings)
    with pytest.raises(RuntimeError):
        app({}, lambda *a: None)

    [batch] = common.queued_files(spool)
    assert batch.read_bytes().count(b"follower") == 3


@pytest.mark.parametrize("fails", ["raises", "answers 500"])
def test_a_failed_request_drops_its_deferred_mail_by_default(spool: Path, fails: str) -> None:
    def failing(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        common.send_from_view(3)
        if fails == "raises":
            raise RuntimeError("boom")
        start_response("500 Internal Server Error", [])
        return [b"oops"]

    settings = Settings.load(store=f"file://{spool}", priority_transport="memory:")
    app = MailspoolMiddleware(failing, settings=settings)
    if fails == "raises":
        with pytest.raises(RuntimeError):
            app({}, lambda *a: None)
    else:
        body = app({}, lambda *a: None)
        assert b"".join(body) == b"oops"
        body.close()  # type: ignore[attr-defined]
    assert common.queued_files(spool) == []


def test_a_streamed_body_holds_its_last_chunk_until_stored(spool: Path) -> None:
    seen: list[int] = []

    def streaming(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])
        for i in range(3):
            send_message(common.notification(i), priority=False)
            yield b"x"

    settings = Settings.load(store=f"file://{spool}")
    body = MailspoolMiddleware(streaming, settings=settings)({}, lambda *a: None)
    for _ in body:
        seen.append(len(common.queued_files(spool)))
    body.close()  # type: ignore[attr-defined]

    assert seen == [0, 0, 1]  # the last chunk comes after the write


def test_unknown_mode_is_refused() -> None:
    from mailspool import ConfigurationError

    with pytest.raises(ConfigurationError, match="mode"):
        MailspoolMiddleware(view, mode="later")
