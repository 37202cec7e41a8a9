"""One claimed batch from claim to finish: load it (or quarantine it), send what its
ledger lacks through the sender pool with a window of e-mails in flight, retry on a timer
(no sender thread sleeps through a backoff), keep the claim alive, hand the rest to a
continuation near the deadline, and move it to ``done/`` when nothing is left."""

from __future__ import annotations

import contextlib
import heapq
import logging
import queue
import random
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import TYPE_CHECKING

from mailspool.delivery.attempt import Attempt, EmailSender, SendOutcome, SendRules
from mailspool.delivery.bulk import BulkPlan, BulkSender
from mailspool.delivery.parts import part_size
from mailspool.delivery.report import BatchReport, BatchStatus
from mailspool.delivery.steps import BatchEnd
from mailspool.errors import InvalidBatch, KeyNotFound, LeaseLost, ObjectRefused
from mailspool.spool import batch as batch_format
from mailspool.spool import layout, tally
from mailspool.spool.ledger import Ledger, read_entries
from mailspool.spool.quarantine import quarantine
from mailspool.spool.records import LedgerEntry, LedgerState, QuarantineError, timestamp
from mailspool.stores.base import Lease, Store
from mailspool.stores.retry import retry_write
from mailspool.tracing import claim_span

if TYPE_CHECKING:  # the worker module imports this one
    from mailspool.delivery.worker import WorkerOptions

__all__ = ["BatchRun", "Deadline", "DeliveryContext", "backoff"]

log = logging.getLogger("mailspool.worker")

#: Seconds left before the caller must return (Lambda's remaining time).
Deadline = Callable[[], float]


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    """What a batch run needs from its worker: its store, sender threads and rules."""

    store: Store
    senders: Executor
    options: WorkerOptions
    rules: SendRules
    #: outcomes a run of this worker could not write (the store failed), by batch id:
    #: written first when the batch is taken again, before anything is sent
    unrecorded: dict[str, list[LedgerEntry]] = field(default_factory=dict)


def backoff(options: WorkerOptions, attempt: int) -> float:
    """Full jitter: a random delay up to base * 2^(attempt-1), capped."""
    ceiling = min(options.retry_cap, options.retry_base * 2 ** (attempt - 1))
    return random.uniform(0, ceiling)


@dataclass(order=True, slots=True)
class _Retry:
    due: float
    index: int
    attempt: int = field(compare=False)


class _Halt(Enum):
    """Why the send loop stopped taking e-mails (it still collects those in flight)."""

    NONE = auto()
    TROUBLE = auto()  # paused by the provider, or the claim lost
    DEADLINE = auto()  # the rest goes to a continuation
    STOPPED = auto()  # the worker is stopping


class BatchRun:
    """Delivers one claimed batch once; ``run`` returns its report."""

    def __init__(
        self, context: DeliveryContext, key: str, lease: Lease, deadline: Deadline | None
    ) -> None:
        self._context = context
        self._store = context.store
        self._options = context.options
        self._lease = lease
        self._deadline = deadline
        self._report = BatchReport(key=key, batch_id=layout.batch_id_from_key(key))
        self._trouble: BatchStatus | None = None  # PAUSED or LOST, once it happens
        self._renew_at = time.monotonic() + self._options.lease_ttl / 3
        # the send loop's state
        self._pending: list[int] = []  # popped from the end: lowest index first
        self._retries: list[_Retry] = []  # a heap: the next one due first
        self._in_flight = 0
        self._done: queue.Queue[Future[list[Attempt]]] = queue.Queue()
        self._plan = BulkPlan(1, {})  # which e-mails go to the transport together
        self._recorded: dict[int, LedgerEntry] = {}  # what this run wrote to the ledger
        self._complete_at_start = False  # the ledger had every e-mail: maybe counted

    def run(self) -> BatchReport:
        report = self._report
        limits = self._options.guards.limits
        try:
            data = self._store.get_at_most(
                report.key, limits.batch_bytes, limits.setting("batch_bytes")
            )
        except KeyNotFound:
            report.status = BatchStatus.MISSING  # finished by another worker before our claim
            return report
        except ObjectRefused as err:  # a link, a special file, too large: never read
            self._quarantine(None, err)
            report.status, report.error = BatchStatus.QUARANTINED, str(err)
            return report
        try:
            batch = batch_format.decode(data, source=report.key)
            limits.check_batch(len(batch), report.key)
        except InvalidBatch as err:
            self._quarantine(data, err)
            report.status, report.error = BatchStatus.QUARANTINED, str(err)
            return report
        with claim_span(report.batch_id, batch.emails):
            self._deliver(batch)
        return report

    # -- the batch ----------------------------------------------------------------------

    def _deliver(self, batch: batch_format.Batch) -> None:
        self._record_unrecorded()
        entries = read_entries(self._store, self._report.batch_id)
        todo = [i for i in range(len(batch)) if i not in entries]
        self._complete_at_start = not todo
        size = part_size(len(todo), self._options.split_above, self._options.split_among)
        if size is not None:
            for start in range(size, len(todo), size):
                entries.update(self._continue(batch, todo[start : start + size]))
            todo = todo[:size]
        ledger = self._ledger()
        self._plan = BulkPlan.of(self._context, batch, todo)
        try:
            halt = self._send_all(
                EmailSender(self._context.rules, self._store, batch, ledger), todo
            )
        except BaseException:
            with contextlib.suppress(Exception):  # keep the first error; record what was sent
                self._await_in_flight()
                ledger.flush()
            if ledger.unwritten():  # sent but not on record: kept for the next run here
                self._context.unrecorded[self._report.batch_id] = ledger.unwritten()
            raise
        ledger.flush()  # every outcome durable before the batch is concluded
        entries.update(self._recorded)  # no re-read: the claim kept the ledger ours
        if halt is _Halt.DEADLINE and self._trouble is None:
            rest = sorted([*self._pending, *(retry.index for retry in self._retries)])
            if rest:
                entries.update(self._continue(batch, rest))
        self._report.pending = len(batch) - len(entries)
        self._report.status = self._conclude(halt)
        finished = self._report.status is BatchStatus.FINISHED
        # before the batch leaves queue/: a crash until then runs it, and this, again
        self._context.rules.steps.concluded(
            BatchEnd(batch, self._report.batch_id, entries, finished=finished)
        )
        if finished:
            self._finish(batch, entries)

    def _record_unrecorded(self) -> None:
        """Write first what an earlier run of this worker sent but could not record; if
        the store still refuses, give the batch up again without sending anything (so
        a batch given up by two workers is sent once more at most)."""
        entries = self._context.unrecorded.pop(self._report.batch_id, None)
        if not entries:
            return
        try:
            Ledger(self._store, self._report.batch_id).record_many(entries)
        except BaseException:
            self._context.unrecorded[self._report.batch_id] = entries
            raise

    def _ledger(self) -> Ledger:
        """The batch's ledger, committing as the options (or the store's cost) say."""
        commit_ms = self._options.ledger_commit_ms
        if commit_ms is None:
            commit_ms = self._store.ledger_commit_ms
        window = self._options.ledger_entries_in_wait
        return Ledger(
            self._store,
            self._report.batch_id,
            window=window,
            interval=commit_ms / 1000,
            clock=self._options.clock,
        )

    def _conclude(self, halt: _Halt) -> BatchStatus:
        """The run's status, decided once at its end."""
        if self._trouble is not None:
            return self._trouble
        if halt is _Halt.STOPPED or self._report.pending:
            return BatchStatus.STOPPED
        return BatchStatus.FINISHED

    def _continue(self, batch: batch_format.Batch, indices: list[int]) -> dict[int, LedgerEntry]:
        """Hand e-mails to a new batch: ledger first, then the file (see ``_finish``).
        Returns the ledger entries written."""
        continuation_id = f"{self._report.batch_id}-p{indices[0]}"
        entries = {i: LedgerEntry.continued(i, continuation_id) for i in indices}
        Ledger(self._store, self._report.batch_id).record_many(entries.values())
        self._store.put(
            layout.queue_key(continuation_id), batch.part(continuation_id, indices).encode()
        )
        self._report.continued += len(indices)
        self._report.continuations.append(layout.queue_key(continuation_id))
        return entries

    def _finish(self, batch: batch_format.Batch, entries: dict[int, LedgerEntry]) -> None:
        carried: dict[str, list[int]] = {}
        for index, entry in entries.items():
            if entry.state is LedgerState.CONTINUED and entry.batch is not None:
                carried.setdefault(entry.batch, []).append(index)
        for continuation_id, indices in carried.items():
            # A crash between the ledger entry and the write leaves no file: write it now.
            if not (
                self._store.exists(layout.queue_key(continuation_id))
                or self._store.exists(layout.done_key(continuation_id))
            ):
                part = batch.part(continuation_id, sorted(indices))
                self._store.put(layout.queue_key(continuation_id), part.encode())
        done = layout.done_key(self._report.batch_id)
        # Counted before the move (``spool.tally``: a batch in done/ always has its
        # record); a batch found complete at the start of this run may have been
        # recorded by a run that crashed before its move: recorded once.
        if not (
            self._complete_at_start and tally.is_recorded(self._store, self._report.batch_id)
        ) and not tally.record_finished(self._store, self._report.batch_id, entries.values()):
            return  # not counted: it stays in queue/ (counted there) for a later run
        # The move also finishes one a crash interrupted (the batch in queue/ and done/).
        # Under the claim no one else moves this batch: a move that found its source gone
        # (its own delete applied, the answer lost) moved it too.
        retry_write(lambda: self._store.move(self._report.key, done), done)

    def _quarantine(self, data: bytes | None, err: InvalidBatch | ObjectRefused) -> None:
        """Keep the file beside its error (``spool.quarantine``); ``data`` None: it was
        not read, so it is moved as it is."""
        key = self._report.key
        log.warning("quarantined %s: %s", key, err)
        if isinstance(err, InvalidBatch):
            error = QuarantineError.of(key, err)
        else:
            error = QuarantineError(key, str(err), str(err), None, None, timestamp())
        quarantine(self._store, key, error, data=data)

    # -- the send loop ------------------------------------------------------------------

    def _send_all(self, sender: EmailSender, todo: list[int]) -> _Halt:
        """Keep up to ``concurrency`` sends in flight in the sender threads until none
        is left or a halt."""
        self._pending = list(reversed(self._plan.order(todo)))
        halt = _Halt.NONE
        while self._pending or self._retries or self._in_flight:
            if halt is _Halt.NONE:
                halt = self._halt_reason()
            if halt is _Halt.NONE:
                self._submit_ready(sender)
            elif not self._in_flight:
                break
            self._collect(halted=halt is not _Halt.NONE)
        return halt

    def _starts(self, in_flight: int) -> list[tuple[list[int], int]]:
        """What to start now, as (indices, attempt): a retry that is due, alone, else
        the next pending e-mail with those the transport takes with it (``delivery.bulk``),
        while fewer than ``concurrency`` sends (a group counts once) are in flight."""
        now = time.monotonic()
        starts: list[tuple[list[int], int]] = []
        while in_flight + len(starts) < self._room(in_flight):
            if self._retries and self._retries[0].due <= now:
                retry = heapq.heappop(self._retries)
                starts.append(([retry.index], retry.attempt))
            elif self._pending:
                starts.append((self._plan.take(self._pending), 1))
            else:
                break
        return starts

    def _room(self, in_flight: int) -> int:
        """How many sends may be in flight: the concurrency; while the transport is down
        (``outage``), one probe once the pause has run out, and none before."""
        gate = self._context.rules.gate
        if gate.pause is None:
            return self._options.concurrency
        return 1 if in_flight == 0 and gate.wait() == 0 else in_flight

    def _halt_reason(self) -> _Halt:
        if self._waits_past_deadline():
            reason = self._context.rules.gate.pause
            self._trouble = BatchStatus.PAUSED
            self._report.error = (
                f"the transport is down: {reason.reason}"
                if reason
                else "every e-mail left waits for its tenant's daily cap (MAILSPOOL_SES_TENANTS)"
            )
        if self._trouble is not None:
            return _Halt.TROUBLE
        if self._deadline_near():
            return _Halt.DEADLINE
        if self._context.rules.stopping.is_set():
            return _Halt.STOPPED
        return _Halt.NONE

    def _waits_past_deadline(self) -> bool:
        """With a deadline (Lambda), a pause that outlasts it, or e-mails that all wait
        past it (their tenant's window), leave the batch queued for a later invocation
        (the sweeper's), its e-mails pending, rather than spin."""
        if self._deadline is None:
            return False
        left = self._deadline() - self._options.deadline_margin
        wait = self._context.rules.gate.wait()
        waiting = self._retries and self._context.rules.tenants is not None
        if not wait and waiting and not self._pending and not self._in_flight:
            wait = self._retries[0].due - time.monotonic()
        return wait > 0 and wait >= left

    def _deadline_near(self) -> bool:
        return self._deadline is not None and self._deadline() < self._options.deadline_margin

    def _submit_ready(self, sender: EmailSender) -> None:
        for indices, attempt in self._starts(self._in_flight):
            self._submit(sender, indices, attempt)

    def _submit(self, sender: EmailSender, indices: list[int], attempt: int) -> None:
        if len(indices) == 1:
            self._submit_job(lambda: [sender.attempt(indices[0], attempt)])
        else:
            together = BulkSender(self._context.rules, sender)
            self._submit_job(lambda: together.attempt_many(indices))

    def _submit_job(self, job: Callable[[], list[Attempt]]) -> None:
        future = self._context.senders.submit(job)
        self._in_flight += 1
        future.add_done_callback(self._done.put)

    def _collect(self, *, halted: bool) -> None:
        try:
            future = self._done.get(timeout=self._wait_time(halted))
        except queue.Empty:
            self._renew_lease()
            return
        self._in_flight -= 1
        self._renew_lease()
        self._settle(future.result())  # a StoreError from the ledger propagates: stop here

    def _await_in_flight(self) -> None:
        # After a failure, the e-mails still in flight may have been sent: wait for their
        # outcomes so that the flush records them and a retry does not send them again.
        while self._in_flight:
            future = self._done.get()
            self._in_flight -= 1
            with contextlib.suppress(Exception):
                self._settle(future.result())

    def _settle(self, attempts: list[Attempt]) -> None:
        for attempt in attempts:
            self._settle_one(attempt)

    def _settle_one(self, attempt: Attempt) -> None:
        if attempt.entry is not None:
            self._recorded[attempt.index] = attempt.entry
        if attempt.outcome is SendOutcome.SENT:
            self._report.sent += 1
        elif attempt.outcome is SendOutcome.FAILED:
            self._report.failed += 1
        elif attempt.outcome is SendOutcome.RETRY:
            due = time.monotonic() + backoff(self._options, attempt.attempt)
            heapq.heappush(self._retries, _Retry(due, attempt.index, attempt.attempt + 1))
        elif attempt.outcome is SendOutcome.WAITING:  # no attempt spent: the same number
            due = time.monotonic() + max(self._context.rules.gate.wait(), attempt.wait)
            heapq.heappush(self._retries, _Retry(due, attempt.index, attempt.attempt))
        elif attempt.outcome is SendOutcome.PAUSED:
            self._trouble, self._report.error = BatchStatus.PAUSED, attempt.reason
        # STOPPED: not tried; the e-mail stays pending

    def _wait_time(self, halted: bool) -> float:
        now = time.monotonic()
        waits = [self._renew_at - now]
        if not halted:  # once halted, only wait for results
            start_in = self._next_start_in(now)
            if start_in is not None:
                waits.append(start_in)
            if self._deadline is not None:
                waits.append(max(self._deadline() - self._options.deadline_margin, 0.0))
        return max(min(min(waits), 1.0), 0.0)

    def _next_start_in(self, now: float) -> float | None:
        """Seconds until a send may start without a result coming first (None: only a
        result frees one, or nothing waits). A due retry waits for room: for a free
        sender, and while the transport is down for the gate's next probe, which goes
        alone; looking again before then would spin."""
        if self._pending:
            ready_in = 0.0
        elif self._retries:
            ready_in = self._retries[0].due - now
        else:
            return None
        gate = self._context.rules.gate
        if gate.pause is not None:
            return None if self._in_flight else max(gate.wait(), ready_in)
        return None if self._in_flight >= self._options.concurrency else ready_in

    def _renew_lease(self) -> None:
        if time.monotonic() < self._renew_at:
            return
        try:
            self._lease = self._store.renew(self._lease, self._options.lease_ttl)
        except LeaseLost:
            log.error("lost the claim on %s: another worker took it over", self._report.key)
            self._trouble = BatchStatus.LOST
        self._renew_at = time.monotonic() + self._options.lease_ttl / 3
