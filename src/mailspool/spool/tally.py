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
wrong by the batches it removes). A record is appended after the batch moved to
``done/``: a crash between the two leaves that one batch out of the counts.
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
from mailspool.stores.base import Store, default_owner
from mailspool.stores.retry import retry_write

__all__ = [
    "LedgerCounts",
    "Tally",
    "ledger_counts",
    "read_tally",
    "record_finished",
    "record_forgotten",
    "segment",
]

log = logging.getLogger("mailspool.tally")

LOG = "tally/log/"
TOTAL = "tally/total.json"
_SEGMENT_SECONDS = 600
_GRACE_SECONDS = 300
_MINUTES_KEPT = 24 * 60  # the per-minute series covers the last day
_CLAIM = "tally-fold"


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

    def add(self, record: dict[str, object]) -> None:
        sent, failed = _int(record.get("sent")), _int(record.get("failed"))
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
        return cls(
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
) -> None:
    """Count a batch that has just moved to ``done/``, from the ledger entries its
    worker holds (no second read of the ledger); logs and goes on if it cannot."""
    _append(store, {"b": batch_id, "done": 1, **ledger_counts(entries).record()}, now)


def record_forgotten(store: Store, batch_id: str, *, now: float | None = None) -> None:
    """Take out of the counts a finished batch that ``gc`` is about to remove."""
    counts = ledger_counts(read_entries(store, batch_id).values())
    _append(store, {"b": batch_id, "done": -1, **counts.record(-1)}, now)


def _append(store: Store, record: dict[str, object], now: float | None) -> None:
    moment = time.time() if now is None else now
    try:
        key, data = f"{LOG}{segment(moment)}", orjson.dumps({**record, "t": int(moment)})
        retry_write(lambda: store.append(key, data), key)
    except MailspoolError as err:  # the batch itself is safe; only the counts lag
        log.error("cannot count batch %s in %s: %s", record.get("b"), store.url, err)


def read_tally(store: Store, *, now: float | None = None) -> Tally:
    """The counts of every finished batch, folding closed segments when it can."""
    moment = time.time() if now is None else now
    total = _load_total(store)
    if total is None:
        total = _count_in_full(store, moment)
        _save(store, total)
    segments = [key for key in _segment_keys(store) if key[len(LOG) :] > total.through]
    closed = [key for key in segments if _is_closed(key[len(LOG) :], moment)]
    if closed:
        total = _fold(store, total, closed, moment)
    for key in segments:
        if key[len(LOG) :] > total.through:
            for record in _records(store, key):
                total.add(record)
    return total


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
        for key in closed:
            if key[len(LOG) :] > current.through:
                for record in _records(store, key):
                    current.add(record)
                current.through = key[len(LOG) :]
        current.prune(now)
        if _save(store, current):
            for key in closed:
                store.delete_log(key)
        return current
    finally:
        store.release(lease)


def _count_in_full(store: Store, now: float) -> Tally:
    """A store without a total: its ledgers, read once. Closed segments are covered by
    this count; a batch with a record in an open segment is left to that record."""
    segments = [key[len(LOG) :] for key in _segment_keys(store)]
    total = Tally(through=max((s for s in segments if _is_closed(s, now)), default=""))
    recorded = {
        str(record.get("b"))
        for name in segments
        if name > total.through
        for record in _records(store, f"{LOG}{name}")
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


def _records(store: Store, key: str) -> list[dict[str, object]]:
    """A segment's records, each batch's finish (or forgetting) once: a record written
    again because its first write's answer was lost (``retry_write``) counts once."""
    records = []
    seen: set[tuple[object, object]] = set()
    for line in store.read_log(key):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn write from a crash
        if isinstance(record, dict) and (record.get("b"), record.get("done")) not in seen:
            seen.add((record.get("b"), record.get("done")))
            records.append(record)
    return records


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
