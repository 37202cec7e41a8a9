"""A transport around another one, for what watches sends (metrics) without changing them."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from mailspool.message import Message
from mailspool.transports.base import BulkEntry, BulkResult, Receipt, Transport

__all__ = ["TransportWrapper"]


class TransportWrapper(Transport):
    """Forwards everything to ``inner``; subclasses override ``send`` to watch it."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.url = inner.url
        self.max_bulk = inner.max_bulk

    def send(self, message: Message, *, message_id: str | None = None) -> Receipt:
        return self.inner.send(message, message_id=message_id)

    def bulk_key(self, message: Message) -> Hashable | None:
        return self.inner.bulk_key(message)

    def send_bulk(self, entries: Sequence[BulkEntry]) -> list[BulkResult]:
        """Forwarded whole; a subclass that watches sends watches these results too."""
        return self.inner.send_bulk(entries)

    def send_rate(self) -> float | None:
        """The inner transport's own limit (SES: MaxSendRate), if it has one."""
        return self.inner.send_rate()

    def close(self) -> None:
        self.inner.close()
