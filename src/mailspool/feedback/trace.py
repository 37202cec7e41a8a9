"""Each e-mail's history: ``mailspool trace ADDRESS|MESSAGE-ID``.

An e-mail's states come from three places, joined through the provider's message id
that the worker recorded in the batch's ledger when the provider accepted the e-mail
(or, for an event whose id is none of those, through its ``mailspool-batch`` and
``mailspool-index`` tags when that batch is still kept):

- the batch (``queue/`` or ``done/``): queued, at the batch's creation time;
- the ledger and ``failed/``: sent (with the provider id), failed (with the reason),
  suppressed (recipients taken off before the send);
- the SES events recorded for the address (``history/``) or for the provider id
  (``events/``): delivered, delayed, bounced (with the diagnostic), complained, opened,
  clicked...

A priority e-mail sent at once has no batch: its record in the tally
(``spool.tally.record_priority``: recipients, Message-ID, sent or refused, when) is its
``sent`` (or ``failed``) step; one the priority transport could not take is in a
priority batch (``<id>-now``) like any other.

Tracing an address reads every batch still kept (queued and finished; ``gc`` and
lifecycle rules forget old ones, and their events stay, listed under their provider
id): an operator's command, not something to run per request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from mailspool.errors import InvalidBatch, InvalidMessage, KeyNotFound
from mailspool.feedback import layout as feedback_layout
from mailspool.feedback.events import FeedbackEvent
from mailspool.feedback.ingest import read_history
from mailspool.message import Attachment
from mailspool.spool import batch as batch_format
from mailspool.spool import layout, queue_scan, tally
from mailspool.spool.ledger import read_entries
from mailspool.spool.records import FailedRecord, LedgerEntry, LedgerState
from mailspool.stores.base import Store

__all__ = ["EmailTrace", "Step", "is_own_message_id", "trace_address", "trace_message"]

log = logging.getLogger("mailspool.feedback")

#: ``<batch-id>.<index>@domain``: the Message-ID the worker gives each e-mail.
_OWN_ID = re.compile(
    r"<?(?P<batch>[0-9]{8}T[0-9]{12}Z-[0-9a-f]{8}(?:-now)?(?:-p[0-9]+)?)\.(?P<index>[0-9]+)(?:@[^>]*)?>?"
)


@dataclass(frozen=True, slots=True)
class Step:
    """One state of an e-mail: ``queued``, ``sent``, ``delivered``, ``bounced``..."""

    state: str
    at: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"state": self.state, "at": self.at, "detail": self.detail}


@dataclass(slots=True)
class EmailTrace:
    """One e-mail and its states over time (``batch`` is None once the batch is gone)."""

    batch: str | None
    index: int | None
    subject: str
    recipients: list[str]
    provider_id: str | None = None
    steps: list[Step] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        # ``steps`` goes out last, in time order, as ``states`` (``Step.as_dict`` each)
        record["states"] = sorted(record.pop("steps"), key=lambda step: step["at"])
        return record

    def labels(self) -> str:
        """The tags and metadata in one line (``tags: a, b; metadata: k=v``), or ''."""
        parts = []
        if self.tags:
            parts.append(f"tags: {', '.join(self.tags)}")
        if self.metadata:
            parts.append("metadata: " + ", ".join(f"{k}={v}" for k, v in self.metadata.items()))
        return "; ".join(parts)


def is_own_message_id(text: str) -> bool:
    """True for the Message-ID the worker gives an e-mail (with or without <>)."""
    return _OWN_ID.fullmatch(text.strip()) is not None


def trace_address(store: Store, address: str) -> list[EmailTrace]:
    """Every e-mail to ``address`` still on record, oldest first, with its events; any
    spelling of the address finds them all (``mailspool.address.canonical_address``)."""
    wanted = feedback_layout.normalize_address(address)
    traces = [
        t for t in [*_emails(store), *_priority(store)] if wanted in map(_normal, t.recipients)
    ]
    keys = [feedback_layout.history_key(wanted), *feedback_layout.legacy_history_keys(address)]
    seen: dict[str, FeedbackEvent] = {}
    for key in keys:  # events kept under an older form of the address too
        for event in read_history(store, key):
            seen.setdefault(event.id, event)
    return _join(traces, sorted(seen.values(), key=lambda e: e.timestamp))


def trace_message(store: Store, message_id: str) -> list[EmailTrace]:
    """The e-mail with this Message-ID (``<batch.index@domain>``) or provider id."""
    own = _OWN_ID.fullmatch(message_id.strip())
    if own is not None:
        batch_id, index = own["batch"], int(own["index"])
        traces = [t for t in _emails(store, only=batch_id) if t.index == index]
        provider_ids = {t.provider_id for t in traces if t.provider_id}
        found = {e.id: e for pid in provider_ids for e in _message_events(store, pid)}
        for recipient in {_normal(a) for t in traces for a in t.recipients}:
            for event in read_history(store, feedback_layout.history_key(recipient)):
                if (event.batch, event.index) == (batch_id, index):  # its tags name it
                    found.setdefault(event.id, event)
        return _join(traces, sorted(found.values(), key=lambda e: e.timestamp))
    events = _message_events(store, message_id)
    sent_at_once = [t for t in _priority(store) if _same_id(t.provider_id, message_id)]
    if sent_at_once:
        return _join(sent_at_once, events)
    tags = {(e.batch, e.index) for e in events if e.batch}  # the tags: one batch read
    tagged = {batch for batch, _ in tags}
    candidates = (t for b in tagged for t in _emails(store, only=b)) if tagged else _emails(store)
    traces = [t for t in candidates if t.provider_id == message_id or (t.batch, t.index) in tags]
    return _join(traces, events)


def _priority(store: Store) -> list[EmailTrace]:
    """Priority e-mails sent at once (or refused), one trace each (by Message-ID)."""
    traces: dict[str, EmailTrace] = {}
    for record in tally.priority_records(store):
        message_id = str(record.get("id") or "")
        to = record.get("to")
        if not message_id or message_id in traces or not isinstance(to, list):
            continue
        at = _moment(record.get("t"))
        trace = EmailTrace(None, None, "", [str(a) for a in to], message_id)
        trace.steps.append(Step("priority", at, "sent at once, no batch"))
        if record.get("sent") == 1:
            via = record.get("via")
            trace.steps.append(Step("sent", at, _sent_detail(message_id, via, None)))
        else:
            trace.steps.append(Step("failed", at, str(record.get("reason") or "refused")))
        traces[message_id] = trace
    return list(traces.values())


def _same_id(ours: str | None, given: str) -> bool:
    return ours is not None and ours.strip("<> ") == given.strip("<> ")


def _moment(value: object) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**33:
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _message_events(store: Store, provider_id: str) -> list[FeedbackEvent]:
    return read_history(store, feedback_layout.message_events_key(provider_id))


def _join(traces: list[EmailTrace], events: list[FeedbackEvent]) -> list[EmailTrace]:
    """Attach each event to the e-mail with its provider id, else to the e-mail its batch
    and index name (an SMTP refusal of an e-mail that failed has no provider id in the
    ledger); an orphan gets its own trace."""
    by_id = {t.provider_id: t for t in traces if t.provider_id}
    by_email: dict[tuple[str | None, int | None], EmailTrace] = {
        (t.batch, t.index): t for t in traces if t.batch is not None
    }
    for event in events:
        trace = by_id.get(event.provider_id) or by_email.get((event.batch, event.index))
        if trace is None:
            trace = EmailTrace(None, None, "", list(event.recipients), event.provider_id)
            by_id[event.provider_id] = trace
            traces.append(trace)
        trace.steps.append(_event_step(event))
    return sorted(traces, key=lambda t: min((s.at for s in t.steps), default=""))


def _event_step(event: FeedbackEvent) -> Step:
    said = "; ".join(f"{a}: {d}" for a, d in event.diagnostics.items()) or event.detail
    return Step(str(event.kind), event.timestamp, said)


def _emails(store: Store, only: str | None = None) -> Iterator[EmailTrace]:
    """Every e-mail of every batch kept (or of batch ``only``), with its spool states."""
    keys = (
        [layout.queue_key(only), layout.done_key(only)]
        if only
        else [
            *(info.key for info in queue_scan.queued_batches(store, set_aside=False)),
            *store.keys(layout.DONE),
        ]
    )
    for key in keys:
        if not key.endswith(".json"):
            continue
        try:
            batch = batch_format.decode(store.get(key), source=key)
        except KeyNotFound:
            continue
        except InvalidBatch as err:
            log.warning("trace skipped an unreadable batch: %s", err)
            continue
        yield from _batch_emails(store, batch, layout.batch_id_from_key(key))


def _batch_emails(store: Store, batch: batch_format.Batch, batch_id: str) -> Iterator[EmailTrace]:
    entries = read_entries(store, batch_id)
    created = batch.created_at or ""
    for index in range(len(batch)):
        try:
            message = batch.message(index, files=_unread)
        except InvalidMessage:
            continue  # the worker fails it with the reason; failed/ shows it
        recipients = [*message.to, *message.cc, *message.bcc]
        trace = EmailTrace(batch_id, index, message.subject, recipients)
        trace.tags, trace.metadata = list(message.tags), dict(message.metadata)
        trace.steps.append(Step("queued", created))
        _ledger_steps(store, trace, entries.get(index))
        yield trace


def _unread(path: str) -> Attachment:
    """A version-0 path attachment named, never read: a trace needs no file's bytes."""
    return Attachment(filename=PurePosixPath(path).name or "attachment", content=b"")


def _ledger_steps(store: Store, trace: EmailTrace, entry: LedgerEntry | None) -> None:
    if entry is None or trace.batch is None or trace.index is None:
        return
    if entry.state is LedgerState.SENT:
        trace.provider_id = entry.message_id or None
        at = _failed_at(store, trace.batch, trace.index, partial=True) or _after(trace)
        detail = _sent_detail(trace.provider_id, entry.via, entry.unanswered)
        trace.steps.append(Step("sent", at, detail))
        for address, why in dict(entry.refused or {}).items():
            state = "suppressed" if str(why).startswith("suppressed") else "refused"
            trace.steps.append(Step(state, at, f"{address}: {why}"))
    elif entry.state is LedgerState.FAILED:
        at = _failed_at(store, trace.batch, trace.index, partial=False) or _after(trace)
        reason = entry.reason or ""
        state = "suppressed" if "suppressed (" in reason else "failed"
        trace.steps.append(Step(state, at, reason))
    elif entry.state is LedgerState.CONTINUED:
        trace.steps.append(Step("continued", _after(trace), f"in batch {entry.batch}"))


def _sent_detail(provider_id: str | None, via: object, unanswered: tuple[str, ...] | None) -> str:
    """``provider id X via smtp://relay:587``, and where it may have arrived too."""
    detail = f"provider id {provider_id}"
    if isinstance(via, str) and via:
        detail += f" via {via[:_MAX_LABEL]}"
    if unanswered:
        shown = ", ".join(label[:_MAX_LABEL] for label in unanswered[:_MAX_LABELS])
        detail += f"; may also have arrived via {shown} (took the content, never answered)"
    return detail


#: A label read from the store is shown shortened, and only so many of them.
_MAX_LABEL = 200
_MAX_LABELS = 16


def _failed_at(store: Store, batch_id: str, index: int, *, partial: bool) -> str | None:
    key = layout.failed_key(batch_id, index, partial=partial)
    try:
        return FailedRecord.decode(store.get(key), source=key).failed_at
    except (KeyNotFound, ValueError):
        return None


def _after(trace: EmailTrace) -> str:
    """The ledger keeps no time: a state without one sorts right after the last known."""
    return max((s.at for s in trace.steps), default="")


def _normal(address: str) -> str:
    try:
        return feedback_layout.normalize_address(address)
    except InvalidMessage:
        return address
