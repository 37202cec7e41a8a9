"""Bounce and complaint rates over the last sends; the worker's guard; status --json."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from mailspool.cli import cli
from mailspool.delivery.report import BatchStatus
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.feedback.events import parse_ses_event
from mailspool.feedback.ingest import ingest
from mailspool.feedback.rates import RateGuard, collect_rates
from mailspool.message import Message
from mailspool.spool import batch, layout
from mailspool.spool.ledger import read_entries
from mailspool.stores import Store, open_store
from mailspool.transports.memory import MemoryTransport
from tests import ses_events


def queue(store: Store, count: int, prefix: str = "r") -> str:
    messages = [
        Message(to=(f"{prefix}{i}@example.com",), subject="s", text="x") for i in range(count)
    ]
    batch_id = layout.new_batch_id()
    store.put(
        layout.queue_key(batch_id),
        batch.encode(messages, batch_id=batch_id, default_sender="b@example.com"),
    )
    return layout.queue_key(batch_id)


def sent_with_feedback(store: Store) -> None:
    """20 e-mails sent; 2 hard bounces, 1 soft bounce, 1 complaint (delivered twice)."""
    transport = MemoryTransport()
    key = queue(store, 20)
    Worker(store, transport, options=WorkerOptions(concurrency=2)).deliver(key)
    ids = {
        i: e.message_id or "" for i, e in read_entries(store, layout.batch_id_from_key(key)).items()
    }
    ingest(
        store,
        [
            parse_ses_event(ses_events.bounce(ids[0], "r0@example.com")),
            parse_ses_event(ses_events.bounce(ids[1], "r1@example.com")),
            parse_ses_event(ses_events.bounce(ids[2], "r2@example.com", permanent=False)),
            parse_ses_event(ses_events.complaint(ids[3], "r3@example.com")),
        ],
    )
    ingest(store, [parse_ses_event(ses_events.complaint(ids[3], "r3@example.com"))])


def test_rates_count_hard_bounces_and_complaints_over_the_last_sends(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    sent_with_feedback(store)
    rates = collect_rates(store, sends=1000)
    assert (rates.sends, rates.bounces, rates.complaints, rates.suppressed) == (20, 2, 1, 3)
    assert rates.bounce_rate == 0.1
    assert rates.complaint_rate == 0.05
    assert rates.above_review() == ["bounce rate 10.00% > 5%", "complaint rate 5.00% > 0.1%"]
    output = CliRunner().invoke(cli, ["status", "--json", "--store", f"file://{tmp_path}"]).output
    document = orjson.loads(output)
    assert document["bounce_rate"] == 0.1
    assert document["complaint_rate"] == 0.05
    assert document["suppressed"] == 3
    assert (
        document["pending"] + document["sent"] + document["failed"] + document["quarantined"]
        == document["total"]
    )


def test_a_guard_that_holds_keeps_deferred_mail_queued(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    sent_with_feedback(store)
    transport = MemoryTransport()
    key = queue(store, 3, "new")
    warn = Worker(store, transport, guard=RateGuard(store, hold=False))
    assert warn.deliver(key).status is BatchStatus.FINISHED
    held_key = queue(store, 3, "new")
    holding = Worker(store, transport, guard=RateGuard(store, hold=True))
    report = holding.deliver(held_key)
    assert report.status is BatchStatus.PAUSED
    assert report.error is not None
    assert "bounce rate" in report.error
    assert store.exists(held_key)
    assert len(transport.outbox) == 3  # the three of the warning worker only
