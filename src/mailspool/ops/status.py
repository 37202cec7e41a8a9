"""Every e-mail's fate, counted from the store itself: what is pending, sent or failed.

``pending + sent + failed + quarantined + scheduled + cancelled`` (+ the priority
e-mails sent at once) adds up to every e-mail accepted into the
store and still on record (``gc`` and lifecycle rules forget finished batches):

- ``pending``: e-mails of batches in ``queue/`` with no outcome in their ledger;
- ``sent``: ``sent`` entries in the ledgers of queued and finished batches;
- ``priority_sent`` and ``priority_failed``: priority e-mails sent at once (or refused
  for good) by ``send_mail``, which never were in a batch (``spool.tally``); in ``total``
  and in ``status --json`` once there is one;
- ``failed``: records in ``failed/`` (an e-mail re-queued by ``failed retry`` leaves
  ``failed/`` and counts as pending again); an e-mail that reached some recipients
  counts as sent, and its refused recipients as ``refused_recipients`` (re-queuing them
  makes a new e-mail);
- ``quarantined``: e-mails in quarantined files (a file that is not even JSON counts 1);
- ``scheduled``: e-mails in ``scheduled/``, not yet due (one per file);
- ``cancelled``: e-mails in ``cancelled/`` (one per file).

E-mails handed to a continuation batch are counted there, not in their first batch.

Finished batches are not read again: their counts come from ``mailspool.spool.tally``,
which the worker keeps as batches finish and ``gc`` as it forgets them; only the queue,
``failed/`` and ``quarantine/`` are looked at, so the cost follows the work in hand,
not the store's history.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from mailspool.policy.limits import Limits
from mailspool.spool import layout, tally
from mailspool.spool.ledger import ledger_entries
from mailspool.spool.quarantine import quarantined_files
from mailspool.spool.queue_scan import queued_batches
from mailspool.spool.records import BatchOutline, LedgerEntry, LedgerState
from mailspool.spool.schedule import CANCELLED, SCHEDULED
from mailspool.spool.tally import LedgerCounts
from mailspool.stores.base import Store

__all__ = [
    "QueuedBatch",
    "Status",
    "collect_status",
    "email_count",
    "queued_progress",
]


@dataclass(frozen=True, slots=True)
class Status:
    pending: int
    sent: int
    failed: int
    quarantined: int
    batches_pending: int
    batches_done: int
    oldest_pending_age: float | None
    refused_recipients: int
    scheduled: int = 0
    cancelled: int = 0
    #: priority e-mails sent at once, or refused for good (no batch: beside ``sent``
    #: and ``failed``, which count queued e-mails)
    priority_sent: int = 0
    priority_failed: int = 0

    @property
    def total(self) -> int:
        return (
            self.pending
            + self.sent
            + self.failed
            + self.quarantined
            + self.scheduled
            + self.cancelled
            + self.priority_sent
            + self.priority_failed
        )

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["total"] = self.total
        if not (self.priority_sent or self.priority_failed):  # the shape older readers know
            del result["priority_sent"], result["priority_failed"]
        return result


@dataclass(frozen=True, slots=True)
class QueuedBatch:
    """A batch in ``queue/`` and how far it has come: its e-mails, how many of them its
    ledger records (``counts``: sent, failed, refused recipients), and when it was
    created (its id's time, else the file's)."""

    batch_id: str
    emails: int
    recorded: int
    counts: LedgerCounts
    created: float
    #: e-mails handed to continuation batches, by continuation id
    carried: tuple[tuple[str, int], ...] = ()
    #: the indices its ledger records
    indices: frozenset[int] = frozenset()

    @property
    def waiting(self) -> int:
        return max(self.emails - self.recorded, 0)

    @property
    def percent(self) -> int:
        done = self.counts.sent + self.counts.failed
        return 100 * done // self.emails if self.emails else 100

    def age(self, now: float) -> float:
        return max(now - self.created, 0.0)


def queued_progress(store: Store) -> Iterator[QueuedBatch]:
    """The batches in ``queue/``, oldest first, each with its progress from its ledger.
    A ledger that cannot be read (a link, a special file) counts as empty, its reason
    logged: the batch's e-mails show as pending, and the listing goes on."""
    for info in queued_batches(store, set_aside=False):
        batch_id = layout.batch_id_from_key(info.key)
        entries = ledger_entries(store, batch_id)
        yield QueuedBatch(
            batch_id=batch_id,
            emails=email_count(store, info.key),
            recorded=len(entries),
            counts=tally.ledger_counts(entries.values()),
            created=layout.id_time(batch_id) or info.modified,
            carried=_carried(entries),
            indices=frozenset(entries),
        )


def _carried(entries: dict[int, LedgerEntry]) -> tuple[tuple[str, int], ...]:
    carried: dict[str, int] = {}
    for entry in entries.values():
        if entry.state is LedgerState.CONTINUED and entry.batch:
            carried[entry.batch] = carried.get(entry.batch, 0) + 1
    return tuple(sorted(carried.items()))


def collect_status(store: Store, *, now: float | None = None) -> Status:
    """One consistent count: the queue is read first, then the tally; a batch the tally
    counts (recorded as finished meanwhile, or before a crash kept it in ``queue/``)
    is left out of the queue's part, so each batch is counted in exactly one place
    however the worker moves it during the count (``spool.tally``)."""
    now = time.time() if now is None else now
    queued = list(queued_progress(store))
    counted = tally.read_tally(store, now=now)
    pending = sent = refused = batches_pending = 0
    oldest: float | None = None
    listed = {batch.batch_id for batch in queued}
    # failed/ after the queue: an e-mail's failed record is written just before its
    # ledger entry, so one with a record and no entry yet is failed, not pending
    failed_keys = [k for k in store.keys(layout.FAILED) if not layout.is_partial_failure(k)]
    failing: dict[str, set[int]] = {}
    for key in failed_keys:
        batch_id, _, index = layout.batch_id_from_key(key).rpartition(".")
        if index.isdigit():
            failing.setdefault(batch_id, set()).add(int(index))
    for batch in queued:
        if counted.counts_batch(batch.batch_id):
            continue
        sent += batch.counts.sent
        refused += batch.counts.refused
        # a continuation written after the listing is in neither part: its e-mails wait
        waiting = batch.waiting + sum(
            n for c, n in batch.carried if c not in listed and not counted.counts_batch(c)
        )
        waiting = max(waiting - len(failing.get(batch.batch_id, set()) - batch.indices), 0)
        if waiting:
            pending += waiting
            batches_pending += 1
            oldest = batch.created if oldest is None else min(oldest, batch.created)
    sent += counted.sent
    refused += counted.refused
    failed = len(failed_keys)
    quarantined = sum(email_count(store, info.key, default=1) for info in quarantined_files(store))
    return Status(
        pending=pending,
        sent=sent,
        failed=failed,
        quarantined=quarantined,
        batches_pending=batches_pending,
        batches_done=counted.done,
        oldest_pending_age=None if oldest is None else max(now - oldest, 0.0),
        refused_recipients=refused,
        scheduled=_files(store, SCHEDULED),
        cancelled=_files(store, CANCELLED),
        priority_sent=counted.priority_sent,
        priority_failed=counted.priority_failed,
    )


def _files(store: Store, prefix: str) -> int:
    return sum(1 for key in store.keys(prefix) if key.endswith(".json"))


def email_count(store: Store, key: str, default: int = 0) -> int:
    """How many e-mails the batch file at ``key`` holds; ``default`` if it cannot be read,
    or is larger than a batch may be (a file quarantined as too large is not read)."""
    try:
        outline = BatchOutline.read(store.get_at_most(key, Limits().batch_bytes))
    except Exception:  # unreadable: it still held something
        return default
    return outline.emails if outline is not None and outline.emails else default
