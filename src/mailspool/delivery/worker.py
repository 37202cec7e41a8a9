"""Deliver batches: the one code path that every trigger calls (local worker, Lambda).

For one batch: claim it (no second worker may take it), load and check it, then for
each e-mail not yet in its ledger: wait for the shared rate limit, send, record. An
e-mail is recorded before its sender thread takes the next one, so a crash can repeat
at most the e-mails in flight (one per sender thread), never the batch (W2).

Outcomes (W3, W5):

- transient failure (4xx, throttling, dropped connection): retried later with
  exponential backoff and full jitter, without holding a sender thread, up to
  ``max_attempts``; then the e-mail fails with the last answer, marked retryable;
- permanent failure (5xx, refused recipient, invalid address): that e-mail goes to
  ``failed/`` with the answer and the attempt count; the rest of the batch goes on;
- a file that cannot be read goes to ``quarantine/`` with an error naming the file, the
  e-mail and the field; the worker goes on;
- the provider paused sending (SES ``SendingPaused``): the batch stops, nothing fails.

A batch is finished when every e-mail is sent, failed or carried on by a continuation
batch; it then moves to ``done/``, the only place a lifecycle rule may expire.
Near a deadline (Lambda) the worker writes the e-mails still to send as a continuation
batch instead of timing out half-way (W9); a large batch can be split the same way so
that several workers deliver its parts in parallel.
"""

from __future__ import annotations

import heapq
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from mailspool.delivery.ratelimit import RateLimiter
from mailspool.errors import (
    InvalidBatch,
    InvalidMessage,
    KeyNotFound,
    LeaseLost,
    PermanentError,
    SendingPaused,
    TransientError,
)
from mailspool.message import parse_address
from mailspool.spool import batch as batch_format
from mailspool.spool import layout
from mailspool.spool.ledger import Entry, Ledger, read_entries
from mailspool.stores.base import Lease, Store, default_owner
from mailspool.transports.base import Transport

__all__ = ["BatchReport", "Worker", "WorkerOptions"]

log = logging.getLogger("mailspool.worker")

#: Called after each e-mail's outcome is recorded: (batch id, e-mail index, status).
OutcomeCallback = Callable[[str, int, str], None]
#: Seconds left before the caller must return (Lambda's remaining time).
Deadline = Callable[[], float]


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker delivers; ``docs/configuration.md`` explains each."""

    concurrency: int = 32
    max_attempts: int = 5
    retry_base: float = 1.0
    retry_cap: float = 60.0
    lease_ttl: float = 300.0
    split_above: int | None = None
    deadline_margin: float = 5.0
    default_sender: str = "mailspool <mailspool@localhost>"


@dataclass(slots=True)
class BatchReport:
    """What happened to one batch in one run.

    ``status``: ``finished``, ``held`` (another worker has it), ``missing`` (already
    gone), ``quarantined``, ``stopped`` (shutdown or deadline before the end),
    ``paused`` (the provider paused sending) or ``lost`` (the claim was taken over).
    """

    key: str
    batch_id: str
    status: str = "finished"
    sent: int = 0
    failed: int = 0
    continued: int = 0
    pending: int = 0
    continuations: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(order=True, slots=True)
class _Retry:
    due: float
    index: int
    attempt: int = field(compare=False)
    reason: str = field(compare=False, default="")


@dataclass(slots=True)
class _Attempt:
    index: int
    attempt: int
    status: str  # sent, failed, retry, paused, stopped
    reason: str = ""


class Worker:
    """Delivers batches from a store through a transport; safe to share across threads."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        *,
        options: WorkerOptions | None = None,
        max_rate: float | None = None,
        on_outcome: OutcomeCallback | None = None,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.transport = transport
        self.options = options or WorkerOptions()
        self.owner = owner or default_owner()
        self.on_outcome = on_outcome
        self.stopping = threading.Event()
        self.limiter = RateLimiter(max_rate, stop=self.stopping)
        self._senders = ThreadPoolExecutor(
            max_workers=self.options.concurrency, thread_name_prefix="mailspool-send"
        )
        self._active: set[str] = set()
        self._active_lock = threading.Lock()

    # -- public --------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the e-mails in flight, record them, and take no more (SIGTERM, Ctrl-C)."""
        self.stopping.set()

    def close(self) -> None:
        self.stop()
        self._senders.shutdown(wait=True)

    def active(self) -> set[str]:
        """Batch keys this worker is delivering right now."""
        with self._active_lock:
            return set(self._active)

    def deliver(self, key: str, *, deadline: Deadline | None = None) -> BatchReport:
        """Deliver one batch (``queue/<id>.json``) as far as possible; never raises for
        bad content (it quarantines or fails it). Raises ``StoreError`` if the store
        cannot be reached."""
        batch_id = layout.batch_id_from_key(key)
        report = BatchReport(key=key, batch_id=batch_id)
        with self._active_lock:
            if key in self._active:
                report.status = "held"
                return report
            self._active.add(key)
        try:
            lease = self.store.claim(batch_id, self.owner, self.options.lease_ttl)
            if lease is None:
                report.status = "held"
                return report
            try:
                self._deliver_claimed(key, lease, report, deadline)
            finally:
                self.store.release(lease)
        finally:
            with self._active_lock:
                self._active.discard(key)
        log.info(
            "batch %s %s: %d sent, %d failed, %d continued, %d pending",
            batch_id,
            report.status,
            report.sent,
            report.failed,
            report.continued,
            report.pending,
        )
        return report

    # -- one claimed batch ------------------------------------------------------------------

    def _deliver_claimed(
        self, key: str, lease: Lease, report: BatchReport, deadline: Deadline | None
    ) -> None:
        try:
            data = self.store.get(key)
        except KeyNotFound:
            report.status = "missing"  # finished by another worker just before our claim
            return
        try:
            batch = batch_format.decode(data, source=key)
        except InvalidBatch as err:
            self._quarantine(key, data, err)
            report.status, report.error = "quarantined", str(err)
            return
        entries = read_entries(self.store, report.batch_id)
        todo = [i for i in range(len(batch)) if i not in entries]
        if self.options.split_above and len(todo) > self.options.split_above:
            keep, rest = todo[: self.options.split_above], todo[self.options.split_above :]
            size = self.options.split_above
            for start in range(0, len(rest), size):
                entries.update(self._continue(batch, report, rest[start : start + size]))
            todo = keep
        delivery = _Delivery(self, batch, report, lease, deadline)
        delivery.run(todo)
        entries.update(delivery.recorded)  # no re-read: the claim kept the ledger ours
        report.pending = len(batch) - len(entries)
        if report.pending == 0 and report.status == "finished":
            self._finish(key, batch, entries, report)
        elif report.status == "finished":
            report.status = "stopped"

    def _finish(
        self, key: str, batch: batch_format.Batch, entries: dict[int, Entry], report: BatchReport
    ) -> None:
        carried: dict[str, list[int]] = {}
        for index, entry in entries.items():
            if entry.get("s") == "continued":
                carried.setdefault(str(entry.get("batch")), []).append(index)
        for continuation_id, indices in carried.items():
            # A crash between the ledger entry and the write leaves no file: write it now.
            if not (
                self.store.exists(layout.queue_key(continuation_id))
                or self.store.exists(layout.done_key(continuation_id))
            ):
                self._write_continuation(batch, continuation_id, sorted(indices))
        self.store.move(key, layout.done_key(report.batch_id))

    def _continue(
        self, batch: batch_format.Batch, report: BatchReport, indices: list[int]
    ) -> dict[int, Entry]:
        """Hand e-mails to a new batch: ledger first, then the file (see ``_finish``).
        Returns the ledger entries written."""
        continuation_id = f"{report.batch_id}-p{indices[0]}"
        entries: dict[int, Entry] = {
            i: {"i": i, "s": "continued", "batch": continuation_id} for i in indices
        }
        Ledger(self.store, report.batch_id).record_many(entries.values())
        self._write_continuation(batch, continuation_id, indices)
        report.continued += len(indices)
        report.continuations.append(layout.queue_key(continuation_id))
        return entries

    def _write_continuation(
        self, batch: batch_format.Batch, continuation_id: str, indices: list[int]
    ) -> None:
        document = {
            "version": batch_format.CURRENT_VERSION,
            "id": continuation_id,
            "createdAt": batch.created_at or _now(),
            "meta": batch.meta,
            "emails": [batch.raw_email(i) for i in indices],
        }
        self.store.put(layout.queue_key(continuation_id), orjson.dumps(document))

    def _quarantine(self, key: str, data: bytes, err: InvalidBatch) -> None:
        log.warning("quarantined %s: %s", key, err)
        error = {
            "file": key,
            "error": str(err),
            "reason": err.reason,
            "field": err.field,
            "index": err.index,
            "quarantinedAt": _now(),
        }
        self.store.put(layout.quarantine_key(key), data)
        self.store.put(layout.quarantine_error_key(key), orjson.dumps(error))
        self.store.delete(key)

    # -- one e-mail (runs in a sender thread) ----------------------------------------------

    def _attempt(
        self, batch: batch_format.Batch, index: int, attempt: int, ledger: Ledger, blobs: _Blobs
    ) -> _Attempt:
        if self.stopping.is_set():
            return _Attempt(index, attempt, "stopped")
        try:
            message = batch.message(index, blobs.get)
        except InvalidMessage as err:
            return self._fail(batch, index, attempt, ledger, str(err), retryable=False)
        if message.sender is None:
            message = replace(message, sender=self.options.default_sender)
        if not self.limiter.acquire(message.recipient_count):
            return _Attempt(index, attempt, "stopped")
        try:
            receipt = self.transport.send(message, message_id=_message_id(batch, index, message))
        except SendingPaused as err:
            log.error("sending paused by the provider: %s", err.response)
            return _Attempt(index, attempt, "paused", err.response)
        except TransientError as err:
            if attempt >= self.options.max_attempts:
                reason = f"gave up after {attempt} attempts: {err.response}"
                return self._fail(batch, index, attempt, ledger, reason, retryable=True)
            return _Attempt(index, attempt, "retry", err.response)
        except PermanentError as err:
            return self._fail(batch, index, attempt, ledger, err.response, retryable=False)
        entry: Entry = {"i": index, "s": "sent", "id": receipt.message_id, "a": attempt}
        if receipt.refused:
            entry["refused"] = dict(receipt.refused)
            self._write_failed(batch, index, attempt, "recipients refused", False, receipt.refused)
        ledger.record(entry)
        self._notify(batch, index, "sent")
        return _Attempt(index, attempt, "sent")

    def _fail(
        self,
        batch: batch_format.Batch,
        index: int,
        attempt: int,
        ledger: Ledger,
        reason: str,
        *,
        retryable: bool,
    ) -> _Attempt:
        log.warning(
            "%s e-mail #%d failed after %d attempt(s): %s", batch.source, index, attempt, reason
        )
        self._write_failed(batch, index, attempt, reason, retryable, None)
        ledger.record({"i": index, "s": "failed", "reason": reason, "a": attempt})
        self._notify(batch, index, "failed")
        return _Attempt(index, attempt, "failed", reason)

    def _write_failed(
        self,
        batch: batch_format.Batch,
        index: int,
        attempt: int,
        reason: str,
        retryable: bool,
        refused: Any,
    ) -> None:
        batch_id = layout.batch_id_from_key(batch.source)
        record = {
            "batch": batch_id,
            "index": index,
            "reason": reason,
            "attempts": attempt,
            "retryable": retryable,
            "failedAt": _now(),
            "partial": refused is not None,
            "refused": dict(refused) if refused else None,
            "meta": batch.meta,
            "email": batch.raw_email(index),
        }
        key = layout.failed_key(batch_id, index, partial=refused is not None)
        self.store.put(key, orjson.dumps(record))

    def _notify(self, batch: batch_format.Batch, index: int, status: str) -> None:
        if self.on_outcome is not None:
            self.on_outcome(layout.batch_id_from_key(batch.source), index, status)

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random delay up to base * 2^(attempt-1), capped."""
        ceiling = min(self.options.retry_cap, self.options.retry_base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


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


class _Delivery:
    """The send loop of one claimed batch: a window of e-mails in flight, retries on a
    timer (no sender thread sleeps through a backoff), lease renewal and the deadline."""

    def __init__(
        self,
        worker: Worker,
        batch: batch_format.Batch,
        report: BatchReport,
        lease: Lease,
        deadline: Deadline | None,
    ) -> None:
        self.worker = worker
        self.batch = batch
        self.report = report
        self.lease = lease
        self.deadline = deadline
        self.ledger = Ledger(worker.store, report.batch_id)
        self.blobs = _Blobs(worker.store)
        self.done: queue.Queue[Future[_Attempt]] = queue.Queue()
        self.in_flight = 0
        self.retries: list[_Retry] = []
        self.recorded: dict[int, Entry] = {}  # what this run wrote to the ledger
        self.renew_at = time.monotonic() + worker.options.lease_ttl / 3

    def run(self, todo: list[int]) -> None:
        pending = list(reversed(todo))  # pop() from the end takes the lowest index first
        halted = False
        while pending or self.retries or self.in_flight:
            if not halted and self._must_halt():
                halted = True
                if self.report.status == "finished" and self._deadline_near():
                    self.report.status = "deadline"
            if not halted:
                self._submit_ready(pending)
            elif not self.in_flight:
                break
            self._collect(halted)
        if self.report.status == "deadline":
            rest = sorted([*pending, *(r.index for r in self.retries)])
            if rest:
                self.recorded.update(self.worker._continue(self.batch, self.report, rest))
            self.report.status = "finished"
        elif halted and self.report.status == "finished":
            self.report.status = "stopped"

    def _must_halt(self) -> bool:
        return (
            self.worker.stopping.is_set()
            or self.report.status in ("paused", "lost")
            or self._deadline_near()
        )

    def _deadline_near(self) -> bool:
        return self.deadline is not None and self.deadline() < self.worker.options.deadline_margin

    def _submit_ready(self, pending: list[int]) -> None:
        now = time.monotonic()
        while self.in_flight < self.worker.options.concurrency:
            if self.retries and self.retries[0].due <= now:
                retry = heapq.heappop(self.retries)
                self._submit(retry.index, retry.attempt)
            elif pending:
                self._submit(pending.pop(), 1)
            else:
                return

    def _submit(self, index: int, attempt: int) -> None:
        future = self.worker._senders.submit(
            self.worker._attempt, self.batch, index, attempt, self.ledger, self.blobs
        )
        self.in_flight += 1
        future.add_done_callback(self.done.put)

    def _collect(self, halted: bool) -> None:
        timeout = self._wait_time(halted)
        try:
            future = self.done.get(timeout=timeout)
        except queue.Empty:
            self._renew_lease()
            return
        self.in_flight -= 1
        self._renew_lease()
        outcome = future.result()  # a StoreError from the ledger propagates: stop here
        if outcome.status == "sent":
            self.report.sent += 1
            self.recorded[outcome.index] = {"i": outcome.index, "s": "sent"}
        elif outcome.status == "failed":
            self.report.failed += 1
            self.recorded[outcome.index] = {"i": outcome.index, "s": "failed"}
        elif outcome.status == "retry":
            delay = self.worker.backoff(outcome.attempt)
            heapq.heappush(
                self.retries,
                _Retry(
                    time.monotonic() + delay, outcome.index, outcome.attempt + 1, outcome.reason
                ),
            )
        elif outcome.status == "paused":
            self.report.status, self.report.error = "paused", outcome.reason

    def _wait_time(self, halted: bool) -> float:
        now = time.monotonic()
        waits = [self.renew_at - now]
        if self.retries and not halted:
            waits.append(self.retries[0].due - now)
        if self.deadline is not None and not halted:  # once halted, only wait for results
            waits.append(max(self.deadline() - self.worker.options.deadline_margin, 0.0))
        return max(min(min(waits), 1.0), 0.0)

    def _renew_lease(self) -> None:
        if time.monotonic() < self.renew_at:
            return
        try:
            self.lease = self.worker.store.renew(self.lease, self.worker.options.lease_ttl)
        except LeaseLost:
            log.error("lost the claim on %s: another worker took it over", self.report.key)
            self.report.status = "lost"
        self.renew_at = time.monotonic() + self.worker.options.lease_ttl / 3


def _message_id(batch: batch_format.Batch, index: int, message: Any) -> str:
    """A stable Message-ID, so a duplicate after a crash is recognisable as one."""
    domain = parse_address(message.sender or "")[1].rpartition("@")[2] or "mailspool.invalid"
    batch_id = layout.batch_id_from_key(batch.source)
    return f"<{batch_id}.{index}@{domain}>"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
