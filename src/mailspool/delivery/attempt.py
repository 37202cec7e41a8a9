"""One attempt at one e-mail of a claimed batch, run in a sender thread: check it, wait
for the rate limit, send, and record the outcome durably before the thread goes on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from mailspool.delivery.ratelimit import RateLimiter
from mailspool.errors import (
    InvalidMessage,
    PermanentError,
    SendingPaused,
    TransientError,
)
from mailspool.feedback.screen import Screened, screen
from mailspool.feedback.suppression import SuppressionList
from mailspool.feedback.unsubscribe import UnsubscribeLinks
from mailspool.message import Message, sender_domain
from mailspool.spool import layout
from mailspool.spool.batch import Batch
from mailspool.spool.ledger import Ledger
from mailspool.spool.records import FailedRecord, LedgerEntry, LedgerState, timestamp
from mailspool.stores.base import Store
from mailspool.transports.base import Transport

__all__ = ["Attempt", "EmailSender", "OutcomeCallback", "SendOutcome"]

log = logging.getLogger("mailspool.worker")

#: Called after each e-mail's outcome is recorded: (batch id, e-mail index, state).
OutcomeCallback = Callable[[str, int, LedgerState], None]


class SendOutcome(StrEnum):
    """What one attempt at one e-mail came to."""

    SENT = "sent"
    FAILED = "failed"
    RETRY = "retry"  # a transient failure: try again after a backoff
    PAUSED = "paused"  # the provider paused sending: stop the batch
    STOPPED = "stopped"  # the worker is stopping: not tried


@dataclass(frozen=True, slots=True)
class Attempt:
    index: int
    attempt: int
    outcome: SendOutcome
    reason: str = ""
    entry: LedgerEntry | None = None  # what was recorded in the ledger (sent, failed)


@dataclass(frozen=True, slots=True)
class SendRules:
    """What every attempt of a worker shares."""

    transport: Transport
    limiter: RateLimiter
    stopping: threading.Event
    max_attempts: int
    default_sender: str
    on_outcome: OutcomeCallback | None = None
    suppressions: SuppressionList | None = None
    unsubscribe: UnsubscribeLinks | None = None  # List-Unsubscribe on every e-mail sent


class EmailSender:
    """Sends the e-mails of one batch, one attempt per call; thread-safe."""

    def __init__(self, rules: SendRules, store: Store, batch: Batch, ledger: Ledger) -> None:
        self._rules = rules
        self._store = store
        self._batch = batch
        self._batch_id = layout.batch_id_from_key(batch.source)
        self._ledger = ledger
        self._blobs = _Blobs(store)

    def attempt(self, index: int, attempt: int) -> Attempt:
        """Try e-mail ``index`` once; a sent or failed e-mail is in the ledger on return."""
        rules = self._rules
        if rules.stopping.is_set():
            return Attempt(index, attempt, SendOutcome.STOPPED)
        try:
            message = self._batch.message(index, self._blobs.get)
        except InvalidMessage as err:
            return self._fail(index, attempt, str(err), retryable=False)
        if message.sender is None:
            message = replace(message, sender=rules.default_sender)
        screened = (
            Screened(message) if rules.suppressions is None else screen(message, rules.suppressions)
        )
        if screened.message is None:  # every recipient suppressed: no send at all
            return self._fail(index, attempt, screened.reason, retryable=False)
        message = screened.message
        if rules.unsubscribe is not None:
            message = rules.unsubscribe.add_headers(message)
        if not rules.limiter.acquire(message.recipient_count):
            return Attempt(index, attempt, SendOutcome.STOPPED)
        try:
            receipt = rules.transport.send(message, message_id=self._message_id(index, message))
        except SendingPaused as err:
            log.error("sending paused by the provider: %s", err.response)
            return Attempt(index, attempt, SendOutcome.PAUSED, err.response)
        except TransientError as err:
            if attempt >= rules.max_attempts:
                reason = f"gave up after {attempt} attempts: {err.response}"
                return self._fail(index, attempt, reason, retryable=True)
            return Attempt(index, attempt, SendOutcome.RETRY, err.response)
        except PermanentError as err:
            return self._fail(index, attempt, err.response, retryable=False)
        except InvalidMessage as err:  # the transport found it unsendable: this e-mail only
            return self._fail(index, attempt, str(err), retryable=False)
        refused = {**screened.suppressed, **receipt.refused}
        if refused:
            why = "recipients refused" if receipt.refused else "recipients suppressed"
            self._write_failed(index, attempt, why, False, refused)
        entry = LedgerEntry.sent(index, receipt.message_id, attempt, refused)
        self._ledger.record(entry)
        self._notify(index, LedgerState.SENT)
        return Attempt(index, attempt, SendOutcome.SENT, entry=entry)

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
        self._store.put(key, record.encode())

    def _notify(self, index: int, state: LedgerState) -> None:
        if self._rules.on_outcome is not None:
            self._rules.on_outcome(self._batch_id, index, state)

    def _message_id(self, index: int, message: Message) -> str:
        """A stable Message-ID, so a duplicate after a crash is recognisable as one."""
        domain = sender_domain(message.sender) or "mailspool.invalid"
        return f"<{self._batch_id}.{index}@{domain}>"


class _Blobs:
    """Attachment blobs read once per batch, shared by its e-mails."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, bytes] = {}

    def get(self, digest: str) -> bytes:
        content = self._cache.get(digest)
        if content is None:
            content = self._cache[digest] = self._store.get(layout.blob_key(digest))
        return content
