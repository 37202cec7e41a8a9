"""The Lambda handler drains the webhook outbox after its batches: S3 (moto in server
mode) holds the outbox, S3 notifications reach the handler through SQS, and a real HTTP
receiver on 127.0.0.1 gets the signed events."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from mailspool.aws import sweeper_handler
from mailspool.spool import layout
from mailspool.webhook_rules import EventType
from mailspool.webhooks.events import email_event, event_id
from mailspool.webhooks.outbox import PENDING, Outbox
from tests.fixtures.webhook_receiver import WebhookReceiver, webhook_receiver
from tests.test_aws_handler import Stack, hand_off, stack

__all__ = ["stack", "webhook_receiver"]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_handler_delivers_the_events_of_its_batches(
    stack: Stack, webhook_receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILSPOOL_WEBHOOK_URL", webhook_receiver.url)
    monkeypatch.setenv("MAILSPOOL_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("MAILSPOOL_WEBHOOK_EVENTS", "sent")
    webhook_receiver.start()
    [key] = hand_off(2)
    assert stack.run_queue() == []
    batch_id = layout.batch_id_from_key(key)
    received = {
        d.headers["webhook-id"]: Webhook(SECRET).verify(d.body, d.headers)["type"]
        for d in webhook_receiver.deliveries
    }
    assert received == {event_id("email.sent", batch_id, i): "email.sent" for i in range(2)}
    assert list(stack.store.keys(PENDING)) == []


def test_the_sweeper_delivers_due_events_when_no_mail_wakes_the_handler(
    stack: Stack, webhook_receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events wait in the outbox (the receiver was down when the handler ran); no new
    batch comes, so only the sweeper, every minute, runs."""
    monkeypatch.setenv("MAILSPOOL_WEBHOOK_URL", webhook_receiver.url)
    monkeypatch.setenv("MAILSPOOL_WEBHOOK_SECRET", SECRET)
    batch_id = layout.new_batch_id()
    Outbox(stack.store).add([email_event(EventType.SENT, batch_id, 0)])
    webhook_receiver.start()

    sweeper_handler({"source": "aws.events"}, None)

    [delivery] = webhook_receiver.deliveries
    assert delivery.headers["webhook-id"] == event_id("email.sent", batch_id, 0)
    Webhook(SECRET).verify(delivery.body, delivery.headers)
    assert list(stack.store.keys(PENDING)) == []
