"""The worker's one code path, in process: ledger, retries, deadline, split, claims."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

import mailspool
from mailspool.config import Settings
from mailspool.delivery.ratelimit import RateLimiter
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import PermanentError, SendingPaused, TransientError
from mailspool.message import Message
from mailspool.ops import admin
from mailspool.ops.status import collect_status
from mailspool.spool import layout
from mailspool.spool.ledger import Ledger, LedgerEntry, read_entries
from mailspool.stores.file import FileStore
from mailspool.stores.memory import MemoryStore
from mailspool.transports.base import Receipt
from mailspool.transports.memory import MemoryTransport
from mailspool.transports.smtp import SMTPTransport
from mailspool.triggers.local import drain, run_forever
from tests.fixtures.smtp_server import SMTPSink

FAST = WorkerOptions(concurrency=4, retry_base=0.001, retry_cap=0.01, max_attempts=3)


def queue(store: MemoryStore | FileStore, count: int, prefix: str = "u") -> str:
    settings = Settings.load(store="memory:unused")
    with mailspool.request(store=store, settings=settings) as scope:
        for i in range(count):
            mailspool.send_mail(f"{prefix}{i}@example.com", f"n{i}", "<p>x</p>")
    [key] = scope.keys
    return key


def recipients(transport: MemoryTransport) -> Counter[str]:
    return Counter(r for sent in transport.outbox for r in sent.envelope_recipients)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def transport() -> MemoryTransport:
    return MemoryTransport()


def test_a_rerun_resumes_from_the_ledger(store: MemoryStore, transport: MemoryTransport) -> None:
    key = queue(store, 10)
    batch_id = layout.batch_id_from_key(key)
    Ledger(store, batch_id).record_many(LedgerEntry.sent(i, "earlier", 1) for i in range(6))
    report = Worker(store, transport, options=FAST).deliver(key)
    assert report.status == "finished"
    assert report.sent == 4
    assert set(recipients(transport)) == {f"u{i}@example.com" for i in range(6, 10)}
    assert store.exists(layout.done_key(batch_id))
    assert not store.exists(key)


def test_transient_errors_are_retried_then_sent(
    store: MemoryStore, transport: MemoryTransport
) -> None:
    key = queue(store, 5)
    transport.fail_next(TransientError("451 4.7.1 try later"), times=2)
    report = Worker(store, transport, options=FAST).deliver(key)
    assert (report.sent, report.failed) == (5, 0)
    assert recipients(transport) == Counter(f"u{i}@example.com" for i in range(5))
    attempts = sorted(
        e.attempts or 0 for e in read_entries(store, layout.batch_id_from_key(key)).values()
    )
    assert attempts[-1] >= 2


def test_transient_errors_give_up_after_max_attempts(
    store: MemoryStore, transport: MemoryTransport
) -> None:
    key = queue(store, 1)
    transport.fail_next(TransientError("421 4.3.0 busy"), times=10)
    report = Worker(store, transport, options=FAST).deliver(key)
    assert (report.sent, report.failed) == (0, 1)
    [failed_key] = list(store.keys(layout.FAILED))
    record = orjson.loads(store.get(failed_key))
    assert record["retryable"] is True
    assert record["attempts"] == 3
    assert record["reason"] == "gave up after 3 attempts: 421 4.3.0 busy"


def test_a_permanent_error_fails_only_that_email(
    store: MemoryStore, transport: MemoryTransport
) -> None:
    key = queue(store, 5)

    def refuse_u2(message: Message) -> Receipt | None:
        if "u2@example.com" in message.envelope_recipients:
            raise PermanentError("550 5.1.1 no such user")
        return None

    transport.on_send(refuse_u2)
    report = Worker(store, transport, options=FAST).deliver(key)
    assert (report.status, report.sent, report.failed) == ("finished", 4, 1)
    assert "u2@example.com" not in recipients(transport)
    status = collect_status(store)
    assert (status.sent, status.failed, status.pending) == (4, 1, 0)


def test_sending_paused_stops_the_batch_and_fails_nothing(
    store: MemoryStore, transport: MemoryTransport
) -> None:
    key = queue(store, 5)
    transport.fail_next(SendingPaused("SendingPausedException: sending is paused"), times=100)
    report = Worker(store, transport, options=FAST).deliver(key)
    assert report.status == "paused"
    assert report.failed == 0
    assert store.exists(key)
    assert list(store.keys(layout.FAILED)) == []
    assert collect_status(store).pending == 5


def test_a_batch_claimed_elsewhere_is_left_alone(
    store: MemoryStore, transport: MemoryTransport
) -> None:
    key = queue(store, 3)
    lease = store.claim(layout.batch_id_from_key(key), "another-worker", 60)
    assert lease is not None
    report = Worker(store, transport, options=FAST).deliver(key)
    assert report.status == "held"
    assert transport.outbox == []


def test_near_the_deadline_the_rest_becomes_a_continuation(
    store: MemoryStore, transport: MemoryTransport
) -> None:
    key = queue(store, 40)
    sends = 0

    def count(message: Message) -> Receipt | None:
        nonlocal sends
        sends += 1
        return None

    transport.on_send(count)
    options = WorkerOptions(concurrency=2, deadline_margin=1.0)
    report = Worker(store, transport, options=options).deliver(key, deadline=lambda: 10.0 - sends)
    assert report.status == "finished"  # finished by handing the rest on, not by timing out
    assert 0 < report.sent < 40
    assert report.sent + report.continued == 40
    [continuation] = report.continuations
    assert store.exists(continuation)
    rest = Worker(store, transport, options=options).deliver(continuation)
    assert rest.sent == report.continued
    assert recipients(transport) == Counter(f"u{i}@example.com" for i in range(40))
    status = collect_status(store)
    assert (status.sent, status.pending) == (40, 0)


def test_a_lost_continuation_file_is_written_when_the_batch_finishes(
    store: MemoryStore, transport: MemoryTransport
) -> None:
    """A crash between the ledger entry and the continuation's write loses nothing."""
    key = queue(store, 6)
    batch_id = layout.batch_id_from_key(key)
    Ledger(store, batch_id).record_many(
        LedgerEntry.continued(i, f"{batch_id}-p3") for i in range(3, 6)
    )
    report = Worker(store, transport, options=FAST).deliver(key)
    assert report.sent == 3
    continuation = layout.queue_key(f"{batch_id}-p3")
    assert store.exists(continuation)
    Worker(store, transport, options=FAST).deliver(continuation)
    assert recipients(transport) == Counter(f"u{i}@example.com" for i in range(6))


def test_a_large_batch_is_split_for_parallel_workers(
    store: MemoryStore, transport: MemoryTransport
) -> None:
    key = queue(store, 100)
    options = WorkerOptions(concurrency=4, split_above=30)
    report = Worker(store, transport, options=options).deliver(key)
    assert report.sent == 30
    assert report.continued == 70
    assert len(report.continuations) == 3
    worker = Worker(store, transport, options=options)
    reports = drain(worker)
    worker.close()
    assert reports.sent == 70
    assert recipients(transport) == Counter(f"u{i}@example.com" for i in range(100))


def test_an_invalid_email_fails_and_a_bad_file_is_quarantined(
    store: MemoryStore, transport: MemoryTransport
) -> None:
    meta = {"from": "a@example.com", "contentType": "text/plain", "charset": "utf-8"}
    emails = [
        {"to": ["ok@example.com"], "subject": "s", "message": "m", "attachments": []},
        {"to": ["@@"], "subject": "s", "message": "m", "attachments": []},
    ]
    store.put("queue/mixed.json", orjson.dumps({"version": 1, "meta": meta, "emails": emails}))
    store.put("queue/broken.json", b'{"meta": {}, "emails": [1]}')
    worker = Worker(store, transport, options=FAST)
    reports = {r.key: r for r in drain(worker).batches}
    worker.close()
    assert (reports["queue/mixed.json"].sent, reports["queue/mixed.json"].failed) == (1, 1)
    assert reports["queue/broken.json"].status == "quarantined"
    error = orjson.loads(store.get("quarantine/broken.json.error.json"))
    assert error["field"] == "meta.from"
    assert error["file"] == "queue/broken.json"


def test_the_message_id_is_stable_per_email(store: MemoryStore, transport: MemoryTransport) -> None:
    key = queue(store, 2)
    Worker(store, transport, options=FAST).deliver(key)
    batch_id = layout.batch_id_from_key(key)
    ids = sorted(sent.message_id for sent in transport.outbox)
    assert ids == [f"<{batch_id}.0@localhost>", f"<{batch_id}.1@localhost>"]


def test_refused_recipients_are_recorded_and_retried_alone(
    store: MemoryStore, smtp_server: SMTPSink
) -> None:
    settings = Settings.load(store="memory:unused")
    with mailspool.request(store=store, settings=settings):
        mailspool.send_mail(["a@example.com", "b@example.com"], "s", "m")
    smtp_server.refuse_recipient("b@example.com", "550 5.1.1 <b@example.com>: unknown")
    transport = SMTPTransport.from_url(smtp_server.url)
    worker = Worker(store, transport, options=FAST)
    drain(worker)
    status = collect_status(store)
    assert (status.sent, status.failed, status.refused_recipients) == (1, 0, 1)
    [failed] = admin.list_failed(store)
    assert failed.record.recipients == ["b@example.com"]
    assert "unknown" in str(failed.record.refused)
    smtp_server.accept_recipient("b@example.com")
    admin.retry_failed(store, [failed])
    drain(worker)
    worker.close()
    transport.close()
    assert [tuple(e.rcpt_tos) for e in smtp_server.envelopes] == [
        ("a@example.com",),
        ("b@example.com",),
    ]


class SlowAppendStore(MemoryStore):
    """Counts appends and makes each one slow enough for threads to pile up behind it."""

    appends = 0

    def append(self, key: str, record: bytes) -> None:
        SlowAppendStore.appends += 1
        time.sleep(0.002)
        super().append(key, record)


def test_the_ledger_group_commits_and_loses_no_entry() -> None:
    store = SlowAppendStore()
    ledger = Ledger(store, "b1")
    threads = [
        threading.Thread(
            target=lambda n=n: [
                ledger.record(LedgerEntry.sent(n * 50 + k, "id", 1)) for k in range(50)
            ]
        )
        for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(read_entries(store, "b1")) == list(range(400))
    assert SlowAppendStore.appends < 400  # threads shared writes


class RecordingEvent(threading.Event):
    """An Event whose waits are recorded instead of slept: the limiter's clock is fake."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self.clock = clock
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        self.clock[0] += timeout or 0.0
        return False


def test_the_rate_limit_counts_recipients() -> None:
    now = [100.0]
    event = RecordingEvent(now)
    limiter = RateLimiter(10, clock=lambda: now[0], stop=event)
    assert limiter.acquire(1)  # the burst allowance: at once
    assert limiter.acquire(5)
    assert limiter.acquire(1)
    assert event.waits == pytest.approx([0.1, 0.5])
    assert now[0] == pytest.approx(100.6)


def test_no_rate_never_waits() -> None:
    event = RecordingEvent([0.0])
    limiter = RateLimiter(None, stop=event)
    assert all(limiter.acquire(50) for _ in range(100))
    assert event.waits == []


def test_a_stopping_worker_stops_waiting_for_the_rate() -> None:
    stop = threading.Event()
    stop.set()
    assert RateLimiter(0.001, stop=stop).acquire(1) is False


def test_status_counts_add_up_through_a_failed_retry(
    tmp_path: Path, transport: MemoryTransport
) -> None:
    store = FileStore(tmp_path / "spool")
    queue(store, 8)
    transport.fail_next(PermanentError("550 no"), times=1)
    worker = Worker(store, transport, options=FAST)
    drain(worker)
    before = collect_status(store)
    assert (before.sent, before.failed, before.total) == (7, 1, 8)
    admin.retry_failed(store, admin.list_failed(store))
    middle = collect_status(store)
    assert (middle.sent, middle.failed, middle.pending, middle.total) == (7, 0, 1, 8)
    drain(worker)
    worker.close()
    after = collect_status(store)
    assert (after.sent, after.failed, after.pending, after.total) == (8, 0, 0, 8)


class PausedTransport(MemoryTransport):
    """A stub for a fault no local server produces: SES answering SendingPaused."""

    attempts = 0

    def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        PausedTransport.attempts += 1
        raise SendingPaused("SendingPausedException: sending is paused for this account")


def test_a_running_worker_waits_after_the_provider_paused(store: MemoryStore) -> None:
    queue(store, 3)
    queue(store, 3, prefix="v")
    worker = Worker(store, PausedTransport(), options=FAST)
    thread = threading.Thread(
        target=run_forever, args=(worker,), kwargs={"poll_interval": 0.01, "pause": 60}
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not PausedTransport.attempts and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # thirty polls: without the pause each would try the batches again
    worker.stop()
    thread.join()
    worker.close()
    assert 1 <= PausedTransport.attempts <= 8  # the first batches' in-flight sends, then nothing
    assert collect_status(store).pending == 6
