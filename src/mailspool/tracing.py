"""Trace context through the queue (OpenTelemetry, the ``[otel]`` extra), optional.

When an e-mail is queued, the W3C ``traceparent`` of the span running then (the web
request's) is stored with it (``traceparent`` of each e-mail in the batch file). The
batch write is a PRODUCER span in that trace; the worker's claim of the batch is a
CONSUMER span; each send a CLIENT span with a link to the request that queued it; a
bounce or complaint that comes back is a span with an event in the same trace.

``opentelemetry`` is never imported here: spans are made once the program has imported
it. A tracer provider is set through ``opentelemetry.trace`` (an SDK set up in code,
``opentelemetry-instrument``), so until something has imported it no span could be
recorded, and a worker does not pay for the import (about 20 ms of each start). Without
it, or with the API but no SDK, the current span is never valid: no e-mail carries a
traceparent and no span is made.

A stored traceparent is read from the store, hence hostile: ``parse_traceparent`` takes
only version 00, exactly 55 characters of lower-case hex, with a trace id and a parent
id that are not all zeros; anything else is ignored with its reason in the log, and the
e-mail goes on as if it had none. Addresses appear in spans only hashed (SHA-256,
truncated), To recipients only (never Cc or Bcc); never a subject or a body.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailspool.message import Message

__all__ = [
    "TRACEPARENT_RULE",
    "TraceParent",
    "active",
    "address_hashes",
    "available",
    "checked_traceparent",
    "claim_span",
    "current_traceparent",
    "parse_traceparent",
    "set_error",
    "span",
    "stamped",
    "write_span",
]

log = logging.getLogger("mailspool.tracing")

#: What ``parse_traceparent`` accepts, as its errors name it.
TRACEPARENT_RULE = "W3C traceparent version 00: 00-<32 hex>-<16 hex>-<2 hex>, lower case"
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_LENGTH = 55


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A checked W3C traceparent (version 00)."""

    trace_id: int
    span_id: int
    flags: int

    def __str__(self) -> str:
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{self.flags:02x}"


def parse_traceparent(value: object) -> TraceParent:
    """The traceparent ``value``; ``ValueError`` naming the rule it breaks."""
    if not isinstance(value, str):
        raise ValueError(f"traceparent must be a string ({TRACEPARENT_RULE})")
    if len(value) != _LENGTH:
        raise ValueError(f"traceparent must be {_LENGTH} characters ({TRACEPARENT_RULE})")
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        raise ValueError(f"traceparent is malformed ({TRACEPARENT_RULE})")
    trace_id, span_id, flags = (int(group, 16) for group in match.groups())
    if trace_id == 0 or span_id == 0:
        raise ValueError("traceparent has an all-zero trace id or parent id (W3C: invalid)")
    return TraceParent(trace_id, span_id, flags)


def checked_traceparent(value: object, source: str, index: int) -> str | None:
    """``value`` if it is a valid traceparent; None when absent, or when invalid (then
    logged with its reason: a bad trace context never fails the e-mail)."""
    if value is None:
        return None
    try:
        return str(parse_traceparent(value))
    except ValueError as err:
        log.warning("%s e-mail #%d: ignored its trace context: %s", source, index, err)
        return None


def stamped(messages: Sequence[Message]) -> Sequence[Message]:
    """``messages``, those without a traceparent given the running span's; ``messages``
    itself when there is no valid span (the cost of one check)."""
    traceparent = current_traceparent()
    if traceparent is None:
        return messages
    return [m if m.traceparent else replace(m, traceparent=traceparent) for m in messages]


# -- the optional API ---------------------------------------------------------------------

_api: ModuleType | None = None
_context_api: ModuleType | None = None


def _trace() -> ModuleType | None:
    """``opentelemetry.trace`` once the program has imported it; None before (no tracer
    provider can have been set) and when the ``[otel]`` extra is not installed."""
    global _api, _context_api
    if _api is None and "opentelemetry.trace" in sys.modules:
        from opentelemetry import context, trace

        _api, _context_api = trace, context
    return _api


def available() -> bool:
    """True when the program has imported the OpenTelemetry API (``[otel]`` extra), so
    that spans may be recorded: an SDK or ``opentelemetry-instrument`` imports it first."""
    return _trace() is not None


def active() -> bool:
    """True when spans are recorded: the API is there and an SDK set its tracer provider."""
    trace = _trace()
    if trace is None:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


#: The last context looked at and its traceparent: a context is immutable, so the same
#: object has the same span (a request queuing 5000 e-mails looks it up once).
_last: tuple[object, str | None] = (None, None)


def current_traceparent() -> str | None:
    """The running span's traceparent (``TraceContextTextMapPropagator``), or None when
    there is no valid span (no extra, no SDK, or outside any span)."""
    global _last
    trace = _trace()
    if trace is None or _context_api is None:
        return None
    current = _context_api.get_current()
    seen, traceparent = _last  # one tuple read: safe across threads
    if current is seen:
        return traceparent
    traceparent = None
    if trace.get_current_span(current).get_span_context().is_valid:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, current)
        traceparent = carrier.get("traceparent")
    _last = (current, traceparent)
    return traceparent


#: Hex digits kept of an address's SHA-256: enough to tell addresses apart in a trace.
_HASH_DIGITS = 16


def address_hashes(addresses: Iterable[str]) -> tuple[str, ...]:
    """Each address as the first hex digits of the SHA-256 of its lower-case form."""
    return tuple(
        hashlib.sha256(a.strip().lower().encode()).hexdigest()[:_HASH_DIGITS] for a in addresses
    )


def _context(traceparent: str | None) -> Any:
    """The OpenTelemetry context a stored (already checked) traceparent names, or None."""
    if traceparent is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


#: The messaging system named in every span (OpenTelemetry messaging conventions).
SYSTEM = "mailspool"


@contextlib.contextmanager
def span(
    name: str,
    kind: str,
    *,
    parent: str | None,
    links: Iterable[str] = (),
    attributes: Mapping[str, Any] | None = None,
    start_time: int | None = None,
) -> Iterator[Any]:
    """A span of ``kind`` (``PRODUCER``, ``CONSUMER``, ``CLIENT``, ``INTERNAL``) in the
    trace of the traceparent ``parent``, linked to each of ``links``; yields the span (or
    None, when spans are not recorded, or when there is no trace to continue: an e-mail
    queued outside any span is not traced). Not made current: the caller's context stays."""
    links = tuple(links)
    if (parent is None and not links) or not active():
        yield None
        return
    trace = _trace()
    assert trace is not None  # active() imported it
    link_list = [
        trace.Link(trace.get_current_span(_context(link)).get_span_context()) for link in links
    ]
    made = trace.get_tracer("mailspool").start_span(
        name,
        context=_context(parent),
        kind=trace.SpanKind[kind],
        attributes={"messaging.system": SYSTEM, **(attributes or {})},
        links=link_list,
        start_time=start_time,
    )
    try:
        yield made
    except BaseException as err:
        made.record_exception(err)
        made.set_status(trace.Status(trace.StatusCode.ERROR, type(err).__name__))
        raise
    finally:
        made.end()


#: Links a span carries at most (one per distinct trace of a batch's e-mails).
MAX_LINKS = 128


def write_span(messages: Sequence[Message]) -> contextlib.AbstractContextManager[Any]:
    """The PRODUCER span of one hand-off (``send queue``), in the trace of its first
    traced e-mail and linked to the other traces (at most ``MAX_LINKS``)."""
    traces = list(dict.fromkeys(m.traceparent for m in messages if m.traceparent))
    if not traces:  # nothing traced (always so without an SDK): no span to make
        return contextlib.nullcontext()
    return _queue_span("send", "PRODUCER", traces, len(messages))


def claim_span(
    batch_id: str, emails: Sequence[Mapping[str, Any]]
) -> contextlib.AbstractContextManager[Any]:
    """The CONSUMER span of a claimed batch (``process queue``), in the trace of its
    first e-mail with a valid traceparent, linked to the other traces; the e-mails'
    traceparents are hostile: invalid ones are left out here (``Batch.message`` logs
    them once, for the e-mail)."""
    if not active():
        return contextlib.nullcontext()
    traces: dict[str, None] = {}
    for email in emails:
        value = email.get("traceparent")
        if value is None:
            continue
        try:
            traces[str(parse_traceparent(value))] = None
        except ValueError:
            continue
        if len(traces) > MAX_LINKS:
            break
    return _queue_span(
        "process", "CONSUMER", list(traces), len(emails), {"mailspool.batch.id": batch_id}
    )


def _queue_span(
    operation: str,
    kind: str,
    traces: Sequence[str],
    count: int,
    extra: Mapping[str, Any] | None = None,
) -> contextlib.AbstractContextManager[Any]:
    """A span of ``operation`` on the queue for ``count`` e-mails: in the first of
    ``traces`` (traceparents), linked to the others (at most ``MAX_LINKS``)."""
    return span(
        f"{operation} queue",
        kind,
        parent=traces[0] if traces else None,
        links=traces[1:MAX_LINKS],
        attributes={
            "messaging.operation.type": operation,
            "messaging.operation.name": operation,
            "messaging.destination.name": "queue",
            "messaging.batch.message_count": count,
            **(extra or {}),
        },
    )


def set_error(made: Any, reason: str) -> None:
    """Mark ``made`` (a span from ``span``) as failed, with a reason free of addresses."""
    trace = _trace()
    if made is not None and trace is not None:
        made.set_status(trace.Status(trace.StatusCode.ERROR, reason))
