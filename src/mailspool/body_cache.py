"""Encoded bodies shared by the e-mails that carry the same body (render once).

A post sent to 5000 followers has one body: its MIME parts (quoted or base64, with
their headers and boundaries) are encoded for the first e-mail and reused for the
others, so only the per-recipient headers are rendered per e-mail. The cache is
bounded in bytes and forgets the least recently used body first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["BodyCache", "EncodedBody"]


@dataclass(frozen=True, slots=True)
class EncodedBody:
    """A body as it goes on the wire: its MIME headers (each ending CRLF) and payload."""

    headers: bytes
    payload: bytes

    @property
    def size(self) -> int:
        return len(self.headers) + len(self.payload)


class BodyCache:
    """Thread-safe: at most ``max_bytes`` of encoded bodies, least recently used out."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.encoded = 0  # bodies encoded (cache misses), for tests and benchmarks
        self._bodies: OrderedDict[Hashable, EncodedBody] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, encode: Callable[[], EncodedBody]) -> EncodedBody:
        """The body for ``key``, encoded by ``encode`` if it is not cached."""
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
                return body
        body = encode()  # outside the lock: threads encoding other bodies go on
        with self._lock:
            self.encoded += 1
            if key not in self._bodies and body.size <= self.max_bytes:
                self._bodies[key] = body
                self._size += body.size
                self._evict()
        return body

    def _evict(self) -> None:
        while self._size > self.max_bytes:
            _, oldest = self._bodies.popitem(last=False)
            self._size -= oldest.size
