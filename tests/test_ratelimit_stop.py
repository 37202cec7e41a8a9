"""The rate limit's stop signal: an unlimited limiter never waits, a stopped one says
no, and a stop ends a long wait for a turn."""

from __future__ import annotations

import threading

from mailspool.delivery.ratelimit import RateLimiter


def test_unlimited_never_waits_and_a_stop_says_no() -> None:
    stop = threading.Event()
    limiter = RateLimiter(None, stop=stop)
    assert limiter.acquire(5) is True
    stop.set()
    assert limiter.acquire(5) is False


def test_a_stop_ends_a_long_wait_for_a_turn() -> None:
    stop = threading.Event()
    limiter = RateLimiter(0.001, burst=0.0, stop=stop)  # one unit every 1000 s
    assert limiter.acquire(1) is True
    stopper = threading.Timer(0.2, stop.set)
    stopper.start()
    try:
        assert limiter.acquire(1) is False  # waits until the stop, not 1000 s
    finally:
        stopper.cancel()
