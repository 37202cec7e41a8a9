"""Signed webhooks: every state change of an e-mail, POSTed to the application through a
durable outbox in the store (``outbox``, ``deliver``), signed the Standard Webhooks way,
and checked in the application by ``verify`` (``docs/webhooks.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailspool.errors import WebhookRefused
from mailspool.webhook_rules import EventType
from mailspool.webhooks.events import WebhookEvent

if TYPE_CHECKING:
    from mailspool.webhooks.verify import verify

__all__ = ["EventType", "WebhookEvent", "WebhookRefused", "verify"]


def __getattr__(name: str) -> Any:
    # ``verify`` (the application's side) loads the signing library and an HTTP client;
    # the worker, which only writes the outbox, does without them
    if name != "verify":
        raise AttributeError(f"module 'mailspool.webhooks' has no attribute {name!r}")
    from mailspool.webhooks.verify import verify

    return verify
