"""The sweeper and the SQS consumer against moto: batches whose event was lost are
re-driven, late e-mails are reported, bucket notifications are consumed from SQS."""

from __future__ import annotations

import collections
import time

import pytest

import mailspool
from mailspool.aws import sweeper_handler
from mailspool.aws.sqs import consume
from mailspool.aws.sweeper import sweep
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.spool import layout
from mailspool.transports.open_transports import shared_transport
from tests.test_aws_handler import Context, Stack, hand_off, stack

__all__ = ["stack"]


def _worker(stack: Stack) -> Worker:
    return Worker(
        stack.store,
        shared_transport("ses://us-east-1"),
        options=WorkerOptions(concurrency=4, default_sender="Mailspool <mail@example.com>"),
    )


def test_a_batch_whose_event_was_lost_is_redriven_and_late_mail_is_reported(stack: Stack) -> None:
    [key] = hand_off(5)
    worker = _worker(stack)
    try:
        young = sweep(stack.store, worker, older_than=3600, alert_after=0)
        assert (young.redriven, young.pending, young.late) == ([], 5, 5)
        assert stack.moto.ses_messages() == []
        report = sweep(stack.store, worker, older_than=0, alert_after=3600)
    finally:
        worker.close()
    assert report.redriven == [key]
    assert (report.sent, report.pending, report.late) == (5, 0, 0)
    assert stack.recipients() == collections.Counter(f"user{i}@example.org" for i in range(5))


def test_the_sweeper_handler_leaves_held_batches_and_logs_its_report(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    [held_key, free_key] = [hand_off(2)[0], hand_off(3, start=2)[0]]
    lease = stack.store.claim(layout.batch_id_from_key(held_key), "someone-else", 60)
    assert lease is not None
    monkeypatch.setenv("MAILSPOOL_SWEEP_AFTER", "0")
    monkeypatch.setenv("MAILSPOOL_ALERT_AFTER", "0")
    result = sweeper_handler({"source": "aws.events"}, Context())
    assert (result["redriven"], result["held"], result["sent"]) == (1, 1, 3)
    assert (result["pending"], result["late"]) == (2, 2)
    assert list(stack.store.keys(layout.QUEUE)) == [held_key]
    assert free_key not in list(stack.store.keys(layout.QUEUE))


def test_the_worker_consumes_bucket_notifications_from_sqs(stack: Stack) -> None:
    hand_off(4)
    hand_off(3, start=4)
    worker = _worker(stack)
    rounds: list[int] = []

    def after_round(received: int) -> None:
        rounds.append(received)
        if received == 0:
            worker.stop()

    try:
        consume(worker, stack.queue_url, wait_seconds=0, on_round=after_round)
    finally:
        worker.close()
    assert sum(rounds) == 2
    assert rounds[-1] == 0
    assert stack.recipients() == collections.Counter(f"user{i}@example.org" for i in range(7))
    assert stack.receive() == []  # delivered: deleted


def test_the_sweeper_queues_a_scheduled_email_when_due_and_the_handler_sends_it(
    stack: Stack,
) -> None:
    """Nothing goes before its time; at the sweep after it, the move into ``queue/`` is
    an S3 event, and the handler (fed from SQS) sends the e-mail once."""
    assert mailspool.send_mail("later@example.org", "Reminder", "<p>x</p>", send_at=3600)
    worker = _worker(stack)
    try:
        early = sweep(stack.store, worker, older_than=10**9, now=time.time())
        assert (early.promoted, early.queued) == (0, 0)
        assert stack.run_queue() == []
        assert stack.moto.ses_messages() == []
        due = sweep(stack.store, worker, older_than=10**9, now=time.time() + 3601)
    finally:
        worker.close()
    assert (due.promoted, due.queued, due.pending) == (1, 1, 1)
    assert stack.run_queue() == []
    assert stack.recipients() == collections.Counter({"later@example.org": 1})
    assert list(stack.store.keys(layout.QUEUE)) == []


def test_the_sqs_worker_queues_a_scheduled_email_when_due(stack: Stack) -> None:
    assert mailspool.send_mail("soon@example.org", "Soon", "<p>x</p>", send_at=0.2)
    time.sleep(0.3)  # past its time: the next round moves it into queue/
    worker = _worker(stack)
    rounds: list[int] = []

    def after_round(received: int) -> None:
        rounds.append(received)
        if received or len(rounds) >= 5:
            worker.stop()

    try:
        consume(worker, stack.queue_url, wait_seconds=0, on_round=after_round)
    finally:
        worker.close()
    assert stack.recipients() == collections.Counter({"soon@example.org": 1})
