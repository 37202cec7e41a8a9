"""The dashboard inside other applications (a Django URL include, Flask through WSGI
dispatch) and the feedback endpoints it serves in `mailspool serve`."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from mailspool.config import Settings
from mailspool.feedback.settings import unsubscribe_links
from mailspool.feedback.suppression import SuppressionList
from mailspool.stores.file import FileStore
from mailspool.web import Dashboard
from tests.dashboard_common import mixed_store, running_dashboard
from tests.fixtures.smtp_server import SMTPSink

URL = "https://blog.example.com/mail/unsubscribe"
SECRET = "a-secret-of-more-than-16-bytes"


def csrf_token(page: bytes) -> str:
    found = re.search(rb'name="csrf_token" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1).decode()


def test_flask_mounts_the_wsgi_app_under_a_prefix(spool: Path, smtp_server: SMTPSink) -> None:
    mixed_store(spool, smtp_server)
    store = FileStore(spool)
    app = Flask(__name__)
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {"/ops/mail": Dashboard(store, token="").wsgi()}
    )
    client = app.test_client()
    page = client.get("/ops/mail/failed")
    assert page.status_code == 200
    assert b'action="/ops/mail/failed/retry"' in page.data
    failed_id = re.search(rb'name="id" value="([^"]+)"', page.data)
    assert failed_id is not None
    origin = {"Origin": "http://localhost"}
    form = {"id": failed_id.group(1).decode()}
    assert client.post("/ops/mail/failed/retry", data=form, headers=origin).status_code == 403
    form["csrf_token"] = csrf_token(page.data)
    answer = client.post("/ops/mail/failed/retry", data=form, headers=origin)
    assert answer.status_code == 303
    assert answer.headers["Location"].endswith("/ops/mail/failed")
    assert b"No e-mail has failed." in client.get("/ops/mail/failed").data
    store.close()


def test_django_url_include(spool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSPOOL_STORE", f"file://{spool}")
    from tests import django_settings

    django_settings.configure()
    from django.test import Client

    client = Client()
    page = client.get("/ops/mail/")
    assert page.status_code == 200
    assert b'href="/ops/mail/failed"' in page.content
    assert b'<dd id="count-pending">0</dd>' in page.content
    assert "default-src 'none'" in page["Content-Security-Policy"]
    refused = client.post("/ops/mail/suppression/add", {"address": "a@example.com"})
    assert refused.status_code == 403
    assert not SuppressionList(FileStore(spool)).is_suppressed("a@example.com")


@pytest.mark.slow
def test_serve_answers_the_unsubscribe_link(spool: Path, tmp_path: Path) -> None:
    env = {"MAILSPOOL_UNSUBSCRIBE_URL": URL, "MAILSPOOL_UNSUBSCRIBE_SECRET": SECRET}
    links = unsubscribe_links(
        Settings.load(store=f"file://{spool}", **{k[10:].lower(): v for k, v in env.items()})
    )
    assert links is not None
    with running_dashboard(spool, env=env) as base:
        good = urllib.request.Request(
            f"{base}/unsubscribe?token={links.token('bob@example.com')}", data=b"", method="POST"
        )
        with urllib.request.urlopen(good, timeout=30) as answer:
            assert answer.status == 200
        bad = urllib.request.Request(f"{base}/unsubscribe?token=nope", data=b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=30)
        assert refused.value.code == 400
    suppressions = SuppressionList(FileStore(spool))
    assert suppressions.is_suppressed("bob@example.com")
