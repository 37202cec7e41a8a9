"""Retrying a store write that must land: backoff with jitter, for a bounded time.

The worker records each e-mail's outcome before it goes on. A write that fails for a
moment (a 5xx, a reset connection, a disk being cleared) is tried again rather than
given up: giving up would stop the batch, and the next run would send again the e-mails
whose outcomes were lost. The retries last at most ``WRITE_PATIENCE`` seconds, so a
store that stays down still stops the batch, which then waits in ``queue/``. (botocore
retries each request a few times already, but it stops retrying once its retry quota
is spent, which a store failing half its writes spends in seconds.)

A write whose answer was lost may land twice: the callers write what can be repeated
(a ledger record read back by e-mail index, a record put at a fixed key).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from mailspool.errors import KeyNotFound, LeaseLost, ObjectRefused, StoreError

__all__ = ["WRITE_PATIENCE", "retry_write"]

log = logging.getLogger("mailspool.store")

WRITE_PATIENCE = 30.0  # seconds of retrying before a write is given up
_FIRST_DELAY = 0.1  # seconds; doubled at each attempt, up to _LONGEST_DELAY
_LONGEST_DELAY = 2.0

T = TypeVar("T")


def retry_write(write: Callable[[], T], what: str) -> T:
    """``write()``, tried again while it raises ``StoreError`` (not a missing key, a lost
    claim or a refused object such as a link: those do not heal by waiting), for up to
    ``WRITE_PATIENCE`` seconds."""
    give_up = time.monotonic() + WRITE_PATIENCE
    attempt = 0
    while True:
        attempt += 1
        try:
            return write()
        except (KeyNotFound, LeaseLost, ObjectRefused):
            raise
        except StoreError as err:
            ceiling = min(_LONGEST_DELAY, _FIRST_DELAY * 2 ** (attempt - 1))
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
            if time.monotonic() + delay > give_up:
                raise
            log.warning(
                "writing %s failed (attempt %d), again in %.1f s: %s", what, attempt, delay, err
            )
            time.sleep(delay)
