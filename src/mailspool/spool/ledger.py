"""A batch's ledger: which of its e-mails are sent or failed, durable before going on.

Each sender thread records an e-mail's outcome and waits until it is durable before
taking the next e-mail, so after a crash at most one e-mail per sender thread can have
been sent without being recorded: that is the duplicate window, the send concurrency.
Records are group-committed: threads that finish while a write is under way are written
together by the next one (one ``append`` per group, which on S3 is one PUT).

On disk a record is one JSON array of entries (``records.LedgerEntry``), each
``{"i": index, "s": state, ...}`` with state ``sent`` (``id``: the provider's message
id, ``a``: attempts, ``refused``: recipients refused while the others got it),
``failed`` (``reason``, ``a``) or ``continued`` (``batch``: the batch that carries the
e-mail on).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from mailspool.spool import layout
from mailspool.spool.records import LedgerEntry, decode_entries, encode_entries
from mailspool.stores.base import Store

__all__ = ["Ledger", "LedgerEntry", "read_entries"]


def read_entries(store: Store, batch_id: str) -> dict[int, LedgerEntry]:
    """The last entry recorded for each e-mail index of a batch. A torn write from a
    crash holds no entry: its e-mails count as not recorded."""
    return {
        entry.index: entry
        for record in store.read_log(layout.ledger_key(batch_id))
        for entry in decode_entries(record)
    }


class Ledger:
    """Durable outcomes for one batch, written with group commit (see module doc)."""

    def __init__(self, store: Store, batch_id: str) -> None:
        self._store = store
        self._key = layout.ledger_key(batch_id)
        self._cond = threading.Condition()
        self._pending: list[LedgerEntry] = []
        self._queued = 0  # entries handed to record()
        self._durable = 0  # entries known written
        self._writing = False
        self._error: BaseException | None = None

    def record(self, entry: LedgerEntry) -> None:
        """Add one entry and return once it is durable (raises if the write failed)."""
        self.record_many((entry,))

    def record_many(self, entries: Iterable[LedgerEntry]) -> None:
        """Add entries and return once all are durable (entries are written in order)."""
        added = list(entries)
        with self._cond:
            self._pending.extend(added)
            self._queued += len(added)
            mine = self._queued
            while self._durable < mine:
                if self._error is not None:
                    raise self._error
                if self._writing:
                    self._cond.wait()
                    continue
                self._write_pending()

    def _write_pending(self) -> None:
        # Called with the condition held; releases it for the write itself.
        batch, self._pending = self._pending, []
        self._writing = True
        self._cond.release()
        try:
            self._store.append(self._key, encode_entries(batch))
        except BaseException as err:
            self._cond.acquire()
            self._error = err
            self._writing = False
            self._cond.notify_all()
            raise
        self._cond.acquire()
        self._durable += len(batch)
        self._writing = False
        self._cond.notify_all()
