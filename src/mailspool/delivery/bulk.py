"""E-mails of a batch that share their content go to the transport together.

A post sent to 5000 followers is 5000 e-mails that differ only in their recipients
(and their per-recipient headers). A transport that can send many of those in one call
(``Transport.max_bulk`` > 1: SES ``SendBulkEmail``, 50 a call) gets them in groups:

- ``BulkPlan`` orders a batch's pending e-mails so that those whose stored content is
  the same (everything but ``to``) are next to each other, and hands the send loop up
  to ``max_bulk`` of them at a time; with a rate limit, fewer: the calls in flight (one
  per sender thread) never hold more e-mails than the rate lets go in the deadline
  margin, so that near a deadline they are all sent and recorded in time (at SES's
  14/s, a margin of 5 s and 32 threads: 2 a call; 1 thread: 50);
- ``BulkSender`` prepares each e-mail as a single send would (expiry, the guards, the
  allowed senders, suppression screening, List-Unsubscribe), groups the prepared ones
  by the transport's ``bulk_key`` and sends each group in one call, after taking every
  recipient of the group from the rate limit. Each e-mail's result is recorded as a
  single send's would be: sent, failed (with its failed record), or retried later
  alone (a transient answer: throttling, a temporary failure).

A transport that sends a call's e-mails one after another over one connection
(``Transport.bulk_sequential``: SMTP, each envelope pipelined behind the previous
content) takes any e-mails of the batch together, in their order, in calls of equal size
that give every sender thread the same number of them (``run_size``): 300 e-mails and a
concurrency of 32 go 5 to a call with SMTP's 8 at most, so that no connection idles while
e-mails wait.

An e-mail without a key (the transport cannot carry it in a bulk call), or alone with
its key, is sent alone. A call refused as a whole for good (its request is invalid)
says nothing about each e-mail: they are sent alone, and each gets its own answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mailspool.delivery.attempt import Attempt, EmailSender, Prepared, SendOutcome, SendRules
from mailspool.delivery.steps import Call
from mailspool.errors import PermanentError, TransientError
from mailspool.spool.batch import Batch
from mailspool.transports.base import BulkEntry, BulkResult

if TYPE_CHECKING:  # the batch run imports this module
    from mailspool.delivery.batch_run import DeliveryContext

__all__ = ["BulkPlan", "BulkSender", "call_size", "run_size"]


def call_size(max_bulk: int, rate: float | None, concurrency: int, horizon: float) -> int:
    """E-mails per bulk call: ``max_bulk``, or fewer so that ``concurrency`` calls wait at
    most ``horizon`` seconds for the rate limit (``rate`` e-mails a second)."""
    if rate is None or max_bulk <= 1:
        return max(max_bulk, 1)
    return max(1, min(max_bulk, int(rate * horizon / concurrency)))


def run_size(count: int, senders: int, max_bulk: int) -> int:
    """E-mails per call when a call sends them one after another: as few rounds of
    ``senders`` calls as ``max_bulk`` allows, the calls of equal size, so that no sender
    is left with a round more than the others (300 e-mails, 32 senders, 8 at most: two
    rounds of 5, not a round of 8 and a few calls of 8 after it)."""
    senders = max(senders, 1)
    rounds = max(-(-count // (senders * max(max_bulk, 1))), 1)
    return -(-count // (senders * rounds))


def content_key(email: Mapping[str, Any]) -> str:
    """The digest of a stored e-mail without its ``to``: equal for e-mails of one batch
    that share subject, bodies and attachments (the rest is the batch's meta)."""
    shared = {name: value for name, value in email.items() if name != "to"}
    encoded = json.dumps(shared, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


class BulkPlan:
    """Which pending e-mails of a batch the send loop hands over together."""

    def __init__(self, size: int, keys: Mapping[int, str]) -> None:
        self.size = size
        self._keys = keys

    @classmethod
    def of(cls, context: DeliveryContext, batch: Batch, todo: Sequence[int]) -> BulkPlan:
        """The plan for ``todo``: one e-mail at a time unless the transport takes more."""
        rules, options = context.rules, context.options
        size = call_size(
            rules.transport.max_bulk,
            rules.limiter.rate,
            options.concurrency,
            options.deadline_margin,
        )
        if rules.transport.bulk_sequential:  # any e-mails, in even rounds of the senders
            size = run_size(len(todo), options.concurrency, size)
            return cls(size, dict.fromkeys(todo, "")) if size > 1 else cls(1, {})
        if size <= 1:
            return cls(1, {})
        return cls(size, {i: content_key(batch.raw_email(i)) for i in todo})

    def order(self, todo: Sequence[int]) -> list[int]:
        """``todo`` with e-mails of equal content next to each other, each group where
        its first e-mail was."""
        groups: dict[Hashable, list[int]] = {}
        for index in todo:
            groups.setdefault(self._keys.get(index, index), []).append(index)
        return [index for group in groups.values() for index in group]

    def take(self, pending: list[int]) -> list[int]:
        """Pop the next e-mails to send from the end of ``pending`` (which holds the
        order reversed): the last one, and those of equal content after it."""
        taken = [pending.pop()]
        key = self._keys.get(taken[0])
        while (
            key is not None
            and pending
            and len(taken) < self.size
            and self._keys.get(pending[-1]) == key
        ):
            taken.append(pending.pop())
        return taken


class BulkSender:
    """Sends e-mails of one batch together through ``Transport.send_bulk``."""

    def __init__(self, rules: SendRules, sender: EmailSender) -> None:
        self._rules = rules
        self._sender = sender

    def attempt_many(self, indices: Sequence[int]) -> list[Attempt]:
        """First attempts at these e-mails; each sent or failed one is in the ledger."""
        rules = self._rules
        footprint = sum(self._sender.footprint(i) for i in indices)
        reserved = (
            None if rules.stopping.is_set() else rules.in_flight.acquire(footprint, rules.stopping)
        )
        if reserved is None:
            return [Attempt(i, 1, SendOutcome.STOPPED) for i in indices]
        try:
            return self._send(indices)
        finally:
            rules.in_flight.release(reserved)

    def _send(self, indices: Sequence[int]) -> list[Attempt]:
        attempts: list[Attempt] = []
        groups: dict[Hashable, list[Prepared]] = {}
        for index in indices:
            prepared = self._sender.prepare(index, 1)
            if isinstance(prepared, Attempt):
                attempts.append(prepared)
                continue
            key = self._rules.transport.bulk_key(prepared.message)
            groups.setdefault(index if key is None else (key,), []).append(prepared)
        for group in groups.values():
            if len(group) == 1:
                attempts.append(self._sender.send_prepared(group[0], 1))
            else:
                attempts.extend(self._send_together(group))
        return attempts

    def _send_together(self, group: list[Prepared]) -> list[Attempt]:
        rules = self._rules
        units, tenant = sum(p.message.recipient_count for p in group), group[0].message.tenant
        if not rules.gate.admits():  # the transport is down: the group waits (``outage``)
            return [Attempt(p.index, 1, SendOutcome.WAITING) for p in group]
        wait = rules.within_quota(units, tenant)  # a quota is used up: the group waits
        if wait is not None:
            return [Attempt(p.index, 1, SendOutcome.WAITING, wait=wait) for p in group]
        if not rules.spend(units, tenant):
            return [Attempt(p.index, 1, SendOutcome.STOPPED) for p in group]
        entries = [BulkEntry(p.message, p.message_id) for p in group]
        if rules.transport.bulk_sequential:
            return self._send_in_a_row(group, entries)
        started = time.perf_counter()
        try:
            results = rules.transport.send_bulk(entries)
        except PermanentError as err:  # the call as a whole: alone, each gets its answer
            rules.steps.answered(Call(time.perf_counter() - started, [err] * len(group)))
            rules.gate.answered()
            return [self._sender.send_prepared(p, 1) for p in group]
        except TransientError as err:  # nothing sent (throttled, paused): the same for all
            rules.steps.answered(Call(time.perf_counter() - started, [err] * len(group)))
            return [self._sender.conclude(p, 1, err) for p in group]
        rules.steps.answered(Call(time.perf_counter() - started, results))
        return [self._sender.conclude(p, 1, r) for p, r in zip(group, results, strict=True)]

    def _send_in_a_row(self, group: list[Prepared], entries: list[BulkEntry]) -> list[Attempt]:
        """One e-mail after another (SMTP, over one connection): each outcome recorded
        as its answer comes, before the next e-mail's content leaves, as a single
        send's is; so the e-mails in flight stay one per sender thread."""
        attempts: list[Attempt] = []
        last = time.perf_counter()

        def answered(position: int, result: BulkResult) -> None:
            nonlocal last
            now = time.perf_counter()
            self._rules.steps.answered(Call(now - last, (result,)))
            last = now
            attempts.append(self._sender.conclude(group[position], 1, result))

        self._rules.transport.send_each(entries, answered)
        return attempts
