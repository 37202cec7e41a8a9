"""Signed webhooks: every state change of an e-mail, POSTed to the application through a
durable outbox in the store (``outbox``, ``deliver``), signed the Standard Webhooks way,
and checked in the application by ``verify`` (``docs/webhooks.md``)."""

from __future__ import annotations

from mailspool.errors import WebhookRefused
from mailspool.webhook_rules import EventType
from mailspool.webhooks.events import WebhookEvent
from mailspool.webhooks.verify import verify

__all__ = ["EventType", "WebhookEvent", "WebhookRefused", "verify"]
