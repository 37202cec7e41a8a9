"""Bounces and complaints in the trace of the request that queued the e-mail
(``mailspool.tracing``): a span with one event, in the trace the e-mail's stored
``traceparent`` names, found through the event's batch id and index.

Only when spans are recorded and the event names its batch and index (SES message tags,
a refusal in the SMTP session). The batch id comes from the network: it must be a safe
name (``spool.layout``); the batch file is read bounded; a batch or traceparent that
cannot be read leaves the event untraced, with the reason in the debug log.

The same read gives the SES tenant an e-mail was sent for (``stored_tenant``): where a
tenant keeps its own suppressions, its e-mails' bounces and complaints go there.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from mailspool import tracing
from mailspool.errors import InvalidBatch, StoreError
from mailspool.feedback.events import EventKind, FeedbackEvent
from mailspool.spool import batch as batch_format
from mailspool.spool import layout
from mailspool.stores.base import Store
from mailspool.tenant_options import TENANT_NAME

__all__ = ["TRACED_KINDS", "stored_tenant", "trace_event"]

log = logging.getLogger("mailspool.feedback")

#: The events that end up in the e-mail's trace.
TRACED_KINDS = frozenset({EventKind.BOUNCED, EventKind.COMPLAINED})
#: The largest batch file read to find a traceparent: MAILSPOOL_MAX_BATCH_BYTES's default.
BATCH_BYTES = 32 * 1024 * 1024
#: Batches whose e-mails' traceparents and tenants are kept in memory (short strings).
_KEPT = 8
_recent: OrderedDict[str, tuple[tuple[object, object], ...]] = OrderedDict()
_lock = threading.Lock()


def trace_event(store: Store, event: FeedbackEvent) -> None:
    """A span with the event in the e-mail's trace, if it has one (see the module doc)."""
    if event.kind not in TRACED_KINDS or event.batch is None or event.index is None:
        return
    if not tracing.active():
        return
    traceparent = stored_traceparent(store, event.batch, event.index)
    if traceparent is None:
        return
    attributes = {
        "messaging.operation.type": "receive",
        "messaging.operation.name": str(event.kind),
        "mailspool.batch.id": event.batch,
        "mailspool.batch.index": event.index,
    }
    with tracing.span(
        f"{event.kind} queue", "CONSUMER", parent=traceparent, attributes=attributes
    ) as span:
        if span is not None:
            span.add_event(
                f"mailspool.{event.kind}",
                {
                    "mailspool.event.id": event.id,
                    "mailspool.permanent": event.permanent,
                    "mailspool.detail": event.detail,
                    "mailspool.to.sha256": tracing.address_hashes(event.recipients),
                },
            )


def stored_traceparent(store: Store, batch_id: str, index: int) -> str | None:
    """The valid traceparent stored with e-mail ``index`` of ``batch_id`` (queued or
    done), or None."""
    values = _stored(store, batch_id)
    if not 0 <= index < len(values):
        return None
    return tracing.checked_traceparent(values[index][0], batch_id, index)


def stored_tenant(store: Store, batch_id: str, index: int) -> str | None:
    """The tenant e-mail ``index`` of ``batch_id`` was sent for, if it names a valid one
    (the batch file is untrusted: a name that is not a tenant's is logged, not used)."""
    values = _stored(store, batch_id)
    if not 0 <= index < len(values):
        return None
    tenant = values[index][1]
    if tenant is None or (isinstance(tenant, str) and TENANT_NAME.fullmatch(tenant)):
        return tenant
    log.warning("batch %r e-mail %d: its tenant is not a tenant's name", batch_id[:100], index)
    return None


def _stored(store: Store, batch_id: str) -> tuple[tuple[object, object], ...]:
    """Each e-mail's stored traceparent and tenant, as stored (unchecked), or none when
    the batch cannot be read. A batch file never changes: the last few read are kept, so
    the bounces of one large batch read it once."""
    with _lock:
        if batch_id in _recent:
            return _recent[batch_id]
    try:
        for key in (layout.queue_key(batch_id), layout.done_key(batch_id)):
            if store.exists(key):
                data = store.get_at_most(key, BATCH_BYTES, "MAILSPOOL_MAX_BATCH_BYTES")
                emails = batch_format.decode(data, source=key).emails
                values = tuple((email.get("traceparent"), email.get("tenant")) for email in emails)
                break
        else:
            return ()
    except (StoreError, InvalidBatch) as err:
        log.debug("no trace for an event of batch %r: %s", batch_id[:100], err)
        return ()
    with _lock:
        _recent[batch_id] = values
        while len(_recent) > _KEPT:
            _recent.popitem(last=False)
    return values
