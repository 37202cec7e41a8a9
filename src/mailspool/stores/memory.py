"""The memory store (``memory:``): objects, logs and claims in dicts, for tests and demos.

``memory:`` opens a new, private store. ``memory:NAME`` opens the store called NAME,
one per process, so a producer and a worker that each open the same URL see the same
objects. Nothing outlives the process.

Claims expire by a clock, as on S3: ``clock=`` (``time.time`` by default; tests pass a
fake one). An expired claim can be taken over, and its old holder's ``renew`` then
raises ``LeaseLost``. ``move`` replaces an existing destination, like the base
``Store.move``. Thread-safe: one lock guards everything.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from mailspool.errors import ConfigurationError, KeyNotFound, LeaseLost
from mailspool.stores import check_record
from mailspool.stores.base import Lease, ObjectInfo, Store

__all__ = ["MemoryStore"]

Clock = Callable[[], float]

_shared: dict[str, MemoryStore] = {}
_shared_lock = threading.Lock()


class MemoryStore(Store):
    """A store in this process's memory; see the module docstring."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.url = "memory:"
        self._clock = clock
        self._lock = threading.Lock()
        self._objects: dict[str, tuple[bytes, float]] = {}
        self._logs: dict[str, builtins.list[bytes]] = {}
        self._claims: dict[str, Lease] = {}

    @classmethod
    def shared(cls, name: str, *, clock: Clock | None = None) -> MemoryStore:
        """The process-wide store called ``name``, made on first use. A ``clock`` can
        only be given by the call that makes it."""
        with _shared_lock:
            store = _shared.get(name)
            if store is None:
                store = cls() if clock is None else cls(clock=clock)
                store.url = f"memory:{name}"
                _shared[name] = store
            elif clock is not None:
                raise ConfigurationError(f"memory store {name!r} exists: its clock is set")
        return store

    @classmethod
    def from_url(cls, url: str, *, clock: Clock | None = None) -> MemoryStore:
        """``memory:`` (a new store) or ``memory:NAME`` / ``memory://NAME`` (shared)."""
        scheme, colon, name = url.partition(":")
        if scheme.lower() != "memory" or not colon:
            raise ConfigurationError(f"not a memory store URL (memory:NAME): {url!r}")
        name = name.removeprefix("//")
        if name:
            return cls.shared(name, clock=clock)
        return cls() if clock is None else cls(clock=clock)

    # -- objects -------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._objects[key] = (bytes(data), self._clock())

    def put_new(self, key: str, data: bytes) -> bool:
        with self._lock:
            if key in self._objects:
                return False
            self._objects[key] = (bytes(data), self._clock())
            return True

    def get(self, key: str) -> bytes:
        with self._lock:
            try:
                return self._objects[key][0]
            except KeyError:
                raise KeyNotFound(key) from None

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self._objects

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def move(self, source: str, destination: str) -> bool:
        with self._lock:
            if source not in self._objects:
                return False
            self._objects[destination] = self._objects.pop(source)
            return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._lock:
            found = [
                ObjectInfo(key, len(data), modified)
                for key, (data, modified) in self._objects.items()
                if key.startswith(prefix)
            ]
        return iter(sorted(found, key=lambda info: info.key))

    # -- record logs -----------------------------------------------------------------

    def append(self, key: str, record: bytes) -> None:
        check_record(record)
        with self._lock:
            self._logs.setdefault(key, []).append(bytes(record))

    def read_log(self, key: str) -> builtins.list[bytes]:
        with self._lock:
            return builtins.list(self._logs.get(key, ()))

    def delete_log(self, key: str) -> None:
        with self._lock:
            self._logs.pop(key, None)

    # -- claims ----------------------------------------------------------------------

    def claim(self, name: str, owner: str, ttl: float) -> Lease | None:
        with self._lock:
            now = self._clock()
            current = self._claims.get(name)
            if current is not None and current.expires > now:
                return None
            lease = Lease(name, owner, now + ttl, object())
            self._claims[name] = lease
            return lease

    def renew(self, lease: Lease, ttl: float) -> Lease:
        """Extend the claim, even past its expiry if nobody took it over meanwhile."""
        with self._lock:
            current = self._claims.get(lease.name)
            if current is None or current.token is not lease.token:
                raise LeaseLost(f"claim {lease.name!r} in {self.url} was taken over or released")
            renewed = replace(lease, expires=self._clock() + ttl)
            self._claims[lease.name] = renewed
            return renewed

    def release(self, lease: Lease) -> None:
        with self._lock:
            current = self._claims.get(lease.name)
            if current is not None and current.token is lease.token:
                del self._claims[lease.name]

    def claims(self) -> builtins.list[Lease]:
        """The claims not yet expired, by name, without their tokens (as ``FileStore``)."""
        with self._lock:
            now = self._clock()
            live = [
                replace(lease, token=None) for lease in self._claims.values() if lease.expires > now
            ]
        return sorted(live, key=lambda lease: lease.name)
