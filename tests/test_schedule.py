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
from hypothesis import given
from hypothesis import strategies as st

import mailspool
from mailspool.cli import cli
from mailspool.delivery.worker import Worker
from mailspool.errors import InvalidBatch, InvalidMessage
from mailspool.message import Message
from mailspool.ops.status import collect_status
from mailspool.producer.later import parse_when
from mailspool.spool import batch, layout, schedule
from mailspool.spool.records import FailedRecord, KeyRecord, Timing, timestamp
from mailspool.stores import Store, open_store
from mailspool.transports.memory import MemoryTransport
from mailspool.triggers.local import drain, run_forever
from tests.fixtures.moto_server import MotoServer
from tests.strategies import messages

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


_moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)
)


@given(due=_moments, suffix=st.text("0123456789abcdef", min_size=8, max_size=8))
def test_scheduled_keys_sort_by_due_time_and_read_back(due: datetime, suffix: str) -> None:
    batch_id = f"20261129T080000000000Z-{suffix}"
    key = schedule.scheduled_key(due, batch_id)
    assert schedule.due_of(key) == (due.timestamp(), batch_id)
    later = schedule.scheduled_key(due + timedelta(microseconds=1), batch_id)
    assert key < later


@given(name=st.text(max_size=40))
def test_any_other_name_in_scheduled_is_left_alone(name: str) -> None:
    parsed = schedule.due_of(f"{schedule.SCHEDULED}{name}")
    assert (
        parsed is None
        or schedule.scheduled_key(datetime.fromtimestamp(parsed[0], UTC), parsed[1])
        == f"{schedule.SCHEDULED}{name}"
    )


@given(
    send_at=st.none() | _moments,
    expires_at=st.none() | _moments,
    key=st.none() | st.text(min_size=1, max_size=256),
    message=messages(),
)
def test_timing_survives_the_batch_file(
    send_at: datetime | None, expires_at: datetime | None, key: str | None, message: Message
) -> None:
    timing = Timing(
        None if send_at is None else timestamp(send_at),
        None if expires_at is None else timestamp(expires_at),
        key,
    )
    data = batch.encode([message], batch_id="b", default_sender=SENDER, timing=timing)
    decoded = batch.decode(data)
    assert decoded.timing == timing
    assert decoded.expires() == expires_at
    assert decoded.document().encode() == data


@pytest.mark.parametrize(
    ("field", "value"),
    [("sendAt", "tomorrow"), ("expiresAt", "2030-01-01T09:00:00"), ("key", ""), ("key", 7)],
)
def test_a_bad_timing_field_is_named(field: str, value: object) -> None:
    document = orjson.loads(
        batch.encode(
            [Message(to=("a@example.org",), subject="s", text="x")],
            batch_id="b",
            default_sender=SENDER,
        )
    )
    document[field] = value
    with pytest.raises(InvalidBatch) as raised:
        batch.decode(orjson.dumps(document), source="queue/b.json")
    assert (raised.value.field, raised.value.source) == (field, "queue/b.json")


@given(seconds=st.floats(allow_nan=False, allow_infinity=False), moment=_moments)
def test_parse_when_takes_seconds_or_an_offset_time(seconds: float, moment: datetime) -> None:
    assert parse_when(repr(seconds), "--at") == seconds
    assert parse_when(moment.isoformat(), "--at") == moment


@pytest.mark.parametrize("text", ["tomorrow", "2030-01-01T09:00:00", ""])
def test_parse_when_names_the_field_it_cannot_read(text: str) -> None:
    with pytest.raises(InvalidMessage) as raised:
        parse_when(text, "X-Mailspool-Send-At")
    assert raised.value.field == "X-Mailspool-Send-At"


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), 1e300])
def test_seconds_that_are_no_time_are_refused(store: Store, seconds: float) -> None:
    with pytest.raises(InvalidMessage, match="'expires_at'"):
        mailspool.send_mail("ana@example.org", "S", "x", expires_at=seconds)
    assert list(store.keys("")) == []


def test_a_key_record_naming_another_object_moves_nothing(store: Store) -> None:
    """The record is read from the store, so it is hostile: cancel only ever moves the
    batch's own queue/ or scheduled/ file."""
    store.put("failed/b.0.json", b"{}")
    forged = KeyRecord("forged", "b", "failed/b.0.json", timestamp())
    store.put(schedule.key_record_key("forged"), forged.encode())
    escaping = KeyRecord("escaping", "../b", "queue/../b.json", timestamp())
    store.put(schedule.key_record_key("escaping"), escaping.encode())
    assert mailspool.cancel("forged") is False
    assert mailspool.cancel("escaping") is False
    assert list(store.keys("failed/")) == ["failed/b.0.json"]
    assert list(store.keys(schedule.CANCELLED)) == []
