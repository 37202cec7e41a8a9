"""Outages as workers saw them: ``paused/<worker>.json`` while a worker's transport is
down (``delivery.outage``), removed when it answers again.

``mailspool status``, the dashboard and ``/metrics`` read them to say "paused since ...,
next try ...". A record is small JSON written by one worker; a record that cannot be
read (too large, not JSON, odd fields) is skipped with a logged reason, so no writer can
blind the monitoring.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from mailspool.errors import KeyNotFound, ObjectRefused, StoreError
from mailspool.spool import layout
from mailspool.spool.batch import moment
from mailspool.spool.records import timestamp
from mailspool.stores.base import Store

__all__ = [
    "Pause",
    "clear_pause",
    "describe_pause",
    "pause_fields",
    "read_pauses",
    "record_pause",
]

log = logging.getLogger("mailspool.worker")

#: A record is a few hundred bytes; a larger one is not read.
MAX_RECORD_BYTES = 4096
#: The reason kept in a record: the server's answer, cut to this many characters.
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Pause:
    """A transport that is down, as one worker sees it: which, since when, why, when the
    next probe goes, and how many probes met the outage."""

    transport: str
    since: datetime
    next_try: datetime
    reason: str
    failures: int

    def encode(self) -> bytes:
        return orjson.dumps(pause_fields(self) | {"reason": self.reason[:MAX_REASON]})

    @classmethod
    def decode(cls, data: bytes) -> Pause:
        """Raises ValueError (or OverflowError for a date out of range) when unreadable."""
        fields = orjson.loads(data)
        if not isinstance(fields, dict):
            raise ValueError("not a JSON object")
        transport, reason = fields.get("transport"), fields.get("reason")
        failures = fields.get("failures")
        if not isinstance(transport, str) or not isinstance(reason, str):
            raise ValueError("transport and reason must be strings")
        if not isinstance(failures, int) or isinstance(failures, bool) or failures < 1:
            raise ValueError("failures must be a positive integer")
        since, next_try = fields.get("since"), fields.get("nextTry")
        if not isinstance(since, str) or not isinstance(next_try, str):
            raise ValueError("since and nextTry must be RFC 3339 times")
        return cls(transport, moment(since), moment(next_try), reason[:MAX_REASON], failures)


def record_pause(store: Store, owner: str, record: Pause) -> None:
    """Write (or replace) ``owner``'s record; a store failure is logged, not raised: the
    pause itself goes on in the worker."""
    try:
        store.put(layout.pause_key(owner), record.encode())
    except StoreError as err:
        log.warning("could not record the pause in the store: %s", err)


def clear_pause(store: Store, owner: str) -> None:
    try:
        store.delete(layout.pause_key(owner))
    except StoreError as err:
        log.warning("could not remove the pause record from the store: %s", err)


def read_pauses(store: Store) -> list[Pause]:
    """Every readable pause record, oldest outage first."""
    records = []
    for info in store.list(layout.PAUSED):
        try:
            data = store.get_at_most(info.key, MAX_RECORD_BYTES, "a pause record's size")
            records.append(Pause.decode(data))
        except KeyNotFound:
            continue  # the outage ended while listing
        except (ObjectRefused, ValueError, OverflowError) as err:
            log.warning("skipped the pause record %s: %s", info.key, err)
    return sorted(records, key=lambda record: record.since)


def describe_pause(record: Pause, now: datetime | None = None) -> str:
    """``paused since ... (N s), next try ...: reason (transport)``, for people."""
    now = now or datetime.now(UTC)
    down = max((now - record.since).total_seconds(), 0.0)
    return (
        f"paused since {timestamp(record.since, timespec='seconds')} ({down:.0f} s), next try "
        f"{timestamp(record.next_try, timespec='seconds')}: {record.reason} ({record.transport})"
    )


def pause_fields(record: Pause) -> dict[str, object]:
    """The record as ``status --json`` and the dashboard give it."""
    return {
        "transport": record.transport,
        "since": timestamp(record.since),
        "nextTry": timestamp(record.next_try),
        "reason": record.reason,
        "failures": record.failures,
    }
