"""The send step that continues each e-mail's trace (``mailspool.tracing``): one CLIENT
span per e-mail sent or failed, from the moment its steps began to its outcome in the
ledger, in the trace of the request that queued it and linked to that request's span.

An e-mail queued outside any span has no traceparent and makes no span. The span names
the batch, the index and the transport's scheme; the To addresses only as hashes; no
Cc, no Bcc, no subject, no body.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

from mailspool import tracing
from mailspool.delivery.steps import Draft, SendStep
from mailspool.spool.records import LedgerState
from mailspool.transports.failover_url import is_failover

__all__ = ["TracedSends"]

#: E-mails whose send began and whose outcome is not yet recorded, at most: one that
#: never gets an outcome (the worker stopped) must not hold memory for ever.
MAX_OPEN = 10_000


class TracedSends(SendStep):
    """A span for each traced e-mail's send; put it first so refusals are traced too."""

    def __init__(self, transport_url: str) -> None:
        # a chain's URL has no scheme of its own; its members' URLs are no span name
        self.scheme = (
            "failover" if is_failover(transport_url) else urlsplit(transport_url).scheme
        ) or "unknown"
        self._lock = threading.Lock()
        self._open: dict[tuple[str, int], tuple[int, str, tuple[str, ...]]] = {}

    def prepare(self, draft: Draft) -> Draft:
        traceparent = draft.message.traceparent
        if traceparent is None or not tracing.active():
            return draft
        hashes = tracing.address_hashes(draft.message.to)
        with self._lock:
            if len(self._open) >= MAX_OPEN:
                del self._open[next(iter(self._open))]  # the oldest
            self._open[(draft.batch_id, draft.index)] = (time.time_ns(), traceparent, hashes)
        return draft

    def recorded(self, batch_id: str, index: int, state: LedgerState) -> None:
        with self._lock:
            began = self._open.pop((batch_id, index), None)
        if began is None:
            return
        started, traceparent, hashes = began
        attributes = {
            "messaging.operation.type": "process",
            "messaging.operation.name": "send",
            "messaging.destination.name": "queue",
            "messaging.message.id": f"{batch_id}.{index}",
            "mailspool.batch.id": batch_id,
            "mailspool.batch.index": index,
            "mailspool.transport.scheme": self.scheme,
            "mailspool.to.sha256": hashes,
            "mailspool.outcome": state.value,
        }
        with tracing.span(
            f"send {self.scheme}",
            "CLIENT",
            parent=traceparent,
            links=(traceparent,),  # the request that queued it
            attributes=attributes,
            start_time=started,
        ) as span:
            if state is LedgerState.FAILED:
                tracing.set_error(span, "failed: the reason is in the ledger")
