"""Retention per state (``MAILSPOOL_RETENTION``), applied by ``mailspool gc``.

Only three states ever expire, each judged by the time mailspool wrote into its records:

- **finished**: ``done/<batch>.json`` and ``ledger/<batch>`` (``admin.collect_garbage``:
  the batch id's creation time and the move to ``done/``, the later of the two);
- **failed**: ``failed/<batch>.<index>[.refused].json`` by its ``failedAt``;
- **events**: the logs ``events/<id>`` and ``history/<h>`` by their newest event's
  ``timestamp``, ``events-seen/<h>`` by its event's, ``complaints-bounces/<YYYYMMDD>``
  by its day.

A record whose time cannot be read is judged by the store's modification time instead
(and reported), so a hostile record neither crashes the run nor lives for ever. Nothing
else is looked at: ``queue/``, ``scheduled/``, claims, ``paused/``, ``keys/`` and the
fallback store are never listed here, so no retention can touch unsent mail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from mailspool.errors import InvalidRecord, KeyNotFound, StoreError
from mailspool.feedback import layout as feedback_layout
from mailspool.ops.admin import collect_garbage
from mailspool.retention import Retention, RetentionState
from mailspool.spool import layout
from mailspool.spool.json_fields import json_object
from mailspool.spool.records import moment
from mailspool.stores.base import ObjectInfo, Store

__all__ = ["RetentionReport", "apply_retention"]

log = logging.getLogger("mailspool")
_RECORD_LIMIT = 1 << 20  # a failed record or an event marker larger than this: judged by mtime


@dataclass(slots=True)
class RetentionReport:
    """The keys removed per state, and the records judged by their modification time."""

    removed: dict[str, list[str]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def count(self, state: RetentionState) -> int:
        return len(self.removed.get(state.value, []))


def apply_retention(
    store: Store, retention: Retention, *, now: float | None = None
) -> RetentionReport:
    """Remove finished, failed and event records older than their state's age."""
    now = time.time() if now is None else now
    report = RetentionReport()
    finished = retention.of(RetentionState.FINISHED)
    if finished is not None:
        report.removed["finished"] = collect_garbage(store, older_than=finished, now=now)
    failed = retention.of(RetentionState.FAILED)
    if failed is not None:
        report.removed["failed"] = _expire_failed(store, now - failed, report)
    events = retention.of(RetentionState.EVENTS)
    if events is not None:
        report.removed["events"] = _expire_events(store, now - events, report)
    return report


def _expire_failed(store: Store, cutoff: float, report: RetentionReport) -> list[str]:
    removed = []
    for info in list(store.list(layout.FAILED)):
        written = _record_time(store, info, ("failedAt",), report)
        if written < cutoff:
            store.delete(info.key)
            removed.append(info.key)
    return removed


def _expire_events(store: Store, cutoff: float, report: RetentionReport) -> list[str]:
    removed = []
    for key, infos in _logs(store, feedback_layout.MESSAGE_EVENTS, 2):
        removed += _expire_log(store, key, infos, cutoff, report)
    for key, infos in _logs(store, feedback_layout.HISTORY, 3):
        removed += _expire_log(store, key, infos, cutoff, report)
    for key, infos in _logs(store, feedback_layout.BAD_DAYS, 2):
        day = _day(key.removeprefix(feedback_layout.BAD_DAYS))
        if (day if day is not None else max(i.modified for i in infos)) + 86400 <= cutoff:
            store.delete_log(key)
            removed.append(key)
    for info in list(store.list(feedback_layout.SEEN)):
        if _record_time(store, info, ("timestamp",), report) < cutoff:
            store.delete(info.key)
            removed.append(info.key)
    return removed


def _logs(store: Store, prefix: str, depth: int) -> Iterator[tuple[str, list[ObjectInfo]]]:
    """Each log under ``prefix`` with its objects: a log is one object on a file store,
    one object per record (``<log>/<part>``) on S3; its key is its first ``depth``
    segments."""
    groups: dict[str, list[ObjectInfo]] = {}
    for info in store.list(prefix):
        parts = info.key.split("/")
        if len(parts) >= depth:
            groups.setdefault("/".join(parts[:depth]), []).append(info)
    yield from groups.items()


def _expire_log(
    store: Store, key: str, infos: list[ObjectInfo], cutoff: float, report: RetentionReport
) -> list[str]:
    """Remove the log if its newest event is older than ``cutoff``."""
    lines = store.read_log(key)
    times = list(_event_times(lines))
    if len(times) < len(lines) or not times:
        report.unreadable.append(key)
        times.append(max(info.modified for info in infos))
    if max(times) < cutoff:
        store.delete_log(key)
        return [key]
    return []


def _event_times(lines: Iterable[bytes]) -> Iterator[float]:
    for line in lines:
        found = _time_of(line, ("timestamp",))
        if found is not None:
            yield found


def _record_time(
    store: Store, info: ObjectInfo, fields: tuple[str, ...], report: RetentionReport
) -> float:
    """The time the record holds in one of ``fields``; else its modification time."""
    try:
        found = _time_of(store.get_at_most(info.key, _RECORD_LIMIT, "the record limit"), fields)
    except KeyNotFound:
        found = None
    except StoreError as err:  # too large: read no further
        log.warning("retention: %s", err)
        found = None
    if found is None:
        report.unreadable.append(info.key)
        return info.modified
    return found


def _time_of(data: bytes, fields: tuple[str, ...]) -> float | None:
    try:
        document = json_object(data, "a retention record")
    except InvalidRecord:  # not JSON, or not an object: judged by its modification time
        return None
    for name in fields:
        try:
            return moment(document.get(name)).timestamp()
        except ValueError:
            continue
    return None


def _day(text: str) -> float | None:
    try:
        return moment(f"{text[:4]}-{text[4:6]}-{text[6:8]}T00:00:00Z").timestamp()
    except ValueError:
        return None
