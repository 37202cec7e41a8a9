"""The provider's 24-hour quota: a rolling window of recipients, so that deferred mail
waits for the window instead of failing on it.

SES counts every recipient against ``Max24HourSend`` over the last 24 hours; past it,
every send fails with "Daily message quota exceeded" until the window frees. The worker
keeps its own window: seeded from the provider (``Transport.send_quota``: SES v2
``GetAccount``'s ``SentLast24Hours`` and ``Max24HourSend``, which count every sender of
the account, priority mail included), then each send it makes. Deferred mail takes at
most ``(1 - priority_share)`` of the quota, the rest stays for priority mail.

Near that cap ``take`` answers how long to wait: the worker then pauses delivery as for
an outage (``outage.TransportGate.hold``: no e-mail spends an attempt, the pause has a
named reason and a resume time). The count the worker had at its seed is not dated, so
it is kept for the whole window; a wait is cut to ``refresh_every`` seconds, after which
the provider is asked again and its own count (which does move) replaces the window.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from mailspool.spool.quota_record import QuotaFigures
from mailspool.transports.base import SendQuota

__all__ = ["DAY", "DailyQuota"]

log = logging.getLogger("mailspool.worker")

#: The provider's window, in seconds.
DAY = 86400.0


class DailyQuota:
    """One worker's view of the 24-hour quota, shared by its sender threads."""

    def __init__(
        self,
        seed: SendQuota,
        *,
        reserve_share: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        refresh: Callable[[], SendQuota | None] | None = None,
        refresh_every: float = 900.0,
        window: float = DAY,
    ) -> None:
        """``reserve_share``: the part of the quota left to priority mail; ``refresh``
        asks the provider again (None: the seed is all the worker ever knows)."""
        self._share = reserve_share
        self._clock = clock
        self._refresh = refresh
        self._refresh_every = refresh_every
        self._window = window
        self._lock = threading.Lock()
        self._sent: deque[tuple[float, float]] = deque()  # (clock time, recipients)
        self._limit = 0.0
        self._seeded_at = 0.0
        self._seed(seed)

    def figures(self) -> QuotaFigures:
        """The window now (for ``status``, the dashboard and metrics)."""
        with self._lock:
            return QuotaFigures(self._used(), self._limit, self._cap())

    def take(self, units: int) -> float:
        """Count ``units`` recipients and answer 0, or the seconds to wait (nothing
        counted) when they would pass the deferred cap."""
        with self._lock:
            wait = self._wait(units)
            if wait > 0 and self._refresh_due():
                self._ask_provider()
                wait = self._wait(units)
            if wait == 0:
                self._sent.append((self._clock(), float(units)))
            return wait

    def give_back(self, units: int) -> None:
        """Uncount the latest ``units`` taken: the send did not go (the worker stopped)."""
        with self._lock:
            if self._sent:
                moment, counted = self._sent.pop()
                if counted > units:
                    self._sent.append((moment, counted - units))

    def exhausted(self) -> float:
        """The provider refused a send on its quota: the window is full now; the
        seconds to wait."""
        with self._lock:
            missing = self._limit - self._used()
            if missing > 0:
                self._sent.append((self._clock(), missing))
            return self._wait(1) or self._refresh_every

    def _seed(self, seed: SendQuota) -> None:
        self._sent.clear()
        self._limit = max(seed.max_24h, 0.0)
        self._seeded_at = self._clock()
        if seed.sent_last_24h > 0:
            self._sent.append((self._seeded_at, seed.sent_last_24h))

    def _ask_provider(self) -> None:
        assert self._refresh is not None
        try:
            fresh = self._refresh()
        except Exception as err:
            log.warning("could not ask the provider for its 24-hour quota: %s", err)
            fresh = None
        if fresh is None:
            self._seeded_at = self._clock()  # not again before refresh_every
        else:
            self._seed(fresh)

    def _refresh_due(self) -> bool:
        return self._refresh is not None and self._clock() - self._seeded_at >= self._refresh_every

    def _cap(self) -> float:
        return self._limit * (1.0 - self._share)

    def _used(self) -> float:
        start = self._clock() - self._window
        while self._sent and self._sent[0][0] <= start:
            self._sent.popleft()
        return sum(counted for _, counted in self._sent)

    def _wait(self, units: int) -> float:
        """0 if ``units`` fit under the cap now, else the seconds until they do (an
        e-mail larger than the cap waits for an empty window), at most ``refresh_every``
        when the provider can be asked again."""
        cap, used = self._cap(), self._used()
        excess = used + units - cap if units <= cap else used
        if excess <= 0:
            return 0.0
        freed, now = 0.0, self._clock()
        wait = self._window
        for moment, counted in self._sent:
            freed += counted
            if freed >= excess:
                wait = moment + self._window - now
                break
        if self._refresh is not None:
            wait = min(wait, max(self._seeded_at + self._refresh_every - now, 0.0) or 1.0)
        return max(wait, 1e-3)
