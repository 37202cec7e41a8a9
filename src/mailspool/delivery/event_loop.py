"""The event loop a worker's asynchronous sender runs on: one thread per worker.

A transport that can drive its connections from one loop (``Transport.async_sender``:
SMTP without TLS) sends a batch's e-mails as coroutines there instead of one thread
each. The loop lives as long as the worker, so its connections outlive a batch; the
thread that delivers a batch hands the batch's send loop over and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from concurrent.futures import CancelledError
from typing import Any, TypeVar

from mailspool.transports.base import AsyncSender, Transport

__all__ = ["SenderLoop"]

T = TypeVar("T")

#: Seconds a cancelled batch may take to record the e-mails it had in flight.
CANCEL_GRACE = 60.0


class SenderLoop:
    """``sender`` and the loop thread it runs on; ``close`` closes both."""

    def __init__(self, sender: AsyncSender) -> None:
        self.sender = sender
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mailspool-send-loop", daemon=True
        )
        self._thread.start()

    @classmethod
    def for_transport(cls, transport: Transport) -> SenderLoop | None:
        """A loop for ``transport``'s asynchronous sender, or None if it has none."""
        sender = transport.async_sender()
        return None if sender is None else cls(sender)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result. If the wait is cut
        short (an exception in this thread), the coroutine is cancelled, and this waits
        (at most ``CANCEL_GRACE`` seconds) for it to finish what it does on cancellation."""
        ended = threading.Event()

        async def watched() -> T:
            try:
                return await coroutine
            finally:
                ended.set()

        future = asyncio.run_coroutine_threadsafe(watched(), self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            ended.wait(CANCEL_GRACE)
            raise

    def close(self) -> None:
        """Close the sender's idle connections, then stop the loop and its thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception, CancelledError):
            self.run(self.sender.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
