"""A bound on the bytes the sender threads hold at once.

Each e-mail reserves its footprint (``Limits.footprint``: bodies and attachments, known
from the file before any attachment is read) before it is read, and gives it back when
its attempt ends. The sum stays under the capacity, so the worker's memory does not grow
with its concurrency: 32 threads each holding an e-mail at the message limit would need
several gigabytes; with the bound, large e-mails take turns while small ones pass. An
e-mail larger than the whole capacity still goes, alone.
"""

from __future__ import annotations

import threading

__all__ = ["BytesInFlight"]


class BytesInFlight:
    """Reservations of bytes against a capacity; thread-safe."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._used = 0
        self._changed = threading.Condition()

    def acquire(self, amount: int, stopping: threading.Event) -> int | None:
        """Reserve ``amount`` (at most the capacity); wait while others hold too much.
        The amount reserved, to give back to ``release``; None if ``stopping`` was set."""
        amount = min(amount, self.capacity)
        with self._changed:
            while not self._take_held(amount):
                if stopping.is_set():
                    return None
                self._changed.wait(0.1)
        return amount

    def _take_held(self, amount: int) -> bool:
        # Called with the condition held: reserve ``amount`` if it fits (or none is held).
        if self._used and self._used + amount > self.capacity:
            return False
        self._used += amount
        return True

    def release(self, amount: int) -> None:
        with self._changed:
            self._used -= amount
            self._changed.notify_all()
