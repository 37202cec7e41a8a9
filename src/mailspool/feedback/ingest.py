"""Act on SES events: suppress, remember, tell the application. Idempotent.

For each event (``feedback.events.FeedbackEvent``):

1. it is appended to the history of each recipient (``history/...``) and of the e-mail
   (``events/<provider id>``), which ``trace`` reads;
2. a hard bounce or a complaint suppresses its recipients, with SES's diagnostic; a soft
   bounce suppresses a recipient only once ``soft_bounce_limit`` distinct soft bounces
   fell within ``soft_bounce_window`` (3 in 7 days by default); for the account, or,
   when the e-mail was sent for an SES tenant that keeps its own suppressions
   (``tenant_scoped``; the tenant read from the event's batch file, ``feedback.traced``),
   for that tenant only;
3. its webhook events (bounced, complained, suppressed) go to the outbox, when
   webhooks are on (``mailspool.webhooks``);
4. the first time the event is seen (``events-seen/<id>``, a create-only write), the
   hooks run (``feedback.hooks``), and a bounce or complaint is added to the trace of
   the request that queued the e-mail (``feedback.traced``).

A redelivered event changes nothing: an event whose seen marker exists is skipped
whole, so a replay after an operator removed a suppression does not suppress again.
A redelivery that finds no marker (the first call crashed part-way, or both run at
once) repeats steps 1 to 3 harmlessly (webhook events keep their ids): history readers count each event id once,
adding an address already suppressed keeps its entry, soft bounces are counted by
distinct id, and the hooks run only for the call that created the marker. Steps 1 and
2 come before the marker, so a crash part-way is completed by the redelivery.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from mailspool.errors import InvalidMessage
from mailspool.feedback import hooks, layout
from mailspool.feedback.events import EventKind, FeedbackEvent
from mailspool.feedback.suppression import Reason, SuppressionList, shared_suppressions
from mailspool.feedback.traced import stored_tenant, trace_event
from mailspool.spool.records import moment
from mailspool.stores.base import Store
from mailspool.webhook_rules import EventType
from mailspool.webhooks.events import WebhookEvent, feedback_event
from mailspool.webhooks.outbox import Outbox

__all__ = ["FeedbackOptions", "IngestReport", "ingest", "read_history", "webhook_events"]

log = logging.getLogger("mailspool.feedback")


@dataclass(frozen=True, slots=True)
class FeedbackOptions:
    """How events act; ``docs/configuration.md`` explains each."""

    soft_bounce_limit: int = 3
    soft_bounce_window: float = 7 * 86400.0
    on_event: hooks.Hook | None = None  # the ``on_event`` setting, beside registered hooks
    #: the webhook events written to the outbox (``MAILSPOOL_WEBHOOK_EVENTS``); none: off
    webhook_events: frozenset[str] = frozenset()
    #: the SES tenants whose bounces and complaints suppress for themselves only
    tenant_scoped: frozenset[str] = frozenset()


@dataclass(slots=True)
class IngestReport:
    """What a call to ``ingest`` did."""

    events: int = 0
    new: int = 0
    suppressed: int = 0


def ingest(
    store: Store,
    events: Iterable[FeedbackEvent],
    *,
    suppressions: SuppressionList | None = None,
    options: FeedbackOptions | None = None,
) -> IngestReport:
    """Apply events in order; see the module docstring. Raises ``StoreError``."""
    suppressions = suppressions or shared_suppressions(store)  # this process sees it at once
    options = options or FeedbackOptions()
    report = IngestReport()
    for event in events:
        report.events += 1
        if store.exists(layout.seen_key(event.id)):
            continue  # applied once already; an operator may have undone it since
        record = orjson.dumps(event.as_dict())
        store.append(layout.message_events_key(event.provider_id), record)
        suppressed = []
        tenant = _scope(store, options, event)
        for recipient in _valid(event.recipients):
            store.append(layout.history_key(recipient), record)
            if _suppress(store, suppressions, options, event, recipient, tenant):
                report.suppressed += 1
                suppressed.append(recipient)
        if options.webhook_events:  # before the marker: a redelivery writes them again
            Outbox(store, options.webhook_events).add(webhook_events(event, suppressed))
        if event.kind is EventKind.COMPLAINED or (
            event.kind is EventKind.BOUNCED and event.permanent
        ):
            recorded = datetime.now(UTC)  # the rates read the days since their oldest send
            line = [event.provider_id, str(event.kind), event.batch, event.index]
            store.append(
                layout.bad_day_key(_day(recorded)), orjson.dumps([*line, int(recorded.timestamp())])
            )
        if store.put_new(layout.seen_key(event.id), record):
            report.new += 1
            trace_event(store, event)  # a bounce or complaint: in the e-mail's trace
            hooks.fire(event, options.on_event)
    return report


def webhook_events(event: FeedbackEvent, suppressed: Iterable[str]) -> list[WebhookEvent]:
    """An event's webhook events: bounced or complained for each recipient, and
    suppressed for each recipient it suppressed; ids fixed by the event's own id."""
    kind = _WEBHOOK_KIND.get(event.kind)
    found = []
    if kind is not None:
        for recipient in _valid(event.recipients):
            said = event.diagnostics.get(recipient, event.detail)
            found.append(_feedback_event(kind, event, recipient, said))
    for recipient in suppressed:
        found.append(_feedback_event(EventType.SUPPRESSED, event, recipient, str(event.kind)))
    return found


def _feedback_event(
    kind: EventType, event: FeedbackEvent, recipient: str, reason: str
) -> WebhookEvent:
    return feedback_event(
        kind,
        event.id,
        recipient,
        message_id=event.provider_id,
        reason=reason,
        batch=(event.batch, event.index),
    )


_WEBHOOK_KIND = {EventKind.BOUNCED: EventType.BOUNCED, EventKind.COMPLAINED: EventType.COMPLAINED}


def read_history(store: Store, key: str) -> list[FeedbackEvent]:
    """The events of a history log, each event id once, oldest first. A line that cannot
    be read (torn, foreign, or with a time that does not hold in UTC) is skipped, logged
    with its reason: one bad record never hides the others."""
    seen: dict[str, FeedbackEvent] = {}
    for line in store.read_log(key):
        try:
            event = FeedbackEvent.from_dict(orjson.loads(line))
        except (ValueError, TypeError, RecursionError) as err:  # a hostile record: skipped
            log.warning("%s: skipped an unreadable event: %s", key, err)
            continue
        seen.setdefault(event.id, event)
    return sorted(seen.values(), key=lambda e: e.timestamp)


def _suppress(
    store: Store,
    suppressions: SuppressionList,
    options: FeedbackOptions,
    event: FeedbackEvent,
    recipient: str,
    tenant: str | None,
) -> bool:
    said = event.diagnostics.get(recipient, event.detail)
    if event.kind is EventKind.COMPLAINED:
        suppressions.add(recipient, Reason.COMPLAINT, diagnostic=said, tenant=tenant)
        return True
    if event.kind is not EventKind.BOUNCED:
        return False
    if event.permanent:
        suppressions.add(recipient, Reason.BOUNCE, diagnostic=said, tenant=tenant)
        return True
    soft = _soft_bounces(store, recipient, event, options.soft_bounce_window)
    if soft < options.soft_bounce_limit:
        return False
    days = options.soft_bounce_window / 86400
    note = f"{soft} soft bounces in {days:g} days; last: {said}"
    suppressions.add(recipient, Reason.BOUNCE, diagnostic=note, tenant=tenant)
    return True


def _scope(store: Store, options: FeedbackOptions, event: FeedbackEvent) -> str | None:
    """The tenant whose own list an event's suppressions go to, or None: the account.
    Only a bounce or complaint naming its batch, for a tenant that keeps its own list;
    an e-mail sent at once (no batch) or a batch that cannot be read: the account."""
    if not options.tenant_scoped or event.batch is None or event.index is None:
        return None
    if event.kind not in (EventKind.BOUNCED, EventKind.COMPLAINED):
        return None
    tenant = stored_tenant(store, event.batch, event.index)
    return tenant if tenant in options.tenant_scoped else None


def _soft_bounces(store: Store, recipient: str, event: FeedbackEvent, window: float) -> int:
    # in seconds since the epoch: a window reaching before the year 1 cannot overflow
    since = _parse_time(event.timestamp).timestamp() - window
    return sum(
        1
        for past in read_history(store, layout.history_key(recipient))
        if past.kind is EventKind.BOUNCED
        and not past.permanent
        and _parse_time(past.timestamp).timestamp() >= since
    )


def _parse_time(text: str) -> datetime:
    """An SES timestamp (``2026-11-29T06:55:04.123Z``) in UTC; one that is missing or
    unreadable counts as now (events are checked as they arrive and as they are read
    back, so only an event SES gave no time has none)."""
    try:
        return moment(text, naive="utc")
    except ValueError:
        return datetime.now(UTC)


def _day(day: datetime) -> str:
    """``YYYYMMDD``, four-digit years included (``strftime`` writes year 1 as ``1``)."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _valid(recipients: Iterable[str]) -> Iterable[str]:
    for recipient in recipients:
        try:
            layout.normalize_address(recipient)
        except InvalidMessage as err:
            log.warning("event recipient skipped: %s", err)
            continue
        yield recipient
