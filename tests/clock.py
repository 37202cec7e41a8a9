"""A clock the test moves: time in a test is a fact of the test, not of the machine's
load. Pass it where the code takes ``clock=``; set ``now`` to move it."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
