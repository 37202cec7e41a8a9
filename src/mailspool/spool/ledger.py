"""A batch's ledger: which of its e-mails are sent or failed, durable before going on.

Each sender thread records an e-mail's outcome before taking the next e-mail. Records
are group-committed: entries recorded while a write is under way are written together
by the next one (one ``append`` per group, which on S3 is one PUT). With ``window=0`` a
thread waits until its entry is durable, so after a crash at most one e-mail per sender
thread can have been sent without being recorded. With a window of W entries, a thread
goes on while at most W entries wait for their write (the fsync, the PUT is then off
the senders' path), and the duplicate window after a crash grows to the send
concurrency plus W.

With an ``interval`` of T seconds (stores where a write costs money: one S3 PUT per
commit), a thread never waits for the write: outcomes are committed together at most
every T seconds, by the thread that records once T has passed, or by the ledger's
committer thread when no more come. The duplicate window after a crash is then the
e-mails in flight plus those recorded in the last T seconds (and during the one write
under way). ``flush`` writes at once.

On disk a record is one JSON array of entries (``records.LedgerEntry``), each
``{"i": index, "s": state, ...}`` with state ``sent`` (``id``: the provider's message
id, ``a``: attempts, ``refused``: recipients refused while the others got it, ``via``:
the failover member that accepted it, ``unanswered``: the members that took it earlier
without answering),
``failed`` (``reason``, ``a``) or ``continued`` (``batch``: the batch that carries the
e-mail on).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from mailspool.errors import MailspoolError
from mailspool.spool import layout
from mailspool.spool.records import LedgerEntry, decode_entries, encode_entries
from mailspool.stores.base import Store
from mailspool.stores.retry import retry_write

__all__ = ["Ledger", "LedgerEntry", "ledger_entries", "read_entries"]

log = logging.getLogger("mailspool.status")


def read_entries(store: Store, batch_id: str) -> dict[int, LedgerEntry]:
    """The last entry recorded for each e-mail index of a batch. A torn write from a
    crash holds no entry: its e-mails count as not recorded."""
    return {
        entry.index: entry
        for record in store.read_log(layout.ledger_key(batch_id))
        for entry in decode_entries(record)
    }


class Ledger:
    """Durable outcomes for one batch, written with group commit (see module doc).

    ``window``: how many recorded entries may wait for their write while the thread
    that recorded them goes on (0: each waits until its own entry is durable). A thread
    that finds no write under way writes what is pending, until nothing is: when every
    thread that recorded has returned, every entry is durable.

    ``interval``: seconds between commits (0: none; then ``window`` applies). ``clock``
    tells the time the interval is measured in.
    """

    def __init__(
        self,
        store: Store,
        batch_id: str,
        *,
        window: int = 0,
        interval: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._key = layout.ledger_key(batch_id)
        self._window = max(window, 0)
        self._cond = threading.Condition()
        self._pending: list[LedgerEntry] = []
        self._queued = 0  # entries handed to record()
        self._durable = 0  # entries known written
        self._writing = False
        self._error: BaseException | None = None
        self._interval = max(interval, 0.0)
        self._clock = clock
        self._last_commit = clock()
        self._committer: threading.Thread | None = None
        self._lost: list[LedgerEntry] = []  # entries of a write that failed

    def unwritten(self) -> list[LedgerEntry]:
        """Entries recorded but never written (a write failed: a full disk, a store
        down): their e-mails went out, and a later run must not send them again."""
        with self._cond:
            return [*self._lost, *self._pending]

    def record(self, entry: LedgerEntry) -> None:
        """Add one entry; return once at most ``window`` entries are not yet durable
        (raises if a write failed)."""
        self.record_many((entry,))

    def record_many(self, entries: Iterable[LedgerEntry]) -> None:
        """Add entries (written in order); return as ``record`` does."""
        added = list(entries)
        with self._cond:
            self._pending.extend(added)
            self._queued += len(added)
            if self._interval:
                self._commit_when_due()
            else:
                self._settle(self._queued - self._window)

    def flush(self) -> None:
        """Return once every entry recorded so far is durable."""
        with self._cond:
            self._settle(self._queued)

    def _settle(self, target: int) -> None:
        # Called with the condition held. A thread that finds no write under way writes
        # until nothing is pending (so every entry recorded is written while its thread
        # lives on); the others wait only while more than ``window`` are not durable.
        while True:
            if self._error is not None:
                raise self._error
            if not self._writing and self._pending:
                self._write_pending()
            elif self._durable >= target:
                return
            else:
                self._cond.wait()

    def _due_in(self) -> float:
        return self._last_commit + self._interval - self._clock()

    def _commit_when_due(self) -> None:
        # Called with the condition held: write now if the interval has passed, else
        # leave the entries to the committer thread (started when none runs).
        if self._error is not None:
            raise self._error
        if not self._writing and self._due_in() <= 0:
            self._write_pending()
        elif self._committer is None:
            self._start_committer()

    def _start_committer(self) -> None:
        self._committer = threading.Thread(
            target=self._commit_in_time, name="mailspool-ledger", daemon=True
        )
        self._committer.start()

    def _commit_in_time(self) -> None:
        # The committer: writes what waits once the interval has passed; ends when
        # nothing waits (a failed write is raised by the next record or flush).
        with self._cond:
            while self._pending and self._error is None:
                due_in = self._due_in()
                if self._writing or due_in > 0:
                    self._cond.wait(None if self._writing else due_in)
                    continue
                try:
                    self._write_pending()
                except Exception:  # kept in _error: the next record or flush raises it
                    break
            self._committer = None

    def _write_pending(self) -> None:
        # Called with the condition held; releases it for the write itself.
        batch, self._pending = self._pending, []
        self._writing = True
        self._last_commit = self._clock()
        self._cond.release()
        try:
            data = encode_entries(batch)
            retry_write(lambda: self._store.append(self._key, data), self._key)
        except BaseException as err:
            self._cond.acquire()
            self._error = err
            self._lost.extend(batch)
            self._writing = False
            self._cond.notify_all()
            raise
        self._cond.acquire()
        self._durable += len(batch)
        self._writing = False
        self._cond.notify_all()


def ledger_entries(store: Store, batch_id: str) -> dict[int, LedgerEntry]:
    """``read_entries`` for a reader that must go on (status, the dashboard, rates): a
    ledger that cannot be read counts as empty, its reason logged once."""
    try:
        return read_entries(store, batch_id)
    except MailspoolError as err:
        key = layout.ledger_key(batch_id)
        if (store.url, key) not in _unread_ledgers:
            _unread_ledgers.add((store.url, key))
            log.warning("skipped the ledger %s in %s: %s", key, store.url, err)
        return {}


_unread_ledgers: set[tuple[str, str]] = set()
