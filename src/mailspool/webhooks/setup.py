"""The outbox and the deliverer as the settings ask for them: none without a URL, and
then the HTTP client is not even imported (a worker's start pays for it only when it
sends events)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailspool.config import Settings
from mailspool.errors import ConfigurationError
from mailspool.stores.base import Store
from mailspool.webhooks.outbox import Outbox
from mailspool.webhooks.signing import signer

if TYPE_CHECKING:
    from mailspool.webhooks.deliver import Deliverer
    from mailspool.webhooks.http import Receiver

__all__ = ["deliverer_for", "outbox_for", "receiver_for"]


def receiver_for(settings: Settings) -> Receiver | None:
    """The receiver of ``MAILSPOOL_WEBHOOK_URL``; None when it is unset. A URL without
    its secret is a ConfigurationError naming the secret's setting."""
    if not settings.webhook_url:
        return None
    if not settings.webhook_secret:
        raise ConfigurationError(
            "MAILSPOOL_WEBHOOK_URL is set but MAILSPOOL_WEBHOOK_SECRET is not: "
            "events are only sent signed (whsec_<base64>)"
        )
    from mailspool.webhooks.http import Receiver

    return Receiver(settings.webhook_url, signer(settings.webhook_secret), settings.webhook_timeout)


def outbox_for(settings: Settings, store: Store) -> Outbox | None:
    """Where events are written; None when no webhook is configured (no cost at all).
    The secret is not needed to write: it is checked where events are sent."""
    if not settings.webhook_url:
        return None
    return Outbox(store, settings.webhook_events)


def deliverer_for(settings: Settings, store: Store) -> Deliverer | None:
    receiver = receiver_for(settings)
    if receiver is None:
        return None
    from mailspool.webhooks.deliver import Deliverer

    return Deliverer(store, receiver, retention=settings.webhook_retention * 86400.0)
