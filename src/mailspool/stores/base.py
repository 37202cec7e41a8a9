"""The store: where batches wait, and where the worker keeps what it has done.

A store holds objects under keys (``queue/20261127T181348123456Z-1a2b3c4d.json``), never
paths, so the same interface fits a directory and an S3 bucket. Every operation a
worker needs is here, each with a promise that both backends keep:

- ``put``: the object appears whole or not at all (atomic), private to its owner.
- ``put_new``: create only if absent; the answer says who won (blobs, leases).
- ``move``: atomic; it replaces an object already at the destination, so a batch
  finished twice (after a crash) moves again without error.
- ``get_at_most``: read an object only if its size is within a limit, known before
  the body is read, so a hostile object cannot exhaust the reader's memory.
- ``read_chunks``: read an object of any size piece by piece (a download), holding
  one chunk at a time.
- ``append`` / ``read_log``: a durable record log (the batch ledger). A record that
  ``append`` returned for is never lost; records come back in the order appended.
- ``claim``: at most one live holder per name. A claim whose holder died is released
  (file store: the kernel drops its lock) or can be taken over once expired (S3).

Backends implement these as they can (rename, flock, conditional writes); callers see
no difference. Every backend passes the tests in ``tests/store_contract.py``.
"""

from __future__ import annotations

import abc
import builtins
import os
import socket
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from mailspool._backends import Backend
from mailspool.errors import ConfigurationError, KeyNotFound

__all__ = [
    "CHUNK_SIZE",
    "Lease",
    "ObjectInfo",
    "Store",
    "check_key",
    "check_prefix",
    "default_owner",
    "key_problem",
]


#: ``read_chunks``' default chunk: large enough for few system calls, small to hold.
CHUNK_SIZE = 1 << 20


def check_key(key: str, what: str = "key") -> str:
    """The key, if it is a plain relative path (``queue/x.json``); a ConfigurationError
    naming it otherwise. Every backend keeps the same rules, so a key valid on one store
    is valid on another; no segment starts with ``.``: such names are the store's own
    (temp files, ``.leases/``)."""
    problem = key_problem(key)
    if problem is not None:
        raise ConfigurationError(f"invalid store {what} {key!r}: {problem}")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or the start of a valid key (it may end inside a name)."""
    problem = key_problem(prefix + "x") if prefix else None
    if problem is not None:
        raise ConfigurationError(f"invalid store prefix {prefix!r}: {problem}")
    return prefix


def key_problem(key: str) -> str | None:
    """Why ``key`` is not a plain relative path inside a store; None when it is."""
    if not key:
        return "it is empty"
    if "\\" in key or "\0" in key:
        return "it contains a backslash or NUL"
    if key.startswith("/"):
        return "it is absolute"
    for part in key.split("/"):
        if not part:
            return "it has an empty segment"
        if part in (".", ".."):
            return f"it has a {part!r} segment"
        if part.startswith("."):
            return "a segment starts with '.' (such names are the store's own files)"
    return None


def default_owner() -> str:
    """A name for this process, unique across hosts: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """A key with its size and its last modification (seconds since the epoch)."""

    key: str
    size: int
    modified: float


@dataclass(frozen=True, slots=True)
class Lease:
    """A held claim. ``token`` is backend-specific (an ETag, a file descriptor...)."""

    name: str
    owner: str
    expires: float
    token: object = None


class Store(Backend, abc.ABC):
    """Objects under keys; see the module docstring for what every backend promises.
    ``close()`` releases its connections and file handles; ``with store:`` closes it."""

    #: milliseconds between a batch ledger's commits unless ``MAILSPOOL_LEDGER_COMMIT_MS``
    #: says otherwise: 0 (each sender waits for its commit) where a write is free
    ledger_commit_ms: int = 0

    # -- objects -------------------------------------------------------------------

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write an object atomically, replacing any object at that key."""

    @abc.abstractmethod
    def put_new(self, key: str, data: bytes) -> bool:
        """Write only if no object is at that key; True if this call created it."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; raise ``KeyNotFound`` if there is none."""

    def get_at_most(self, key: str, limit: int, setting: str = "the limit") -> bytes:
        """The object's bytes if it holds at most ``limit``; else ``ObjectTooLarge``
        naming ``setting``. Backends check the size before they read the body; this
        default (for stores already in memory) checks after."""
        from mailspool.errors import ObjectTooLarge

        data = self.get(key)
        if len(data) > limit:
            raise ObjectTooLarge(key, len(data), limit, setting)
        return data

    def read_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Generator[bytes, None, None]:
        """The object's bytes in chunks of at most ``chunk_size``, for an object too
        large to hold (a download). A generator: the object is opened at the first
        ``next()``, which raises ``KeyNotFound`` if there is none, and released when the
        generator ends or is closed. This default (for stores already in memory) slices
        ``get``; backends read from the disk or the network as the chunks are taken."""
        data = memoryview(self.get(key))
        for start in range(0, len(data), chunk_size):
            yield bytes(data[start : start + chunk_size])

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error if it is already gone."""

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in ascending key order."""

    def check(self) -> None:
        """Raise ``StoreError`` unless an object can be written, read and removed now."""
        key = f"health/{default_owner().replace(':', '-')}"
        self.put(key, b"ok")
        self.get(key)
        self.delete(key)

    def exists(self, key: str) -> bool:
        return any(info.key == key for info in self.list(key))

    def keys(self, prefix: str) -> Iterator[str]:
        return (info.key for info in self.list(prefix))

    def move(self, source: str, destination: str) -> bool:
        """Move an object; False if the source was already gone (someone else moved it).

        An object already at the destination is replaced, atomically: readers see the
        old one or the new one. Replacing is what S3 can do (a copy over the key), and
        a batch finished a second time after a crash (its copy in ``done/`` made, its
        ``queue/`` object not yet removed) must move again without an error, so that
        the copy in ``queue/`` goes. Of concurrent moves of one object to one
        destination, exactly one is True.
        """
        try:
            data = self.get(source)
        except KeyNotFound:
            return False
        self.put(destination, data)
        self.delete(source)
        return True

    # -- record logs -----------------------------------------------------------------

    @abc.abstractmethod
    def append(self, key: str, record: bytes) -> None:
        """Durably add one record (no newline inside) to the log at ``key``."""

    @abc.abstractmethod
    def read_log(self, key: str) -> builtins.list[bytes]:
        """Every record of the log, in the order appended; empty if there is none."""

    @abc.abstractmethod
    def delete_log(self, key: str) -> None:
        """Remove a whole log; no error if there is none."""

    # -- claims ----------------------------------------------------------------------

    @abc.abstractmethod
    def claim(self, name: str, owner: str, ttl: float) -> Lease | None:
        """Take the claim called ``name`` for ``ttl`` seconds, or None if it is held."""

    @abc.abstractmethod
    def renew(self, lease: Lease, ttl: float) -> Lease:
        """Extend a held claim; raise ``LeaseLost`` if it was taken over."""

    @abc.abstractmethod
    def release(self, lease: Lease) -> None:
        """Give a claim back; no error if it had already expired or been taken."""

    def reserve_connections(self, threads: int) -> None:
        """Get ready for ``threads`` threads using the store at once (a backend with a
        connection pool sizes it to them). Call before those threads start."""
