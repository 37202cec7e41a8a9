"""Send later, expiry, idempotency keys and cancel, on the file store and on S3 (moto in
server mode): a scheduled e-mail waits in ``scheduled/`` until due, an expired one fails
unsent, a key is accepted once (also from two processes at once), cancel stops what was
not sent and says False after, and ``status --json`` adds up."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import orjson
import pytest
from click.testing import CliRunner

import mailspool
from mailspool.cli import cli
from mailspool.delivery.worker import Worker
from mailspool.errors import InvalidMessage
from mailspool.message import Message
from mailspool.ops.status import collect_status
from mailspool.spool import layout, schedule
from mailspool.spool.records import FailedRecord
from mailspool.stores import Store, open_store
from mailspool.transports.memory import MemoryTransport
from mailspool.triggers.local import drain, run_forever
from tests.fixtures.moto_server import MotoServer

SENDER = "Mailspool <mail@example.com>"


@pytest.fixture(params=["file", "s3"])
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    if request.param == "file":
        url = f"file://{tmp_path / 'spool'}"
    else:
        moto: MotoServer = request.getfixturevalue("aws")
        boto3.client("s3", endpoint_url=moto.endpoint).create_bucket(Bucket="later")
        url = "s3://later/spool"
    monkeypatch.setenv("MAILSPOOL_STORE", url)
    monkeypatch.setenv("MAILSPOOL_SENDER", SENDER)
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as the_store:
        yield the_store


def _drain(store: Store) -> list[Message]:
    """Drain the store through a memory transport; the e-mails it sent."""
    transport = MemoryTransport()
    worker = Worker(store, transport)
    try:
        drain(worker, fallback_base=None)
    finally:
        worker.close()
    return [sent.message for sent in transport.outbox]


def _status(store: Store) -> dict[str, int]:
    counts = collect_status(store).as_dict()
    parts = ("pending", "sent", "failed", "quarantined", "scheduled", "cancelled")
    assert counts["total"] == sum(counts[name] for name in parts)
    return counts


def test_a_scheduled_email_waits_until_due_then_goes(store: Store) -> None:
    due = datetime.now(UTC) + timedelta(hours=1)
    assert mailspool.send_mail("ana@example.org", "Reminder", "<p>tomorrow</p>", send_at=due)
    [key] = store.keys(schedule.SCHEDULED)
    assert key.startswith(f"{schedule.SCHEDULED}{due:%Y%m%dT%H%M%S%fZ}-")
    assert list(store.keys(layout.QUEUE)) == []
    assert _drain(store) == []  # not due: not sent
    assert (_status(store)["scheduled"], _status(store)["pending"]) == (1, 0)
    moved, next_at = schedule.promote_due(store, now=due.timestamp() - 1)
    assert (moved, next_at) == ([], due.timestamp())
    moved, next_at = schedule.promote_due(store, now=due.timestamp())
    assert len(moved) == 1
    assert next_at is None
    [sent] = _drain(store)
    assert sent.to == ("ana@example.org",)
    assert _status(store)["sent"] == 1
    assert _status(store)["scheduled"] == 0


def test_a_priority_email_with_send_at_is_deferred(store: Store) -> None:
    assert mailspool.send_mail("ana@example.org", "Later", "x", priority=True, send_at=3600)
    assert len(list(store.keys(schedule.SCHEDULED))) == 1


def test_only_the_due_part_of_scheduled_is_promoted_in_due_order(store: Store) -> None:
    for hours in (3, 1, 2):
        mailspool.send_mail(f"h{hours}@example.org", "Digest", "x", send_at=hours * 3600)
    soon = time.time() + 2.5 * 3600
    moved, next_at = schedule.promote_due(store, now=soon)
    assert len(moved) == 2
    assert next_at is not None
    assert next_at > soon
    assert sorted(m.to[0] for m in _drain(store)) == [
        "h1@example.org",
        "h2@example.org",
    ]
    assert _status(store)["scheduled"] == 1


def test_the_running_worker_sends_a_scheduled_email_when_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = f"file://{tmp_path / 'spool'}"
    monkeypatch.setenv("MAILSPOOL_STORE", store_url)
    transport = MemoryTransport()
    with open_store(store_url) as store:
        worker = Worker(store, transport)
        thread = threading.Thread(
            target=run_forever, args=(worker,), kwargs={"fallback_base": None}
        )
        thread.start()
        try:
            mailspool.send_mail("ana@example.org", "Soon", "x", send_at=0.3)
            for _ in range(400):  # a bound on the wait, not a timing assertion
                if transport.outbox:
                    break
                time.sleep(0.05)
        finally:
            worker.stop()
            thread.join()
            worker.close()
    assert [sent.message.to for sent in transport.outbox] == [("ana@example.org",)]


def test_an_expired_email_fails_unsent_and_not_retryable(store: Store) -> None:
    assert mailspool.send_mail("ana@example.org", "Code 1234", "x", expires_at=-1)
    assert _drain(store) == []
    [key] = store.keys(layout.FAILED)
    record = FailedRecord.decode(store.get(key), source=key)
    assert record.retryable is False
    assert "expired" in record.reason
    assert _status(store)["failed"] == 1


def test_an_email_not_yet_expired_is_sent(store: Store) -> None:
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert mailspool.send_mail("ana@example.org", "Code 1234", "x", expires_at=later)
    assert len(_drain(store)) == 1


def test_the_same_key_twice_queues_once(store: Store) -> None:
    assert mailspool.send_mail("ana@example.org", "Order", "x", key="order-17") is True
    assert mailspool.send_mail("ana@example.org", "Order", "x", key="order-17") is False
    assert mailspool.send_mail("ana@example.org", "Order", "x", key="order-18") is True
    assert len(_drain(store)) == 2
    assert _status(store)["sent"] == 2


def test_a_key_is_accepted_again_after_its_window(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSPOOL_IDEMPOTENCY_WINDOW", "0.001")
    assert mailspool.send_mail("ana@example.org", "Order", "x", key="k")
    time.sleep(0.01)
    assert mailspool.send_mail("ana@example.org", "Order", "x", key="k")
    assert len(_drain(store)) == 2


_SEND_WITH_KEY = """
import sys, mailspool
accepted = mailspool.send_mail("ana@example.org", "Once", "x", key="twice-submitted")
sys.stdout.write("accepted" if accepted else "refused")
"""


def test_the_same_key_from_two_processes_at_once_delivers_once(store: Store) -> None:
    processes = [
        subprocess.Popen([sys.executable, "-c", _SEND_WITH_KEY], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    answers = sorted(p.communicate()[0].decode() for p in processes)
    assert answers == ["accepted", "refused", "refused", "refused"]
    assert len(_drain(store)) == 1


def test_cancel_stops_a_scheduled_and_a_pending_email_and_says_false_after(
    store: Store,
) -> None:
    mailspool.send_mail("ana@example.org", "Later", "x", key="later", send_at=3600)
    mailspool.send_mail("bob@example.org", "Queued", "x", key="queued")
    mailspool.send_mail("cy@example.org", "Sent", "x", key="sent")
    assert mailspool.cancel("later") is True
    assert mailspool.cancel("queued") is True
    assert mailspool.cancel("later") is False  # already cancelled
    assert mailspool.cancel("nobody") is False
    counts = _status(store)
    assert (counts["cancelled"], counts["scheduled"], counts["pending"]) == (2, 0, 1)
    assert [m.to for m in _drain(store)] == [("cy@example.org",)]
    assert mailspool.cancel("sent") is False
    counts = _status(store)
    assert (counts["cancelled"], counts["sent"], counts["total"]) == (2, 1, 3)
    schedule.promote_due(store, now=time.time() + 7200)
    assert _drain(store) == []


def test_cancel_says_false_while_a_worker_holds_the_batch(store: Store) -> None:
    mailspool.send_mail("ana@example.org", "Busy", "x", key="busy")
    [key] = store.keys(layout.QUEUE)
    lease = store.claim(layout.batch_id_from_key(key), "a-worker", 60)
    assert lease is not None
    assert mailspool.cancel("busy") is False
    store.release(lease)
    assert mailspool.cancel("busy") is True


def test_naive_datetimes_and_bad_keys_are_refused(store: Store) -> None:
    with pytest.raises(InvalidMessage, match=r"send_at.*timezone"):
        mailspool.send_mail("ana@example.org", "S", "x", send_at=datetime(2030, 1, 1))
    with pytest.raises(InvalidMessage, match="'key'"):
        mailspool.send_mail("ana@example.org", "S", "x", key="")
    assert list(store.keys("")) == []


def test_the_cli_sends_later_with_a_key_and_cancels(store: Store) -> None:
    runner = CliRunner()
    base = ["send", "--to", "ana@example.org", "--subject", "S", "--body", "x"]
    when = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    first = runner.invoke(cli, [*base, "--at", when, "--expires", "172800", "--key", "k1"])
    assert first.exit_code == 0, first.output
    assert "scheduled" in first.output
    again = runner.invoke(cli, [*base, "--key", "k1"])
    assert again.exit_code == 1
    assert "already accepted" in again.output
    bad = runner.invoke(cli, [*base, "--at", "tomorrow"])
    assert bad.exit_code == 2
    assert "ISO 8601" in bad.output
    cancelled = runner.invoke(cli, ["cancel", "k1"])
    assert cancelled.exit_code == 0, cancelled.output
    not_again = runner.invoke(cli, ["cancel", "k1"])
    assert not_again.exit_code == 1
    assert "not cancelled" in not_again.output
    status = runner.invoke(cli, ["status", "--json"])
    counts = orjson.loads(status.output)
    assert (counts["cancelled"], counts["scheduled"], counts["total"]) == (1, 0, 1)
