"""Every page of the dashboard names the store it shows, a password in its URL hidden;
the sign-in page names none."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailspool.stores.file import FileStore
from mailspool.stores.memory import MemoryStore
from mailspool.web import Dashboard
from mailspool.web.app import shown_url
from mailspool.web.http import Request

PAGES = ["/", "/batches", "/failed", "/quarantine", "/suppression", "/trace"]


def page(dashboard: Dashboard, path: str, **headers: str) -> str:
    response = dashboard.handle(Request("GET", path, headers={"host": "localhost", **headers}))
    assert response.status == 200, response.body
    return response.body.decode()


@pytest.mark.parametrize("path", PAGES)
def test_every_page_names_the_store(path: str, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "app-spool")
    shown = page(Dashboard(store, token=None, public={}), path)
    assert f'<span class="store">store <code>{store.url}</code></span>' in shown


def test_a_password_in_the_store_url_is_not_shown() -> None:
    assert shown_url("s3://key:secret@bucket/spool") == "s3://key:***@bucket/spool"
    assert shown_url("file:///var/spool/mail") == "file:///var/spool/mail"
    assert "secret" not in shown_url("s3://key:secret@[bad/spool")


def test_the_sign_in_page_names_no_store() -> None:
    dashboard = Dashboard(MemoryStore(), token="t0ken", public={})
    shown = page(dashboard, "/login")
    assert 'class="store"' not in shown
    assert 'class="store"' in page(dashboard, "/", authorization="Bearer t0ken")
