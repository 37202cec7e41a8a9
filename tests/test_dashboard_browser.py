"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright.

`python3 dev.py test` installs chromium when it is missing. With
UPDATE_SCREENSHOTS=1 the test also saves the screenshots linked from the README
into docs/img/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from mailspool.ops import admin
from mailspool.spool import layout
from mailspool.stores.file import FileStore
from tests.dashboard_common import GONE, deliver, mixed_store, running_dashboard, status_json
from tests.fixtures.smtp_server import SMTPSink

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield browser
        browser.close()


def screenshot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, DOCS_IMG / name)


def test_overview_failed_page_and_retry(
    browser: Browser, spool: Path, smtp_server: SMTPSink, tmp_path: Path
) -> None:
    mixed_store(spool, smtp_server)
    expected = status_json(spool)
    with running_dashboard(spool) as base:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(f"{base}/")
        for state in ("pending", "sent", "failed", "quarantined", "suppressed"):
            assert page.text_content(f"#count-{state}") == str(expected[state])
        assert (expected["pending"], expected["sent"], expected["failed"]) == (2, 3, 1)
        screenshot(page, tmp_path, "dashboard-overview.png")

        page.goto(f"{base}/failed")
        row = page.locator("#failed tr", has_text=GONE)
        assert GONE in row.locator("td.address").inner_text()
        assert "550 5.1.1" in row.locator("td.reason").inner_text()
        screenshot(page, tmp_path, "dashboard-failed.png")

        smtp_server.accept_recipient(GONE)
        row.get_by_role("button", name="Retry").click()
        page.wait_for_url(f"{base}/failed")
        assert "No e-mail has failed." in page.inner_text("main")
        page.close()
    assert status_json(spool)["failed"] == 0
    deliver(spool, smtp_server)
    assert any(GONE in envelope.rcpt_tos for envelope in smtp_server.envelopes)
    assert status_json(spool)["sent"] == 6


def test_retry_posted_without_csrf_token_is_refused_and_changes_nothing(
    browser: Browser, spool: Path, smtp_server: SMTPSink
) -> None:
    mixed_store(spool, smtp_server)
    store = FileStore(spool)
    failed_id = admin.list_failed(store)[0].id
    queued = sorted(store.keys(layout.QUEUE))
    with running_dashboard(spool) as base:
        page = browser.new_page()
        page.goto(f"{base}/failed")  # the browser has its CSRF cookie, like a real session
        response = page.request.post(
            f"{base}/failed/retry", form={"id": failed_id}, headers={"Origin": base}
        )
        assert response.status == 403
        assert "CSRF" in response.text()
        forged = page.request.post(
            f"{base}/failed/retry",
            form={"id": failed_id, "csrf_token": "0" * 64},
            headers={"Origin": base},
        )
        assert forged.status == 403
        page.close()
    assert [item.id for item in admin.list_failed(store)] == [failed_id]
    assert sorted(store.keys(layout.QUEUE)) == queued
    store.close()
