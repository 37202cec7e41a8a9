"""One rate limit shared by every thread of a worker: the provider's send rate holds
however many sends run at once.

A provider counts recipients, not messages (SES: ``MaxSendRate`` recipients per second),
so ``acquire(n)`` takes ``n`` units. The limiter hands out start times spaced
``n / rate`` apart (a virtual-clock scheduler, GCRA), so bursts are smoothed without a
refill thread, and a message larger than the rate simply waits its turn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """``acquire(n)`` blocks until ``n`` units may be spent; ``rate=None`` never blocks."""

    def __init__(
        self,
        rate: float | None,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
    ) -> None:
        self.rate = rate
        self._burst = max(burst, 0.0)
        self._clock = clock
        self._stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._next = clock()

    def acquire(self, units: int = 1) -> bool:
        """Wait for the turn of ``units``; False if the worker is stopping meanwhile."""
        delay = self._reserve(units)
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()

    def _reserve(self, units: int) -> float:
        """Take the next turn for ``units``: the seconds until it starts."""
        if self.rate is None:
            return 0.0
        with self._lock:
            now = self._clock()
            earliest = now - self._burst / self.rate
            start = max(self._next, earliest)
            self._next = start + units / self.rate
        return start - now
