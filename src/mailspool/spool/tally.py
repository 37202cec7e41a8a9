"""Counts of finished batches, kept as batches finish, so that ``status`` and the
dashboard never re-read every ledger of ``done/``.

```
tally/log/<segment>   one record per batch that finished (+) or was forgotten by gc (-)
tally/total.json      the sum of every segment up to and including ``through``
```

A segment is a ten-minute window of UTC time (``20261129T0640``); the worker appends to
the segment of the moment a batch moved to ``done/``. Reading the counts is the total
plus the records of the segments after ``through``: at most the last half hour of
finished batches. A reader folds closed segments (ended more than five minutes ago)
into the total under a claim, so the total is written by one reader at a time, and a
segment is deleted only once a total that includes it is written.

A store that has no total yet (a new one, or one kept by a version without counts) is
counted once in full from its ledgers (a ``gc`` running at that moment may be counted
wrong by the batches it removes).

Exactly once. A batch is counted in one place at any instant: by the tally once its
record exists, by ``queue/`` (its ledger) until then, whatever folder its file is in.
The worker appends the record *before* it moves the batch to ``done/`` (the move comes
after, under the same claim), so a batch in ``done/`` always has its record; a crash
between the two leaves the batch in ``queue/`` (or in both folders) with its record,
counted by the tally only (``Tally.counts_batch``; ``status`` skips such a batch in the
queue). The worker that takes the batch again finds its ledger complete, finds the
record (``is_recorded``) and only moves it: no second record. A record written twice
anyway (a write retried after a lost answer) counts once: records are told apart by
batch id across every segment still unfolded, and a fold keeps, in ``total.json``, the
ids of the batches it folded that were still in ``queue/`` (``kept``) until they leave.

Priority e-mails sent at once (``record_priority``) are counted here too, one record
each (``k: "priority"``), with what ``trace`` needs to find them (the recipients, the
Message-ID); a fold copies them into ``tally/priority/<day>`` for ``trace``.

A record that is not one (not JSON, not an object, a field of the wrong type) is
skipped with a logged reason: one odd writer never makes ``status`` fail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from mailspool.errors import MailspoolError
from mailspool.spool import layout
from mailspool.spool.ledger import read_entries
from mailspool.spool.records import LedgerEntry, LedgerState
from mailspool.spool.tally_records import segment_records
from mailspool.stores.base import Store, default_owner
from mailspool.stores.retry import retry_write

__all__ = [
    "LedgerCounts",
    "Tally",
    "is_recorded",
    "ledger_counts",
    "priority_records",
    "read_tally",
    "record_finished",
    "record_forgotten",
    "record_priority",
    "segment",
]

log = logging.getLogger("mailspool.tally")

LOG = "tally/log/"
TOTAL = "tally/total.json"
_SEGMENT_SECONDS = 600
_GRACE_SECONDS = 300
_MINUTES_KEPT = 24 * 60  # the per-minute series covers the last day
_CLAIM = "tally-fold"
PRIORITY = "tally/priority/"
_PRIORITY_KIND = "priority"
_MAX_VIA = 200  # a failover member's label, as the ledger keeps it


@dataclass(slots=True)
class Tally:
    """E-mails of finished batches: ``sent`` and ``refused`` recipients as their
    ledgers say, ``done`` batches, and per minute (epoch minute) e-mails sent and
    failed, as of each batch's finish."""

    sent: int = 0
    failed: int = 0
    refused: int = 0
    done: int = 0
    through: str = ""
    minutes: dict[int, list[int]] = field(default_factory=dict)
    #: priority e-mails sent at once (and refused for good) as they were sent
    priority_sent: int = 0
    priority_failed: int = 0
    #: finished batches folded while still in ``queue/`` (a crash before their move)
    kept: set[str] = field(default_factory=set)
    #: batches whose finish is recorded in a segment not folded yet (not written)
    ids: set[str] = field(default_factory=set)

    def counts_batch(self, batch_id: str) -> bool:
        """True when this tally counts the batch as finished (whatever folder it is in)."""
        return batch_id in self.ids or batch_id in self.kept

    def add(self, record: dict[str, object]) -> None:
        sent, failed = _int(record.get("sent")), _int(record.get("failed"))
        if record.get("k") == _PRIORITY_KIND:
            self.priority_sent += sent
            self.priority_failed += failed
        else:
            self.sent += sent
            self.failed += failed
        self.refused += _int(record.get("refused"))
        self.done += _int(record.get("done"))
        minute = _int(record.get("t")) // 60
        if minute and (sent > 0 or failed > 0):
            slot = self.minutes.setdefault(minute, [0, 0])
            slot[0] += max(sent, 0)
            slot[1] += max(failed, 0)

    def prune(self, now: float) -> None:
        oldest = int(now) // 60 - _MINUTES_KEPT
        self.minutes = {m: v for m, v in self.minutes.items() if m >= oldest}

    def encode(self) -> bytes:
        document = {
            "version": 1,
            "through": self.through,
            "sent": self.sent,
            "failed": self.failed,
            "refused": self.refused,
            "done": self.done,
            "priority_sent": self.priority_sent,
            "priority_failed": self.priority_failed,
            "kept": sorted(self.kept),
            "minutes": {str(m): v for m, v in sorted(self.minutes.items())},
        }
        return orjson.dumps(document)

    @classmethod
    def decode(cls, data: bytes) -> Tally:
        """The total as written by ``encode``; ValueError if it is not one."""
        document = orjson.loads(data)
        if not isinstance(document, dict) or document.get("version") != 1:
            raise ValueError(f"{TOTAL}: not a version 1 tally")
        minutes = document.get("minutes")
        kept = document.get("kept")
        return cls(
            priority_sent=_int(document.get("priority_sent")),
            priority_failed=_int(document.get("priority_failed")),
            kept={k for k in (kept if isinstance(kept, list) else ()) if isinstance(k, str)},
            sent=_int(document.get("sent")),
            failed=_int(document.get("failed")),
            refused=_int(document.get("refused")),
            done=_int(document.get("done")),
            through=str(document.get("through") or ""),
            minutes={
                int(m): [_int(v[0]), _int(v[1])]
                for m, v in (minutes.items() if isinstance(minutes, dict) else ())
                if m.isdigit() and isinstance(v, list) and len(v) == 2
            },
        )


@dataclass(frozen=True, slots=True)
class LedgerCounts:
    """Sent and failed e-mails and refused recipients in a batch's ledger entries."""

    sent: int = 0
    failed: int = 0
    refused: int = 0

    def record(self, sign: int = 1) -> dict[str, int]:
        return {
            "sent": sign * self.sent,
            "failed": sign * self.failed,
            "refused": sign * self.refused,
        }


def ledger_counts(entries: Iterable[LedgerEntry]) -> LedgerCounts:
    sent = failed = refused = 0
    for entry in entries:
        sent += entry.state is LedgerState.SENT
        failed += entry.state is LedgerState.FAILED
        refused += len(entry.refused or ())
    return LedgerCounts(sent, failed, refused)


def record_finished(
    store: Store, batch_id: str, entries: Iterable[LedgerEntry], *, now: float | None = None
) -> bool:
    """Count a batch that is about to move to ``done/`` (the record comes first: see the
    module doc), from the ledger entries its worker holds (no second read of the
    ledger). False (logged) if it cannot: the batch must then stay in ``queue/``, where
    it is counted, until a later run records it."""
    return _append(store, {"b": batch_id, "done": 1, **ledger_counts(entries).record()}, now)


def record_forgotten(store: Store, batch_id: str, *, now: float | None = None) -> None:
    """Take out of the counts a finished batch that ``gc`` is about to remove."""
    counts = ledger_counts(read_entries(store, batch_id).values())
    _append(store, {"b": batch_id, "done": -1, **counts.record(-1)}, now)


def is_recorded(store: Store, batch_id: str, *, now: float | None = None) -> bool:
    """True when the finish of ``batch_id`` is already counted (a worker that takes
    again a batch whose ledger is complete: a crash came between record and move)."""
    return read_tally(store, now=now, fold=False).counts_batch(batch_id)


def record_priority(
    store: Store,
    message_id: str,
    recipients: Iterable[str],
    *,
    sent: bool,
    reason: str = "",
    now: float | None = None,
    via: str | None = None,
    tenant: str | None = None,
) -> None:
    """Count a priority e-mail sent at once (or refused for good): one append after
    the send, logged and never raised if it fails (the e-mail is gone either way).
    ``via``: the failover member that accepted it; ``tenant``: its SES tenant."""
    record: dict[str, object] = {
        "k": _PRIORITY_KIND,
        "b": f"priority:{message_id}",
        "done": 0,
        "sent": int(sent),
        "failed": int(not sent),
        "to": list(recipients),
        "id": message_id,
    }
    if reason:
        record["reason"] = reason[:500]
    if via:
        record["via"] = via[:_MAX_VIA]
    if tenant is not None:
        record["tenant"] = tenant
    _append(store, record, now)


def priority_records(store: Store) -> list[dict[str, object]]:
    """Every priority e-mail still on record (for ``trace``): the folded days
    (``tally/priority/<day>``), then the segments not folded yet."""
    found = []
    for key in sorted(store.keys(PRIORITY)):
        found.extend(segment_records(store, key))
    for key in _segment_keys(store):
        found.extend(r for r in segment_records(store, key) if r.get("k") == _PRIORITY_KIND)
    return found


def _append(store: Store, record: dict[str, object], now: float | None) -> bool:
    moment = time.time() if now is None else now
    try:
        key, data = f"{LOG}{segment(moment)}", orjson.dumps({**record, "t": int(moment)})
        retry_write(lambda: store.append(key, data), key)
    except MailspoolError as err:  # the batch itself is safe; only the counts lag
        log.error("cannot count batch %s in %s: %s", record.get("b"), store.url, err)
        return False
    return True


def read_tally(store: Store, *, now: float | None = None, fold: bool = True) -> Tally:
    """The counts of every finished batch, folding closed segments when it can (and
    ``fold``). ``ids`` holds the batches recorded in the segments not folded yet."""
    moment = time.time() if now is None else now
    total = _load_total(store)
    if total is None:
        total = _count_in_full(store, moment)
        if fold:
            _save(store, total)
    segments = [key for key in _segment_keys(store) if key[len(LOG) :] > total.through]
    closed = [key for key in segments if _is_closed(key[len(LOG) :], moment)]
    if closed and fold:
        total = _fold(store, total, closed, moment)
    seen: set[tuple[str, int]] = set()
    for key in segments:
        if key[len(LOG) :] > total.through:
            for record in segment_records(store, key):
                if _take(total, record, seen):
                    total.add(record)
                    if record.get("done") == 1:
                        total.ids.add(str(record["b"]))
    return total


def _take(total: Tally, record: dict[str, object], seen: set[tuple[str, int]]) -> bool:
    """True the first time a batch's finish (or forgetting) is seen: not in ``seen``
    (updated), nor a finish already folded while its batch was still queued."""
    mark = (str(record["b"]), _int(record.get("done")))
    if mark in seen or (mark[1] == 1 and mark[0] in total.kept):
        return False
    seen.add(mark)
    return True


def _segment_keys(store: Store) -> list[str]:
    """The segment logs, oldest first. On S3 a log is a folder of parts
    (``tally/log/<segment>/<part>``): each segment is named once, by its log key."""
    return sorted({LOG + key[len(LOG) :].partition("/")[0] for key in store.keys(LOG)})


def _fold(store: Store, total: Tally, closed: list[str], now: float) -> Tally:
    lease = store.claim(_CLAIM, default_owner(), 60.0)
    if lease is None:
        return total  # another reader folds them; this one reads them as they are
    try:
        current = _load_total(store) or total
        queued = {layout.batch_id_from_key(key) for key in store.keys(layout.QUEUE)}
        seen: set[tuple[str, int]] = set()
        finished: set[str] = set()
        priority: dict[str, list[bytes]] = {}
        for key in closed:
            if key[len(LOG) :] > current.through:
                for record in segment_records(store, key):
                    if not _take(current, record, seen):
                        continue
                    current.add(record)
                    if record.get("done") == 1:
                        finished.add(str(record["b"]))
                    if record.get("k") == _PRIORITY_KIND:
                        day = f"{PRIORITY}{key[len(LOG) :][:8]}"
                        priority.setdefault(day, []).append(orjson.dumps(record))
                current.through = key[len(LOG) :]
        # a finished batch still queued (a crash before its move) stays known by id
        current.kept = {b for b in current.kept | finished if b in queued}
        current.prune(now)
        if _keep_priority(store, priority) and _save(store, current):
            for key in closed:
                store.delete_log(key)
        return current
    finally:
        store.release(lease)


def _keep_priority(store: Store, days: dict[str, list[bytes]]) -> bool:
    """Copy folded priority records to their day's log (for ``trace``). A fold that
    stops after this and before deleting its segments copies them again: ``trace``
    shows such an e-mail once (by Message-ID)."""
    try:
        for key, records in days.items():
            for record in records:
                retry_write(lambda: store.append(key, record), key)  # noqa: B023 - called at once
    except MailspoolError as err:
        log.warning("cannot keep priority records in %s: %s", store.url, err)
        return False
    return True


def _count_in_full(store: Store, now: float) -> Tally:
    """A store without a total: its ledgers, read once. Closed segments are covered by
    this count; a batch with a record in an open segment is left to that record."""
    segments = [key[len(LOG) :] for key in _segment_keys(store)]
    total = Tally(through=max((s for s in segments if _is_closed(s, now)), default=""))
    recorded = {
        str(record.get("b"))
        for name in segments
        if name > total.through
        for record in segment_records(store, f"{LOG}{name}")
    }
    # A batch in queue/ as well (a crash interrupted its move) is not finished yet: the
    # queue counts it, and its worker records it once the move is done.
    queued = {layout.batch_id_from_key(key) for key in store.keys(layout.QUEUE)}
    for info in store.list(layout.DONE):
        batch_id = layout.batch_id_from_key(info.key)
        if batch_id not in recorded and batch_id not in queued:
            entries = read_entries(store, batch_id)
            total.add({"done": 1, **ledger_counts(entries.values()).record()})
    return total


def _load_total(store: Store) -> Tally | None:
    try:
        return Tally.decode(store.get(TOTAL))
    except MailspoolError:
        return None
    except ValueError as err:  # damaged: count again from the ledgers
        log.error("%s in %s: %s; counting again", TOTAL, store.url, err)
        return None


def _save(store: Store, total: Tally) -> bool:
    try:
        store.put(TOTAL, total.encode())
    except MailspoolError as err:  # read-only access: the counts are still right
        log.warning("cannot write %s in %s: %s", TOTAL, store.url, err)
        return False
    return True


def segment(moment: float) -> str:
    """The name of the ten-minute segment that holds ``moment``: ``20261129T0640``."""
    start = int(moment) // _SEGMENT_SECONDS * _SEGMENT_SECONDS
    return f"{datetime.fromtimestamp(start, UTC):%Y%m%dT%H%M}"


def _is_closed(segment: str, now: float) -> bool:
    try:
        start = datetime.strptime(segment, "%Y%m%dT%H%M").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return False  # not a segment name: never folded, never deleted
    return start + _SEGMENT_SECONDS + _GRACE_SECONDS < now


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
