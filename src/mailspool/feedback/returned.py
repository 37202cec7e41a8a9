"""Returned mail (bounces, complaints) recorded as SES events are: one destination.

A bounce (a DSN or an MTA's own format) or an abuse report (ARF) delivered to the VERP
address is read by ``mailspool bounces ingest`` (a Postfix ``pipe`` transport,
procmail) or ``mailspool bounces imap``. ``record_returned`` parses it
(``feedback.bounces``), checks each recipient it names against the signed VERP token
(``feedback.verp``) and records what verifies. (Refusals in the SMTP session take the
same way in: ``feedback.refusals``.)

Each becomes a ``FeedbackEvent`` and goes through ``feedback.ingest.ingest``, as SES
events do: the same history (``trace``), suppression with the server's text,
soft-bounce counting, rates and hooks. An event's id is derived from what it reports
(the returned message's Message-ID, or its bytes, and the recipient), so the same
message read twice, by two routes, changes nothing: ingest's seen markers are the one
idempotency mechanism.

A returned message whose recipient does not verify (no VERP address, a bad signature,
a recipient the e-mail did not go to) is **rejected**: counted and logged, nothing
recorded. A delayed DSN, an auto-reply, or a message with nothing recognisable is
**ignored**.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from mailspool.address import canonical_address
from mailspool.errors import (
    InvalidBatch,
    InvalidMessage,
    KeyNotFound,
    StoreError,
)
from mailspool.feedback.bounces import Finding, Parsed, parse_bounce
from mailspool.feedback.events import EventKind, FeedbackEvent, event_id, iso_time
from mailspool.feedback.ingest import FeedbackOptions, IngestReport, ingest
from mailspool.feedback.verp import Token, Verp
from mailspool.message import Attachment
from mailspool.spool import batch as batch_format
from mailspool.spool import layout
from mailspool.spool.ledger import read_entries
from mailspool.stores.base import Store

__all__ = ["ReturnedReport", "record_returned"]

log = logging.getLogger("mailspool.feedback")

_MAX_PROBLEMS = 100  # kept for the command's output; every one is logged


@dataclass(slots=True)
class ReturnedReport:
    """What ``record_returned`` did with returned messages (added up over a run)."""

    messages: int = 0
    events: int = 0
    new: int = 0
    suppressed: int = 0
    rejected: int = 0
    ignored: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, report: IngestReport) -> None:
        self.events += report.events
        self.new += report.new
        self.suppressed += report.suppressed

    def line(self) -> str:
        return (
            f"{self.messages} message(s): {self.events} event(s), {self.new} new, "
            f"{self.suppressed} address(es) suppressed, {self.rejected} rejected, "
            f"{self.ignored} ignored"
        )


def record_returned(
    store: Store,
    raw: bytes,
    verp: Verp,
    *,
    report: ReturnedReport | None = None,
    envelope_to: str | None = None,
    options: FeedbackOptions | None = None,
) -> ReturnedReport:
    """Parse one returned message, verify it and record its events; ``envelope_to`` is
    the address it was delivered to, when the delivery agent says (Postfix's
    ``${original_recipient}``). Raises ``StoreError`` (nothing is lost: run it again)."""
    report = report if report is not None else ReturnedReport()
    report.messages += 1
    parsed = parse_bounce(raw)
    if not parsed.findings:
        report.ignored += 1
        log.info(json.dumps({"event": "bounce-ignored", "kind": parsed.kind}))
        return report
    token = _token(verp, parsed, envelope_to)
    events = []
    for finding in parsed.findings:
        try:
            why = _refusal_of(store, verp, token, finding)
        except InvalidMessage as err:
            why = str(err)
        if why:
            report.rejected += 1
            if len(report.problems) < _MAX_PROBLEMS:
                report.problems.append(f"rejected {parsed.kind} for {finding.recipient}: {why}")
            log.warning(
                json.dumps(
                    {"event": "bounce-rejected", "recipient": finding.recipient, "reason": why}
                )
            )
            continue
        assert token is not None  # _refusal_of says why when there is none
        events.append(_event(store, raw, parsed, token, finding))
    if events:
        report.add(ingest(store, events, options=options))
    return report


def _token(verp: Verp, parsed: Parsed, envelope_to: str | None) -> Token | None:
    """The first VERP token among the addresses the message was delivered to, then the
    Return-Path of the message it returns (an abuse report returns it whole)."""
    candidates: Iterable[str] = (
        *((envelope_to,) if envelope_to else ()),
        *parsed.envelope,
        *parsed.returned_paths,
    )
    return next((t for t in map(verp.token, candidates) if t is not None), None)


def _refusal_of(store: Store, verp: Verp, token: Token | None, finding: Finding) -> str:
    """Why this finding is not to be believed ('' if it verifies)."""
    if token is None:
        return "no VERP address (MAILSPOOL_BOUNCE_ADDRESS) in the message"
    if verp.covers(token, finding.recipient):
        return ""
    if not verp.signed_for_many(token):
        return f"the signature of {token.text} does not cover {finding.recipient}"
    recipients = _email_recipients(store, token)
    if recipients is None:
        return f"batch {token.batch} is no longer kept to check {finding.recipient} against"
    try:
        wanted = canonical_address(finding.recipient)
    except InvalidMessage:
        return f"{finding.recipient!r} is not an address"
    if wanted not in recipients:
        return f"e-mail {token.batch}.{token.index} did not go to {finding.recipient}"
    return ""


def _email_recipients(store: Store, token: Token) -> set[str] | None:
    for key in (layout.queue_key(token.batch), layout.done_key(token.batch)):
        try:
            batch = batch_format.decode(store.get(key), source=key)
            message = batch.message(token.index, files=_unread)
        except KeyNotFound:
            continue
        except (InvalidBatch, InvalidMessage, IndexError):
            return None
        return {canonical_address(a) for a in message.envelope_recipients}
    return None


def _unread(path: str) -> Attachment:
    """A version-0 path attachment named, never read: only the recipients are wanted."""
    return Attachment(filename="attachment", content=b"")


def _event(
    store: Store, raw: bytes, parsed: Parsed, token: Token, finding: Finding
) -> FeedbackEvent:
    source = parsed.message_id or hashlib.sha256(raw).hexdigest()
    kind = EventKind.COMPLAINED if finding.complaint else EventKind.BOUNCED
    bounce_type = "Permanent" if finding.permanent else "Transient"
    return FeedbackEvent(
        id=event_id("returned", source, canonical_address(finding.recipient), str(kind)),
        kind=kind,
        provider_id=_provider_id(store, parsed, token),
        timestamp=_timestamp(parsed.date),
        recipients=(finding.recipient,),
        permanent=finding.permanent and not finding.complaint,
        diagnostics={finding.recipient: finding.diagnostic},
        detail=finding.diagnostic if finding.complaint else f"{bounce_type}/{finding.status}",
        batch=token.batch,
        index=token.index,
    )


def _provider_id(store: Store, parsed: Parsed, token: Token) -> str:
    """The id the worker recorded for the e-mail when the relay took it (its
    Message-ID), so ``trace`` joins the bounce to the e-mail as it joins SES's events."""
    try:
        entry = read_entries(store, token.batch).get(token.index)
    except StoreError:
        entry = None
    if entry is not None and entry.message_id:
        return entry.message_id
    own = f"<{token.batch}.{token.index}@"
    return next((i for i in parsed.returned_ids if i.startswith(own)), own.rstrip("@") + ">")


def _timestamp(date: str) -> str:
    """The returned message's Date, at the end of its second (a Date has no fraction,
    and the bounce came after the send it reports, which ``trace`` shows to the
    microsecond); now when it has none or names a time to come."""
    now = datetime.now(UTC)
    try:
        moment = parsedate_to_datetime(date)
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return iso_time(now)
    return iso_time(min(moment.replace(microsecond=999999), now))
