"""Bounce and complaint rates over the last sends, as SES judges an account.

SES reviews an account whose bounce rate passes 5% or whose complaint rate passes 0.1%
(and may pause its sending at 10% and 0.5%). ``collect_rates`` counts, over the last
``sends`` e-mails the ledgers record as sent (newest batches first), how many drew a
hard bounce or a complaint: those are kept in one log per day they were recorded
(``complaints-bounces/<YYYYMMDD>``), so counting reads the days since the oldest of
those batches, not one log per e-mail. An event counts when its provider id is one of
those sends', or its tags (``mailspool-batch``, ``mailspool-index``) name one of them,
or it names none of them and was recorded since the oldest of those batches was made:
every hard bounce and complaint ingested while those e-mails went out counts, as SES
counts an account's (an event of a priority e-mail sent at once, of a send older than
the window, or typed in by hand). ``RateGuard``
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
from typing import ClassVar

import orjson

from mailspool.feedback import layout as feedback_layout
from mailspool.feedback.events import EventKind
from mailspool.feedback.suppression import SuppressionList
from mailspool.spool import layout, queue_scan
from mailspool.spool.ledger import ledger_entries
from mailspool.spool.records import LedgerState
from mailspool.stores.base import Store

__all__ = [
    "RateGuard",
    "Rates",
    "collect_rates",
    "shared_guard",
]

log = logging.getLogger("mailspool.feedback")


@dataclass(frozen=True, slots=True)
class Rates:
    """Over ``sends`` e-mails: how many bounced (hard) and drew a complaint."""

    #: The rates past which SES reviews an account.
    BOUNCE_REVIEW: ClassVar[float] = 0.05
    COMPLAINT_REVIEW: ClassVar[float] = 0.001

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
        if self.bounce_rate > self.BOUNCE_REVIEW:
            found.append(f"bounce rate {self.bounce_rate:.2%} > {self.BOUNCE_REVIEW:.0%}")
        if self.complaint_rate > self.COMPLAINT_REVIEW:
            found.append(f"complaint rate {self.complaint_rate:.2%} > {self.COMPLAINT_REVIEW:.1%}")
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
    by_tags, oldest = _recent_sends(store, sends)
    provider_ids = set(by_tags.values())
    bounced: set[str] = set()
    complained: set[str] = set()
    for bad in _bad_days(store, oldest):
        if bad.provider_id in provider_ids:
            which = bad.provider_id
        elif (tagged := by_tags.get((bad.batch, bad.index))) is not None:
            which = tagged
        elif bad.recorded is not None and oldest is not None and bad.recorded >= int(oldest):
            which = bad.provider_id  # while the window's e-mails went out: SES counts it
        else:
            continue
        (complained if bad.kind == EventKind.COMPLAINED else bounced).add(which)
    return Rates(len(by_tags), len(bounced), len(complained), SuppressionList(store).count())


@dataclass(frozen=True, slots=True)
class _Bad:
    """One line of a day's log: ``[provider id, kind]`` (written before the tags and the
    time were kept), or ``[provider id, kind, batch, index, recorded at]``."""

    provider_id: str
    kind: str
    batch: str | None = None
    index: int | None = None
    recorded: int | None = None

    @classmethod
    def read(cls, line: bytes) -> _Bad | None:
        try:
            fields = orjson.loads(line)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            return None
        if not isinstance(fields, list) or len(fields) not in (2, 5):
            return None
        provider_id, kind, *rest = fields
        if not isinstance(provider_id, str) or not isinstance(kind, str):
            return None
        if not rest:
            return cls(provider_id, kind)
        batch, index, recorded = rest
        if not (batch is None or isinstance(batch, str)) or not _whole(index, none=True):
            return None
        if not _whole(recorded, none=False):
            return None
        return cls(provider_id, kind, batch, index, recorded)


def _whole(value: object, *, none: bool) -> bool:
    if value is None:
        return none
    return isinstance(value, int) and not isinstance(value, bool)


def _bad_days(store: Store, since: float | None) -> Iterator[_Bad]:
    """The hard bounces and complaints recorded since that day. A line that is not one
    (torn, foreign) is skipped and counted in one log line."""
    first = _day(since)
    skipped = 0
    for key in store.keys(feedback_layout.BAD_DAYS):
        if key.removeprefix(feedback_layout.BAD_DAYS) < first:
            continue
        for line in store.read_log(key):
            bad = _Bad.read(line)
            if bad is None:
                skipped += 1
            else:
                yield bad
    if skipped:
        reason = "not a [provider id, kind(, batch, index, recorded at)] list"
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


def _recent_sends(
    store: Store, limit: int
) -> tuple[dict[tuple[str | None, int | None], str], float | None]:
    """The last ``limit`` e-mails sent, as ``{(batch id, index): provider id}``, and the
    creation time of the oldest batch read."""
    queued = (info.key for info in queue_scan.queued_batches(store, set_aside=False))
    keys = [*queued, *store.keys(layout.DONE)]
    batch_ids = sorted(
        {layout.batch_id_from_key(k) for k in keys if k.endswith(".json")}, reverse=True
    )
    sends: dict[tuple[str | None, int | None], str] = {}
    oldest: float | None = None
    for batch_id in batch_ids:  # ids sort by creation time: newest first
        entries = ledger_entries(store, batch_id)  # an unreadable one: skipped
        oldest = (
            layout.id_time(batch_id)
            if oldest is None
            else min(oldest, layout.id_time(batch_id) or oldest)
        )
        for index, entry in sorted(entries.items()):
            if entry.state is LedgerState.SENT and entry.message_id:
                sends[batch_id, index] = entry.message_id
                if len(sends) == limit:
                    return sends, oldest
    return sends, oldest


class RateGuard:
    """Warns (and with ``hold``, says to hold deferred mail) while a rate is too high.

    One per store and process (``shared_guard``), so a Lambda container counts at most
    every five minutes, not at every invocation."""

    #: Seconds between two counts: counting reads the ledgers and a log per day.
    _RECOUNT_EVERY = 300.0

    def __init__(self, store: Store, *, hold: bool, sends: int = 1000) -> None:
        self.store = store
        self.hold = hold
        self.sends = sends
        self._checked = -self._RECOUNT_EVERY
        self._problems: list[str] = []
        self._lock = threading.Lock()

    def holding(self) -> bool:
        """True when deferred mail must wait; recounts at most every five minutes."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self._RECOUNT_EVERY:
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
