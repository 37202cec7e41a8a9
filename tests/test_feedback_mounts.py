"""The feedback endpoints mounted in ASGI (under uvicorn), Flask and Django; and the
List-Unsubscribe headers on deferred mail, not on priority mail."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from flask import Flask

from mailspool.config import Settings
from mailspool.delivery.steps import SuppressionScreen, UnsubscribeHeaders
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.feedback.endpoints import asgi_app
from mailspool.feedback.settings import endpoints_from_settings, unsubscribe_links
from mailspool.feedback.suppression import SuppressionList, shared_suppressions
from mailspool.integrations.flask_feedback import feedback_blueprint
from mailspool.message import Message
from mailspool.producer.api import send_now
from mailspool.spool import batch, layout
from mailspool.stores.memory import MemoryStore
from mailspool.stores.open_stores import shared_store
from mailspool.transports.memory import MemoryTransport
from mailspool.transports.open_transports import shared_transport
from tests.test_asgi import running_uvicorn

URL = "https://blog.example.com/mail/unsubscribe"
SECRET = "a-secret-of-more-than-16-bytes"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in {
        "MAILSPOOL_STORE": f"file://{tmp_path / 'spool'}",
        "MAILSPOOL_UNSUBSCRIBE_URL": URL,
        "MAILSPOOL_UNSUBSCRIBE_SECRET": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    return Settings.load()


def token(settings: Settings, address: str) -> str:
    links = unsubscribe_links(settings)
    assert links is not None
    return links.token(address)


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_asgi_app_under_uvicorn(settings: Settings) -> None:
    app = asgi_app(endpoints_from_settings(settings))
    with running_uvicorn(app) as base:
        assert (
            post(
                f"{base}/unsubscribe?token={token(settings, 'ana@example.com')}",
                b"List-Unsubscribe=One-Click",
            )
            == 200
        )
        assert post(f"{base}/unsubscribe?token=forged.token", b"") == 400
        assert post(f"{base}/events/ses", b"{}") == 404  # no SNS topic allowed: not served
    assert SuppressionList(shared_store(settings.store)).is_suppressed("ana@example.com")


def test_flask_blueprint(settings: Settings) -> None:
    app = Flask(__name__)
    app.register_blueprint(feedback_blueprint(), url_prefix="/mail")
    client = app.test_client()
    answer = client.post(f"/mail/unsubscribe?token={token(settings, 'bob@example.com')}")
    assert answer.status_code == 200
    assert client.get("/mail/unsubscribe?token=nope").status_code == 400
    assert SuppressionList(shared_store(settings.store)).is_suppressed("bob@example.com")


def test_django_url_include(settings: Settings) -> None:
    from tests import django_settings

    django_settings.configure()
    from django.test import Client

    client = Client()
    answer = client.post(f"/mail/unsubscribe?token={token(settings, 'cy@example.com')}")
    assert answer.status_code == 200
    assert client.post("/mail/unsubscribe?token=nope").status_code == 400
    assert SuppressionList(shared_store(settings.store)).is_suppressed("cy@example.com")


def test_deferred_mail_carries_the_headers_and_priority_mail_does_not(settings: Settings) -> None:
    store, transport = MemoryStore(), MemoryTransport()
    message = Message(
        to=("dee@example.com",), subject="New post", text="x", sender="blog@example.com"
    )
    batch_id = layout.new_batch_id()
    store.put(
        layout.queue_key(batch_id),
        batch.encode([message], batch_id=batch_id, default_sender="blog@example.com"),
    )
    links = unsubscribe_links(settings)
    Worker(
        store,
        transport,
        options=WorkerOptions(concurrency=1),
        steps=[SuppressionScreen(shared_suppressions(store)), UnsubscribeHeaders(links)],
    ).deliver(layout.queue_key(batch_id))
    [deferred] = transport.outbox
    headers = deferred.parsed()
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(headers["List-Unsubscribe"]).strip().startswith(f"<{URL}?token=")

    priority = Settings.load(priority_transport="memory:priority-unsubscribe")
    now = shared_transport(priority.priority_transport)
    assert isinstance(now, MemoryTransport)
    send_now(message, settings=priority)
    send_now(message, settings=priority, unsubscribe=True)
    plain, asked = (sent.parsed() for sent in now.outbox)
    assert plain["List-Unsubscribe"] is None
    assert str(asked["List-Unsubscribe"]).strip().startswith(f"<{URL}?token=")
