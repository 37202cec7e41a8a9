"""Suppressed recipients are never sent to: by the worker, and on the priority path."""

from __future__ import annotations

from collections import Counter

import pytest

import mailspool
from mailspool.config import Settings
from mailspool.delivery.steps import SuppressionScreen
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.errors import PermanentError
from mailspool.feedback.suppression import Reason, SuppressionList, shared_suppressions
from mailspool.message import Message
from mailspool.ops import admin
from mailspool.ops.status import collect_status
from mailspool.producer.api import send_now
from mailspool.stores.memory import MemoryStore
from mailspool.stores.open_stores import shared_store
from mailspool.transports.memory import MemoryTransport
from mailspool.transports.open_transports import shared_transport

FAST = WorkerOptions(concurrency=2, retry_base=0.001, retry_cap=0.01)


def recipients(transport: MemoryTransport) -> Counter[str]:
    return Counter(r for sent in transport.outbox for r in sent.envelope_recipients)


def queue(store: MemoryStore, messages: list[Message]) -> list[str]:
    with mailspool.request(store=store, settings=Settings.load(store="memory:unused")) as scope:
        for message in messages:
            mailspool.send_message(message, priority=False)
    return list(scope.keys)


def test_the_worker_skips_suppressed_recipients_and_fails_emails_left_with_none() -> None:
    store, transport = MemoryStore(), MemoryTransport()
    suppressions = SuppressionList(store)
    suppressions.add("bounced@example.com", Reason.BOUNCE, diagnostic="550 5.1.1 unknown")
    suppressions.add("angry@example.com", Reason.COMPLAINT)
    keys = queue(
        store,
        [
            Message(to=("bounced@example.com",), subject="a", text="x"),
            Message(to=("ok@example.com",), cc=("angry@example.com",), subject="b", text="x"),
            Message(to=("fine@example.com",), subject="c", text="x"),
        ],
    )
    worker = Worker(store, transport, options=FAST)
    reports = [worker.deliver(key) for key in keys]
    assert (sum(r.sent for r in reports), sum(r.failed for r in reports)) == (2, 1)
    assert recipients(transport) == Counter({"ok@example.com": 1, "fine@example.com": 1})
    failed = {item.record.reason.split(":")[0]: item.record for item in admin.list_failed(store)}
    whole = failed["bounced@example.com"]
    assert "suppressed (bounce" in whole.reason
    assert "550 5.1.1 unknown" in whole.reason
    assert not whole.retryable
    partial = failed["recipients suppressed"]
    assert partial.recipients == ["angry@example.com"]
    status = collect_status(store)
    assert (status.sent, status.failed, status.pending) == (2, 1, 0)


def test_a_suppression_added_elsewhere_is_seen_through_a_fresh_list() -> None:
    store, transport = MemoryStore(), MemoryTransport()
    [key] = queue(store, [Message(to=("late@example.com",), subject="a", text="x")])
    SuppressionList(store).add("late@example.com", Reason.UNSUBSCRIBE)
    Worker(
        store, transport, options=FAST, steps=[SuppressionScreen(SuppressionList(store))]
    ).deliver(key)
    assert transport.outbox == []


def test_priority_mail_skips_suppressed_recipients_unless_bypassed() -> None:
    settings = Settings.load(store="memory:priority", priority_transport="memory:priority")
    shared_suppressions(shared_store(settings.store)).add("gone@example.com", Reason.BOUNCE)
    transport = shared_transport(settings.priority_transport)
    assert isinstance(transport, MemoryTransport)
    both = Message(to=("gone@example.com", "here@example.com"), subject="s", text="x")
    receipt = send_now(both, settings=settings)
    assert recipients(transport) == Counter({"here@example.com": 1})
    assert "suppressed (bounce" in receipt.refused["gone@example.com"]
    only = Message(to=("gone@example.com",), subject="reset", text="x")
    with pytest.raises(PermanentError, match="suppressed"):
        send_now(only, settings=settings)
    send_now(only, settings=settings, bypass_suppression=True)
    assert recipients(transport)["gone@example.com"] == 1
