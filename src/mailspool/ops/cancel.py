"""Cancel a pending or scheduled e-mail by its idempotency key, if it was not sent.

``cancel`` finds the key's batch (``keys/``), takes the batch's claim (the one a worker
takes to deliver it), and, if its ledger is empty, moves it from ``scheduled/`` or
``queue/`` to ``cancelled/<batch>.json``. It says False when the key is unknown, the
e-mail was already sent or failed, was already cancelled, or a worker is delivering it
at this moment (its claim is held): then it is not stopped. Holding the claim keeps a
worker from starting on the batch while it moves; a batch being promoted from
``scheduled/`` at the same moment is moved by one of the two (``Store.move``), and
``cancel`` then takes it from ``queue/``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from mailspool.policy.limits import Limits
from mailspool.producer.idempotency import lookup
from mailspool.producer.scope import settings_here
from mailspool.spool import layout
from mailspool.spool.ledger import read_entries
from mailspool.spool.records import BatchOutline
from mailspool.spool.schedule import cancelled_key
from mailspool.spool.sealed_store import sealed
from mailspool.stores.base import Store, default_owner
from mailspool.stores.open_stores import shared_store
from mailspool.webhook_rules import EventType
from mailspool.webhooks.events import email_event
from mailspool.webhooks.setup import outbox_for

__all__ = ["cancel", "unsent_batch"]

log = logging.getLogger("mailspool")
_CLAIM_TTL = 60.0


def cancel(key: str, *, store: Store | str | None = None) -> bool:
    """Stop the e-mail sent with idempotency ``key``; True if it will not be sent.
    ``store`` None: the store of the running request scope's settings, else of the
    settings loaded now (this is the public entry point outside a framework)."""
    if not isinstance(store, Store):
        settings = settings_here()
        store = sealed(shared_store(store or settings.store), settings.encryption_key)
    record = lookup(store, key)
    if record is None or not record.location:
        return False
    with unsent_batch(store, record.batch) as unsent:
        if not unsent:  # being delivered now, or sent, failed or carried on already
            return False
        destination = cancelled_key(record.batch)
        for source in dict.fromkeys((record.location, layout.queue_key(record.batch))):
            if store.move(source, destination):
                log.info("cancelled %s (%s)", source, destination)
                _announce(store, record.batch, destination)
                return True
        return False


@contextmanager
def unsent_batch(store: Store, batch_id: str) -> Iterator[bool]:
    """Hold the batch's claim (the one a worker takes to deliver it) for the block; True
    if it was free and the batch's ledger is empty (nothing of it was sent yet), so it
    may be moved or rewritten; False if a worker holds it or it was started."""
    lease = store.claim(batch_id, default_owner(), _CLAIM_TTL)
    if lease is None:
        yield False
        return
    try:
        yield not read_entries(store, batch_id)
    finally:
        store.release(lease)


def _announce(store: Store, batch_id: str, key: str) -> None:
    """The ``email.cancelled`` event of each e-mail of the cancelled batch, if webhooks
    want it. The cancellation stands whatever happens here: a failure is logged."""
    outbox = outbox_for(settings_here(), store)
    if outbox is None or not outbox.wants(EventType.CANCELLED):
        return
    try:
        outline = BatchOutline.read(store.get_at_most(key, Limits().batch_bytes))
        count = outline.emails if outline is not None and outline.emails else 1
        events = [email_event(EventType.CANCELLED, batch_id, i) for i in range(count)]
        outbox.add(events)
    except Exception as err:
        log.error("cancelled %s, but its webhook event was not written: %s", batch_id, err)
