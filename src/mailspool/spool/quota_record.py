"""The provider's 24-hour quota as a worker last saw it: ``quota/account.json``.

A worker with a quota (``delivery.quota``: SES's ``Max24HourSend``) writes its figures
after each batch run; ``mailspool status``, the dashboard and ``/metrics`` read them to
show the headroom. One record for the account: every worker sees the same quota, the
last writer wins. A record that cannot be read (too large, not JSON, odd figures) is
left out with a logged reason.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime

import orjson

from mailspool.errors import KeyNotFound, ObjectRefused, StoreError
from mailspool.spool import layout
from mailspool.spool.batch import moment
from mailspool.spool.records import timestamp
from mailspool.stores.base import Store

__all__ = ["QuotaFigures", "QuotaRecord", "read_quota", "record_quota"]

log = logging.getLogger("mailspool.worker")

MAX_RECORD_BYTES = 1024


@dataclass(frozen=True, slots=True)
class QuotaFigures:
    """The window as the worker sees it: recipients counted, the provider's cap, and
    the part of it deferred mail may take."""

    used: float
    limit: float
    cap: float

    @property
    def headroom(self) -> float:
        """The share of the provider's quota still free (1.0: all of it)."""
        return max(self.limit - self.used, 0.0) / self.limit if self.limit > 0 else 0.0

    def reason(self) -> str:
        """Why deferred mail waits, for the pause record ``status`` shows."""
        return (
            f"the 24-hour quota: {self.used:.0f} of {self.limit:.0f} recipients counted "
            f"(Max24HourSend), deferred mail takes up to {self.cap:.0f} "
            "(MAILSPOOL_PRIORITY_SHARE keeps the rest for priority mail): waiting for the window"
        )


@dataclass(frozen=True, slots=True)
class QuotaRecord(QuotaFigures):
    """The figures as a worker last wrote them, and when."""

    at: datetime

    def fields(self) -> dict[str, object]:
        """As ``status --json`` and the dashboard give it."""
        return {
            "used": self.used,
            "max24HourSend": self.limit,
            "deferredCap": self.cap,
            "headroom": round(self.headroom, 4),
            "at": timestamp(self.at),
        }

    def describe(self) -> str:
        return (
            f"{self.headroom:.0%} free: {self.used:.0f} of {self.limit:.0f} recipients in "
            f"24 hours, deferred mail up to {self.cap:.0f} (at {timestamp(self.at)})"
        )

    @classmethod
    def decode(cls, data: bytes) -> QuotaRecord:
        """Raises ValueError (or OverflowError for a date out of range) when unreadable."""
        fields = orjson.loads(data)
        if not isinstance(fields, dict):
            raise ValueError("not a JSON object")
        figures = [fields.get(name) for name in ("used", "max24HourSend", "deferredCap")]
        if not all(_count(figure) for figure in figures):
            raise ValueError("used, max24HourSend and deferredCap must be counts >= 0")
        at = fields.get("at")
        if not isinstance(at, str):
            raise ValueError("at must be an RFC 3339 time")
        used, limit, cap = (float(figure) for figure in figures)  # type: ignore[arg-type]
        return cls(used, limit, cap, moment(at))


def _count(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def record_quota(store: Store, record: QuotaRecord) -> None:
    """Write the record; a store failure is logged, not raised (delivery goes on)."""
    try:
        store.put(layout.QUOTA_KEY, orjson.dumps(record.fields()))
    except StoreError as err:
        log.warning("could not record the 24-hour quota in the store: %s", err)


def read_quota(store: Store) -> QuotaRecord | None:
    """The last record, or None when there is none or it cannot be read."""
    try:
        data = store.get_at_most(layout.QUOTA_KEY, MAX_RECORD_BYTES, "the quota record's size")
        return QuotaRecord.decode(data)
    except KeyNotFound:
        return None
    except (ObjectRefused, ValueError, OverflowError) as err:
        log.warning("skipped the quota record %s: %s", layout.QUOTA_KEY, err)
        return None
