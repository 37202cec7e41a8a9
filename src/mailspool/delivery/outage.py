"""Whether the transport takes e-mails now: an outage pauses delivery, it fails nothing.

A failure of the transport itself (``TransportUnavailable``: connection refused, a
timeout or a dropped connection before the content, a TLS failure, a 421, throttling)
says nothing about the e-mail being sent, so it spends none of its attempts. Instead the
worker's one ``TransportGate`` pauses every send through that transport: after a pause
of ``base`` seconds one e-mail goes as a probe (the others wait); if it meets the
outage again the pause doubles, up to ``cap``, as Postfix's queue manager backs off a
deferred destination. The first answer from the server (a send, or a refusal of one
e-mail) ends the pause. An e-mail ends for good only on a permanent answer, or when its
queue lifetime (``MAILSPOOL_QUEUE_LIFETIME``, 5 days as Postfix) runs out.

Each change of state (paused, resumed) is one log line and one call of ``on_change``,
which the worker uses to write the pause where ``mailspool status``, the dashboard and
``/metrics`` read it (``spool.outage``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mailspool.spool.pauses import Pause

__all__ = ["TransportGate"]

log = logging.getLogger("mailspool.worker")


class TransportGate:
    """The pause state of one transport, shared by every sender thread of a worker."""

    def __init__(
        self,
        *,
        base: float = 1.0,
        cap: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[Pause | None], None] | None = None,
        name: str = "the transport",
    ) -> None:
        self._base = base
        self._cap = cap
        self._clock = clock
        self._on_change = on_change
        self._name = name
        self._lock = threading.Lock()
        self._pause: Pause | None = None
        self._due = 0.0  # the clock's time of the next probe
        self._probing = False

    @property
    def pause(self) -> Pause | None:
        """The outage under way, or None when the transport takes e-mails."""
        return self._pause

    def admits(self) -> bool:
        """Whether a send may go now: always when not paused; when paused, once the pause
        has run out, and then to one sender only (the probe) until it has an answer."""
        with self._lock:
            if self._pause is None:
                return True
            if self._probing or self._clock() < self._due:
                return False
            self._probing = True
            return True

    def wait(self) -> float:
        """Seconds until a send may be admitted (0 when not paused or due)."""
        with self._lock:
            if self._pause is None:
                return 0.0
            return max(self._due - self._clock(), 0.0)

    def failed(self, reason: str) -> None:
        """The transport failed as a whole: pause, or pause twice as long as before."""
        with self._lock:
            if self._pause is not None and not self._probing:
                return  # a send that left before the pause began: the pause stands
            failures = 1 if self._pause is None else self._pause.failures + 1
            delay = min(self._base * 2 ** (failures - 1), self._cap)
            now = datetime.now(UTC)
            since = now if self._pause is None else self._pause.since
            first = self._pause is None
            next_try = now + timedelta(seconds=delay)
            self._pause = Pause(self._name, since, next_try, reason, failures)
            self._due = self._clock() + delay
            self._probing = False
            pause = self._pause
        if first:
            log.warning(
                "%s is unavailable (%s): delivery paused, next try in %.0f s; no e-mail "
                "spends an attempt on it",
                self._name,
                reason,
                delay,
            )
        self._changed(pause)

    def answered(self) -> None:
        """The server answered a send (accepted or refused the e-mail): the pause ends."""
        if self._pause is None:  # the common case, without the lock
            return
        with self._lock:
            pause, self._pause, self._probing = self._pause, None, False
        if pause is None:
            return
        down = (datetime.now(UTC) - pause.since).total_seconds()
        log.warning("%s is back after %.0f s: delivery resumed", self._name, down)
        self._changed(None)

    def unanswered(self) -> None:
        """An admitted send ended without reaching the transport (the e-mail failed its
        checks, the worker is stopping): another sender may probe."""
        with self._lock:
            self._probing = False

    def _changed(self, pause: Pause | None) -> None:
        if self._on_change is not None:
            self._on_change(pause)
