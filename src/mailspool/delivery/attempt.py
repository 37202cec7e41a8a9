"""One attempt at one e-mail of a claimed batch, run in a sender thread: check it, wait
for the rate limit, send, and record the outcome before going on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from mailspool.delivery.inflight import BytesInFlight
from mailspool.delivery.outage import TransportGate
from mailspool.delivery.ratelimit import RateLimiter
from mailspool.delivery.steps import Call, Refused, SendResult, Steps
from mailspool.errors import (
    ContentUnanswered,
    DeliveryError,
    InvalidMessage,
    ObjectRefused,
    SenderNotAllowed,
    SendingPaused,
    TransientError,
    TransportUnavailable,
)
from mailspool.feedback.refusals import record_refusals, session_refusals
from mailspool.feedback.suppression import shared_suppressions
from mailspool.message import Message, sender_domain
from mailspool.policy.guards import Guards
from mailspool.policy.limits import Limits
from mailspool.spool import layout
from mailspool.spool.batch import Batch, moment
from mailspool.spool.ledger import Ledger
from mailspool.spool.records import FailedRecord, LedgerEntry, LedgerState, timestamp
from mailspool.stores.base import Store
from mailspool.stores.retry import retry_write
from mailspool.transports.base import Receipt, Transport

__all__ = ["Attempt", "EmailSender", "Prepared", "SendOutcome", "SendResult"]

log = logging.getLogger("mailspool.worker")


class SendOutcome(StrEnum):
    """What one attempt at one e-mail came to."""

    SENT = "sent"
    FAILED = "failed"
    RETRY = "retry"  # a transient failure: try again after a backoff
    PAUSED = "paused"  # the provider paused sending: stop the batch
    WAITING = "waiting"  # the transport is down (``outage``): try again, no attempt spent
    STOPPED = "stopped"  # the worker is stopping: not tried


@dataclass(frozen=True, slots=True)
class Attempt:
    index: int
    attempt: int
    outcome: SendOutcome
    reason: str = ""
    entry: LedgerEntry | None = None  # what was recorded in the ledger (sent, failed)


@dataclass(frozen=True, slots=True)
class Prepared:
    """An e-mail ready to leave: checked, screened, with its headers and Message-ID."""

    index: int
    message: Message
    message_id: str
    suppressed: dict[str, str]  # recipients taken off by the suppression list


@dataclass(frozen=True, slots=True)
class SendRules:
    """What every attempt of a worker shares."""

    transport: Transport
    limiter: RateLimiter
    stopping: threading.Event
    max_attempts: int
    default_sender: str
    guards: Guards
    in_flight: BytesInFlight
    gate: TransportGate
    queue_lifetime: float
    steps: Steps  # around each send: the screen, headers, metrics, callbacks


class EmailSender:
    """Sends the e-mails of one batch, one attempt per call; thread-safe."""

    def __init__(self, rules: SendRules, store: Store, batch: Batch, ledger: Ledger) -> None:
        self._rules = rules
        self._store = store
        self._batch = batch
        self._batch_id = layout.batch_id_from_key(batch.source)
        self._ledger = ledger
        self._blobs = _Blobs(store, rules.guards.limits)
        self._expires = batch.expires()
        self._lifetime_ends = _lifetime_end(batch, rules.queue_lifetime)

    def attempt(self, index: int, attempt: int) -> Attempt:
        """Try e-mail ``index`` once; a sent or failed e-mail is in the ledger on return."""
        rules = self._rules
        footprint = self.footprint(index)
        reserved = (
            None if rules.stopping.is_set() else rules.in_flight.acquire(footprint, rules.stopping)
        )
        if reserved is None:
            return Attempt(index, attempt, SendOutcome.STOPPED)
        try:
            return self._send(index, attempt)
        finally:
            rules.in_flight.release(reserved)

    def _send(self, index: int, attempt: int) -> Attempt:
        """Prepare, wait for the rate limit, send and record one e-mail."""
        prepared = self.prepare(index, attempt)
        if isinstance(prepared, Attempt):
            return prepared
        return self.send_prepared(prepared, attempt)

    def footprint(self, index: int) -> int:
        """The bytes e-mail ``index`` may hold in memory (``Limits.footprint``)."""
        return self._rules.guards.limits.footprint(self._batch.raw_email(index)).total

    def prepare(self, index: int, attempt: int) -> Prepared | Attempt:
        """E-mail ``index`` read, checked, screened and with its List-Unsubscribe headers;
        or, recorded as failed, one that has expired or may not be sent."""
        rules = self._rules
        now = datetime.now(UTC)
        if self._expires is not None and now >= self._expires:
            reason = f"expired at {timestamp(self._expires)} before it could be sent"
            return self._fail(index, attempt, reason, retryable=False)
        if self._lifetime_ends is not None and now >= self._lifetime_ends:
            reason = (
                f"its queue lifetime ({rules.queue_lifetime:g} s, MAILSPOOL_QUEUE_LIFETIME) "
                f"ran out at {timestamp(self._lifetime_ends)} before it could be sent"
            )
            return self._fail(index, attempt, reason, retryable=True)
        try:
            message = rules.guards.read(self._batch, index, self._blobs.get, rules.default_sender)
        except (InvalidMessage, SenderNotAllowed) as err:
            return self._fail(index, attempt, str(err), retryable=False)
        try:
            draft = rules.steps.prepare(message, self._batch_id, index)
        except Refused as refusal:  # e.g. every recipient suppressed: no send at all
            return self._fail(index, attempt, refusal.reason, retryable=False)
        message = draft.message
        return Prepared(index, message, self._message_id(index, message), dict(draft.suppressed))

    def send_prepared(self, prepared: Prepared, attempt: int) -> Attempt:
        """Wait for the rate limit, send alone, and record the outcome; while the
        transport is down, only the probe the gate admits goes (``outage``)."""
        gate = self._rules.gate
        if not gate.admits():
            return Attempt(prepared.index, attempt, SendOutcome.WAITING)
        if not self._rules.limiter.acquire(prepared.message.recipient_count):
            gate.unanswered()
            return Attempt(prepared.index, attempt, SendOutcome.STOPPED)
        transport = self._rules.transport
        started = time.perf_counter()
        try:
            result: SendResult = transport.send(prepared.message, message_id=prepared.message_id)
        except (DeliveryError, InvalidMessage) as err:
            result = err
        self._rules.steps.answered(Call(time.perf_counter() - started, (result,)))
        return self.conclude(prepared, attempt, result)

    def conclude(self, prepared: Prepared, attempt: int, result: SendResult) -> Attempt:
        """Record what the transport answered for one e-mail (sent or failed in the
        ledger, a failed record) or say that it is to be retried, or that SES paused."""
        index = prepared.index
        self._bounced(prepared, result)
        if isinstance(result, TransportUnavailable):
            self._rules.gate.failed(result.response or str(result))
            return Attempt(index, attempt, SendOutcome.WAITING, result.response)
        if not isinstance(result, InvalidMessage | ContentUnanswered):
            self._rules.gate.answered()  # the provider took or refused this e-mail
        if isinstance(result, SendingPaused):
            log.error("sending paused by the provider: %s", result.response)
            return Attempt(index, attempt, SendOutcome.PAUSED, result.response)
        if isinstance(result, TransientError):
            if attempt >= self._rules.max_attempts:
                reason = f"gave up after {attempt} attempts: {result.response}"
                return self._fail(index, attempt, reason, retryable=True)
            return Attempt(index, attempt, SendOutcome.RETRY, result.response)
        if isinstance(result, DeliveryError):  # permanent
            return self._fail(index, attempt, result.response, retryable=False)
        if isinstance(result, InvalidMessage):  # the transport found it unsendable
            return self._fail(index, attempt, str(result), retryable=False)
        refused = {**prepared.suppressed, **result.refused}
        if refused:
            why = "recipients refused" if result.refused else "recipients suppressed"
            self._write_failed(index, attempt, why, False, refused)
        entry = LedgerEntry.sent(index, result.message_id, attempt, refused)
        self._ledger.record(entry)
        self._notify(index, LedgerState.SENT)
        return Attempt(index, attempt, SendOutcome.SENT, entry=entry)

    def _bounced(self, prepared: Prepared, result: SendResult) -> None:
        """Recipients the server refused in the session with a 5xx about the address
        are hard bounces, recorded as SES's are (``feedback.refusals``)."""
        refused = session_refusals(prepared.message.envelope_recipients, result)
        if refused:
            provider_id = result.message_id if isinstance(result, Receipt) else prepared.message_id
            record_refusals(
                self._store,
                self._batch_id,
                prepared.index,
                provider_id,
                refused,
                shared_suppressions(self._store),
            )

    def _fail(self, index: int, attempt: int, reason: str, *, retryable: bool) -> Attempt:
        log.warning(
            "%s e-mail #%d failed after %d attempt(s): %s",
            self._batch.source,
            index,
            attempt,
            reason,
        )
        self._write_failed(index, attempt, reason, retryable, None)
        entry = LedgerEntry.failed(index, reason, attempt)
        self._ledger.record(entry)
        self._notify(index, LedgerState.FAILED)
        return Attempt(index, attempt, SendOutcome.FAILED, reason, entry)

    def _write_failed(
        self,
        index: int,
        attempt: int,
        reason: str,
        retryable: bool,
        refused: Mapping[str, str] | None,
    ) -> None:
        record = FailedRecord(
            batch=self._batch_id,
            index=index,
            reason=reason,
            attempts=attempt,
            retryable=retryable,
            failed_at=timestamp(),
            partial=refused is not None,
            refused=refused,
            meta=self._batch.meta,
            email=self._batch.raw_email(index),
        )
        key = layout.failed_key(self._batch_id, index, partial=record.partial)
        data = record.encode()
        retry_write(lambda: self._store.put(key, data), key)

    def _notify(self, index: int, state: LedgerState) -> None:
        self._rules.steps.recorded(self._batch_id, index, state)

    def _message_id(self, index: int, message: Message) -> str:
        """A stable Message-ID, so a duplicate after a crash is recognisable as one."""
        domain = sender_domain(message.sender) or "mailspool.invalid"
        return f"<{self._batch_id}.{index}@{domain}>"


def _lifetime_end(batch: Batch, lifetime: float) -> datetime | None:
    """When the batch's queue lifetime runs out; None if its creation time is unknown
    or unreadable (the e-mails then end only on an answer or ``max_attempts``)."""
    if batch.created_at is None:
        return None
    try:
        return moment(batch.created_at) + timedelta(seconds=lifetime)
    except (ValueError, OverflowError):
        return None


class _Blobs:
    """Attachment blobs read once per batch, shared by its e-mails; none larger than
    the attachment limit is read, and the cache holds at most the message limit."""

    def __init__(self, store: Store, limits: Limits) -> None:
        self._store = store
        self._limits = limits
        self._cache: dict[str, bytes] = {}
        self._cached = 0
        self._lock = threading.Lock()

    def get(self, digest: str) -> bytes:
        content = self._cache.get(digest)
        if content is None:
            content = self._read(digest)
            with self._lock:  # sender threads share the cache
                if self._cached + len(content) > self._limits.message_bytes:
                    self._cache.clear()  # bounded: a batch may name many distinct blobs
                    self._cached = 0
                self._cache[digest] = content
                self._cached += len(content)
        return content

    def _read(self, digest: str) -> bytes:
        limit = self._limits.attachment_bytes
        try:
            return self._store.get_at_most(
                layout.blob_key(digest), limit, self._limits.setting("attachment_bytes")
            )
        except ObjectRefused as err:
            raise InvalidMessage(f"blob refused: {err}", field="attachments.sha256") from None
