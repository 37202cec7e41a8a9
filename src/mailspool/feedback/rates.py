"""Bounce and complaint rates over the last sends, as SES judges an account.

SES reviews an account whose bounce rate passes 5% or whose complaint rate passes 0.1%
(and may pause its sending at 10% and 0.5%). ``collect_rates`` counts, over the last
``sends`` e-mails the ledgers record as sent (newest batches first), how many drew a
hard bounce or a complaint (the events recorded under their provider id). ``RateGuard``
lets a worker warn, and hold deferred mail when the ``hold_on_rates`` setting says so,
once a rate passes those review levels; it recounts at most every few minutes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from mailspool.feedback import layout as feedback_layout
from mailspool.feedback.events import EventKind
from mailspool.feedback.ingest import read_history
from mailspool.feedback.suppression import SuppressionList
from mailspool.spool import layout
from mailspool.spool.ledger import read_entries
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
    ids = _recent_provider_ids(store, sends)
    bounces = complaints = 0
    for provider_id in ids:
        kinds = {
            (e.kind, e.permanent)
            for e in read_history(store, feedback_layout.message_events_key(provider_id))
        }
        bounces += (EventKind.BOUNCED, True) in kinds
        complaints += any(kind is EventKind.COMPLAINED for kind, _ in kinds)
    return Rates(len(ids), bounces, complaints, SuppressionList(store).count())


def _recent_provider_ids(store: Store, limit: int) -> list[str]:
    keys = [*store.keys(layout.QUEUE), *store.keys(layout.DONE)]
    batch_ids = sorted(
        {layout.batch_id_from_key(k) for k in keys if k.endswith(".json")}, reverse=True
    )
    ids: list[str] = []
    for batch_id in batch_ids:  # ids sort by creation time: newest first
        entries = read_entries(store, batch_id).values()
        ids.extend(e.message_id for e in entries if e.state is LedgerState.SENT and e.message_id)
        if len(ids) >= limit:
            return ids[:limit]
    return ids


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
