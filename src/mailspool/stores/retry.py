"""Retrying a store write that must land: a few attempts, backoff with jitter, bounded.

The worker records each e-mail's outcome before it goes on. A write that fails for a
moment (a 5xx, a reset connection, a disk being cleared) is tried again rather than
given up: giving up would stop the batch, and the next run would send again the e-mail
whose outcome was lost. ``WRITE_ATTEMPTS`` bounds the wait (about 10 s in all), so a
store that stays down still stops the batch, which then waits in ``queue/``.

A write whose answer was lost may land twice: the callers write what can be repeated
(a ledger record read back by e-mail index, a record put at a fixed key).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from mailspool.errors import KeyNotFound, LeaseLost, StoreError

__all__ = ["WRITE_ATTEMPTS", "retry_write"]

log = logging.getLogger("mailspool.store")

WRITE_ATTEMPTS = 6
_FIRST_DELAY = 0.2  # seconds; doubled at each attempt, up to _LONGEST_DELAY
_LONGEST_DELAY = 4.0

T = TypeVar("T")


def retry_write(write: Callable[[], T], what: str) -> T:
    """``write()``, tried up to ``WRITE_ATTEMPTS`` times while it raises ``StoreError``
    (not a missing key nor a lost claim: those do not heal by waiting)."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return write()
        except (KeyNotFound, LeaseLost):
            raise
        except StoreError as err:
            if attempt == WRITE_ATTEMPTS:
                raise
            ceiling = min(_LONGEST_DELAY, _FIRST_DELAY * 2 ** (attempt - 1))
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
            log.warning(
                "writing %s failed (attempt %d of %d), again in %.1f s: %s",
                what,
                attempt,
                WRITE_ATTEMPTS,
                delay,
                err,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
