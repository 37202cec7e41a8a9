"""The rate limit as the event loop takes it (``RateLimiter.acquire_async``): the same
turns as the threads' ``acquire``, and the stop signal ends a wait."""

from __future__ import annotations

import asyncio
import threading

from mailspool.delivery.ratelimit import RateLimiter


def test_unlimited_never_waits_and_a_stop_says_no() -> None:
    stop = threading.Event()
    limiter = RateLimiter(None, stop=stop)
    assert asyncio.run(limiter.acquire_async(5)) is True
    stop.set()
    assert asyncio.run(limiter.acquire_async(5)) is False


def test_a_stop_ends_a_long_wait_for_a_turn() -> None:
    stop = threading.Event()
    limiter = RateLimiter(0.001, burst=0.0, stop=stop)  # one unit every 1000 s

    async def two_turns() -> list[bool]:
        first = await limiter.acquire_async(1)
        asyncio.get_running_loop().call_later(0.2, stop.set)
        return [first, await limiter.acquire_async(1)]  # waits until the stop

    assert asyncio.run(two_turns()) == [True, False]
