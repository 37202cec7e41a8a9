"""Bounce and complaint rates over the last sends, as SES judges an account.

SES reviews an account whose bounce rate passes 5% or whose complaint rate passes 0.1%
(and may pause its sending at 10% and 0.5%). ``collect_rates`` counts, over the last
``sends`` e-mails the ledgers record as sent (newest batches first), how many drew a
hard bounce or a complaint: those are kept in one log per day
(``complaints-bounces/<YYYYMMDD>``), so counting reads the days since the oldest of
those batches, not one log per e-mail. ``RateGuard``
lets a worker warn, and hold deferred mail when the ``hold_on_rates`` setting says so,
once a rate passes those review levels; it recounts at most every few minutes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from mailspool.feedback import layout as feedback_layout
from mailspool.feedback.events import EventKind
from mailspool.feedback.suppression import SuppressionList
from mailspool.spool import layout, queue_scan
from mailspool.spool.ledger import ledger_entries
from mailspool.spool.records import LedgerState
from mailspool.stores.base import Store

__all__ = [
    "BOUNCE_REVIEW",
    "COMPLAINT_REVIEW",
    "RateGuard",
    "Rates",
    "collect_rates",
    "shared_guard",
]

log = logging.getLogger("mailspool.feedback")

BOUNCE_REVIEW = 0.05
COMPLAINT_REVIEW = 0.001
_RECOUNT_EVERY = 300.0


@dataclass(frozen=True, slots=True)
class Rates:
    """Over ``sends`` e-mails: how many bounced (hard) and drew a complaint."""

    sends: int
    bounces: int
    complaints: int
    suppressed: int

    @property
    def bounce_rate(self) -> float:
        return self.bounces / self.sends if self.sends else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sends if self.sends else 0.0

    def above_review(self) -> list[str]:
        """The rates past SES's review levels, in words (empty: none)."""
        found = []
        if self.bounce_rate > BOUNCE_REVIEW:
            found.append(f"bounce rate {self.bounce_rate:.2%} > {BOUNCE_REVIEW:.0%}")
        if self.complaint_rate > COMPLAINT_REVIEW:
            found.append(f"complaint rate {self.complaint_rate:.2%} > {COMPLAINT_REVIEW:.1%}")
        return found

    def as_dict(self) -> dict[str, float | int]:
        """The keys ``status --json`` adds."""
        return {
            "rate_sends": self.sends,
            "bounce_rate": round(self.bounce_rate, 6),
            "complaint_rate": round(self.complaint_rate, 6),
            "suppressed": self.suppressed,
        }


def collect_rates(store: Store, *, sends: int = 1000) -> Rates:
    """Rates over the last ``sends`` sent e-mails; see the module docstring."""
    ids, oldest = _recent_provider_ids(store, sends)
    sent = set(ids)
    bounced: set[str] = set()
    complained: set[str] = set()
    for provider_id, kind in _bad_days(store, oldest):
        if provider_id in sent:
            (complained if kind == EventKind.COMPLAINED else bounced).add(provider_id)
    return Rates(len(ids), len(bounced), len(complained), SuppressionList(store).count())


def _bad_days(store: Store, since: float | None) -> Iterator[tuple[str, str]]:
    """(provider id, kind) of the hard bounces and complaints recorded since that day.
    A line that is not such a pair (torn, foreign) is skipped and counted in one log line."""
    first = _day(since)
    skipped = 0
    for key in store.keys(feedback_layout.BAD_DAYS):
        if key.removeprefix(feedback_layout.BAD_DAYS) < first:
            continue
        for line in store.read_log(key):
            try:
                provider_id, kind = orjson.loads(line)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                provider_id = kind = None
            if isinstance(provider_id, str) and isinstance(kind, str):
                yield provider_id, kind
            else:
                skipped += 1
    if skipped:
        reason = "not a [provider id, kind] pair"
        log.warning(
            "rates: skipped %d line(s) of %s: %s", skipped, feedback_layout.BAD_DAYS, reason
        )


def _day(since: float | None) -> str:
    """``YYYYMMDD`` of ``since`` (a batch id's time: read from a store key, so hostile);
    empty, so every day is read, when there is none or it is no day a datetime holds."""
    if since is None:
        return ""
    try:
        day = datetime.fromtimestamp(since, UTC)
    except (OverflowError, OSError, ValueError):  # 9999-12-31T23:59:59.999999 rounds up
        return ""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _recent_provider_ids(store: Store, limit: int) -> tuple[list[str], float | None]:
    """The last ``limit`` provider ids sent, and the creation time of the oldest batch read."""
    queued = (info.key for info in queue_scan.queued_batches(store, set_aside=False))
    keys = [*queued, *store.keys(layout.DONE)]
    batch_ids = sorted(
        {layout.batch_id_from_key(k) for k in keys if k.endswith(".json")}, reverse=True
    )
    ids: list[str] = []
    oldest: float | None = None
    for batch_id in batch_ids:  # ids sort by creation time: newest first
        entries = ledger_entries(store, batch_id).values()  # an unreadable one: skipped
        ids.extend(e.message_id for e in entries if e.state is LedgerState.SENT and e.message_id)
        oldest = (
            layout.id_time(batch_id)
            if oldest is None
            else min(oldest, layout.id_time(batch_id) or oldest)
        )
        if len(ids) >= limit:
            return ids[:limit], oldest
    return ids, oldest


class RateGuard:
    """Warns (and with ``hold``, says to hold deferred mail) while a rate is too high.

    One per store and process (``shared_guard``), so a Lambda container counts at most
    every five minutes, not at every invocation."""

    def __init__(self, store: Store, *, hold: bool, sends: int = 1000) -> None:
        self.store = store
        self.hold = hold
        self.sends = sends
        self._checked = -_RECOUNT_EVERY
        self._problems: list[str] = []
        self._lock = threading.Lock()

    def holding(self) -> bool:
        """True when deferred mail must wait; recounts at most every five minutes."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= _RECOUNT_EVERY:
                self._checked = now
                self._problems = collect_rates(self.store, sends=self.sends).above_review()
                if self._problems:
                    action = "holding deferred mail" if self.hold else "sending on"
                    log.warning(
                        "SES reviews accounts past these: %s; %s", ", ".join(self._problems), action
                    )
            return self.hold and bool(self._problems)

    @property
    def reason(self) -> str:
        return "held: " + ", ".join(self._problems)


_guards: dict[tuple[int, bool, int], RateGuard] = {}
_guards_lock = threading.Lock()


def shared_guard(store: Store, *, hold: bool, sends: int) -> RateGuard:
    """The process's guard for this store and these settings."""
    with _guards_lock:
        key = (id(store), hold, sends)
        guard = _guards.get(key)
        if guard is None or guard.store is not store:
            guard = _guards[key] = RateGuard(store, hold=hold, sends=sends)
        return guard
