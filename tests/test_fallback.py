"""A store that hangs or refuses: the request answers in bounded time, nothing is lost."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

import mailspool
from mailspool import Settings, StoreError
from mailspool.integrations.wsgi import MailspoolMiddleware
from mailspool.producer.fallback import fallback_url_for, recover_fallback
from mailspool.stores.file import FileStore
from tests import framework_common as common
from tests.fixtures.smtp_server import SMTPSink
from tests.test_wsgi import running_waitress, view

BOUND = 10.0  # the documented bound is MAILSPOOL_WRITE_TIMEOUT (1 s here) + a local write


def settings_for(store_url: str, smtp_server: SMTPSink) -> Settings:
    return Settings.load(
        store=store_url, priority_transport=smtp_server.url, write_timeout=1.0, write_attempts=3
    )


def refusing_store(
    spool: Path, smtp_server: SMTPSink, caplog: pytest.LogCaptureFixture
) -> tuple[common.RefusingStore, Settings]:
    """The process's store for ``spool`` refuses every write; its errors are captured."""
    store = common.RefusingStore(spool)
    caplog.set_level(logging.ERROR, "mailspool")
    return store, settings_for(common.install_store(store), smtp_server)


def fallback_files(tmp_path: Path, store_url: str) -> list[Path]:
    base = f"file://{tmp_path / 'xdg' / 'mailspool' / 'fallback'}"
    folder = Path(fallback_url_for(store_url, base).removeprefix("file://"))
    return sorted((folder / "queue").glob("*.json"))


def test_hanging_store_request_returns_in_bound_and_a_late_write_is_not_doubled(
    tmp_path: Path, spool: Path, smtp_server: SMTPSink, caplog: pytest.LogCaptureFixture
) -> None:
    store = common.HangingStore(spool)
    settings = settings_for(common.install_store(store), smtp_server)
    with running_waitress(MailspoolMiddleware(view, settings=settings)) as url:
        started = time.monotonic()
        status, _ = common.get(f"{url}/")
        elapsed = time.monotonic() - started

    assert status == 200
    assert elapsed < BOUND
    assert len(fallback_files(tmp_path, store.url)) == 1
    assert "fallback" in caplog.text
    store.release.set()  # the timed-out write now lands in the store as well
    deadline = time.monotonic() + 30
    while not common.queued_files(spool):
        assert time.monotonic() < deadline
        time.sleep(0.01)

    common.drain(spool, smtp_server)
    common.assert_followers_once_whole(smtp_server)
    assert fallback_files(tmp_path, store.url) == []


def test_refusing_store_request_succeeds_and_the_worker_delivers_later(
    tmp_path: Path, spool: Path, smtp_server: SMTPSink, caplog: pytest.LogCaptureFixture
) -> None:
    store, settings = refusing_store(spool, smtp_server, caplog)
    with running_waitress(MailspoolMiddleware(view, settings=settings)) as url:
        status, _ = common.get(f"{url}/")

    assert status == 200
    common.assert_priority_only(smtp_server)
    assert common.queued_files(spool) == []
    assert len(fallback_files(tmp_path, store.url)) == 1
    assert any("503 Slow Down" in r.getMessage() for r in caplog.records)

    common.drain(spool, smtp_server)  # the worker moves the fallback batch, then delivers
    common.assert_followers_once_whole(smtp_server)
    assert fallback_files(tmp_path, store.url) == []


def test_when_the_fallback_fails_too_the_caller_is_told(tmp_path: Path, spool: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the fallback folder should be")
    settings = Settings.load(
        store=common.install_store(common.RefusingStore(spool)),
        fallback_store=f"file://{blocked}",
        write_timeout=0.5,
    )

    with pytest.raises(StoreError, match="nor to"), mailspool.request(settings=settings):
        mailspool.send_message(common.notification(1), priority=False)


def test_recovery_skips_a_batch_the_store_already_finished(tmp_path: Path) -> None:
    primary, fallback = FileStore(tmp_path / "p"), FileStore(tmp_path / "f")
    fallback.put("queue/b1.json", b"{}")
    fallback.put("queue/b2.json", b"{}")
    primary.put("done/b1.json", b"{}")

    assert recover_fallback(fallback, primary) == 1

    assert list(primary.keys("queue/")) == ["queue/b2.json"]
    assert list(fallback.keys("queue/")) == []


def test_a_file_store_inside_the_fallback_folder_gets_a_sibling(tmp_path: Path) -> None:
    base = f"file://{tmp_path / 'fallback'}"

    url = fallback_url_for(base, base)

    assert url.startswith(f"{base}-2/")
    assert fallback_url_for("s3://bucket/x", base).startswith(f"{base}/")


def test_send_mail_outside_a_scope_falls_back_from_a_refusing_store_and_is_delivered(
    tmp_path: Path, spool: Path, smtp_server: SMTPSink, caplog: pytest.LogCaptureFixture
) -> None:
    """A script or a task: no request scope, the same fallback (RefusingStore: a stub)."""
    store, settings = refusing_store(spool, smtp_server, caplog)

    for i in range(10):
        mailspool.send_message(common.notification(i), priority=False, settings=settings)

    assert common.queued_files(spool) == []
    assert len(fallback_files(tmp_path, store.url)) == 10
    assert any("503 Slow Down" in r.getMessage() for r in caplog.records)
    common.drain(spool, smtp_server)
    common.assert_followers_once_whole(smtp_server, count=10)
    assert fallback_files(tmp_path, store.url) == []


def test_send_mail_outside_a_scope_returns_in_bound_from_a_hanging_store(
    tmp_path: Path, spool: Path, smtp_server: SMTPSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``send_mail`` in a script, settings from the environment (HangingStore: a stub)."""
    store = common.HangingStore(spool)
    monkeypatch.setenv("MAILSPOOL_STORE", common.install_store(store))
    monkeypatch.setenv("MAILSPOOL_WRITE_TIMEOUT", "1")

    assert mailspool.send_mail(common.follower(3), "New post 3", "<p>Read post 3</p>") is True

    assert store.entered.is_set()  # it returned while the store's write still hangs
    assert not store.release.is_set()
    assert len(fallback_files(tmp_path, store.url)) == 1
    store.release.set()  # the late write lands too: the batch is still delivered once
    deadline = time.monotonic() + 30
    while not common.queued_files(spool):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    common.drain(spool, smtp_server)
    assert [list(e.rcpt_tos) for e in smtp_server.envelopes] == [[common.follower(3)]]
    assert fallback_files(tmp_path, store.url) == []
