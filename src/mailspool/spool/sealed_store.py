"""Encryption at rest, applied once at the store boundary: ``sealed(store, keys)``.

With ``MAILSPOOL_ENCRYPTION_KEY`` set, every object written (batches in ``queue/``,
``scheduled/``, ``done/``, ``cancelled/``, ``quarantine/``, ``failed/`` records, blobs,
suppression and event records...) and every log record (ledgers) is sealed in an
envelope (``spool.envelope``) under a fresh data key; reading opens it. Nothing above
the store changes, so no code path can forget to encrypt. Claims, listings, deletes and
moves pass through: a move keeps the envelope as it is, and its binding (the batch id,
``binding``) is the same on both sides (``queue/<id>.json`` -> ``done/<id>.json``).

Reading stays mixed: clear objects and records (written before encryption was turned
on) read as they are. A sealed object that cannot be opened raises ``Undecryptable``,
an ``ObjectRefused``: the worker quarantines the batch as it is and sends nothing. A
sealed log record that cannot be opened is left out with a warning, as a torn record is.

Crypto-shredding: a sealed object's data key exists only in its own envelope, so
``drop_data_key(store, key)`` (the envelope rewritten without it) leaves the object in
place, listed and counted, with nothing any key can open. A log's records share a data
key per writer: a ledger is erased whole (``delete_log``).
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterator
from typing import Any

from mailspool.errors import ObjectTooLarge, Undecryptable
from mailspool.spool import layout
from mailspool.spool.envelope import Envelope, is_sealed, parse
from mailspool.spool.keyring import Keyring, keyring_of
from mailspool.spool.schedule import due_of
from mailspool.stores import check_record
from mailspool.stores.base import Lease, ObjectInfo, Store

__all__ = [
    "SealedStore",
    "as_stored",
    "binding",
    "drop_data_key",
    "open_stored",
    "sealed",
    "sealed_like",
    "sealed_size",
    "stored_bytes",
]

log = logging.getLogger("mailspool.store")


def sealed(store: Store, keys: tuple[str, ...]) -> Store:
    """``store`` sealing with the keys ``MAILSPOOL_ENCRYPTION_KEY`` lists; ``store``
    itself when it lists none (the format unchanged: clear JSON)."""
    if not keys:
        return store
    if isinstance(store, SealedStore):
        return store
    return SealedStore(store, keyring_of(keys))


def binding(key: str) -> str:
    """What an object's ciphertext is bound to: its batch id (or record name) without
    its folder, so a move between folders keeps it and a copy under another name fails.
    ``scheduled/<due>-<id>.json`` is bound to ``<id>``, as ``queue/<id>.json`` is."""
    due = due_of(key)
    return due[1] if due is not None else layout.batch_id_from_key(key)


def sealed_size(limit: int) -> int:
    """The largest envelope of a plaintext of ``limit`` bytes: base64 (4 per 3) plus
    the tag and the fields around it."""
    return (limit + 16 + 2) // 3 * 4 + 4096


class SealedStore(Store):
    """A store whose objects and log records are sealed; see the module docstring."""

    def __init__(self, inner: Store, keyring: Keyring) -> None:
        self.inner = inner
        self.keyring = keyring
        self.url = inner.url
        self.ledger_commit_ms = inner.ledger_commit_ms

    def __getattr__(self, name: str) -> Any:
        """What the backend has beside the contract (an S3 store's ``bucket`` and
        ``prefix``, which the Lambda handler matches events against), as the backend's."""
        if name == "inner":  # not set yet (unpickling, a failed __init__): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- sealing -------------------------------------------------------------------------

    def seal(self, key: str, data: bytes) -> bytes:
        """``data`` in an envelope under a fresh data key, bound to ``key``'s binding."""
        made = self.keyring.new_data_key()
        return Envelope.seal(
            data, binding=binding(key), kid=made.kid, data_key=made.key, wrapped_key=made.wrapped
        ).encode()

    def unseal(self, key: str, data: bytes) -> bytes:
        """The plaintext of what was read at ``key``; clear bytes as they are."""
        if not is_sealed(data):
            return data
        envelope = parse(data, key)
        envelope.opens(key)
        data_key = self.keyring.unwrap(envelope.kid, envelope.wrapped_key, key)
        return envelope.open(data_key, binding=binding(key), source=key)

    # -- objects -------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, self.seal(key, data))

    def put_new(self, key: str, data: bytes) -> bool:
        return self.inner.put_new(key, self.seal(key, data))

    def get(self, key: str) -> bytes:
        return self.unseal(key, self.inner.get(key))

    def get_at_most(self, key: str, limit: int, setting: str = "the limit") -> bytes:
        """The plaintext, at most ``limit`` bytes: the envelope is read only if it is no
        larger than such a plaintext's could be, then the plaintext checked."""
        data = self.unseal(key, self.inner.get_at_most(key, sealed_size(limit), setting))
        if len(data) > limit:
            raise ObjectTooLarge(key, len(data), limit, setting)
        return data

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Sizes are the stored envelopes' (the plaintext's is known once it is read)."""
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def move(self, source: str, destination: str) -> bool:
        return self.inner.move(source, destination)

    def check(self) -> None:
        """The store's check, then the sealing key's (``Keyring.check``)."""
        self.inner.check()
        self.keyring.check()

    # -- record logs ---------------------------------------------------------------------

    def seal_record(self, key: str, record: bytes) -> bytes:
        """One log record of ``key`` sealed (the writer's data key), as one line."""
        check_record(record)  # the envelope has no line break; the record must not either
        made = self.keyring.log_key(key)
        return Envelope.seal(
            record, binding=binding(key), kid=made.kid, data_key=made.key, wrapped_key=made.wrapped
        ).encode()

    def append(self, key: str, record: bytes) -> None:
        self.inner.append(key, self.seal_record(key, record))

    def read_log(self, key: str) -> builtins.list[bytes]:
        records = []
        for record in self.inner.read_log(key):
            try:
                records.append(self.unseal(key, record))
            except Undecryptable as err:
                log.warning("left out a record of %s: %s", key, err)
        return records

    def delete_log(self, key: str) -> None:
        self.inner.delete_log(key)

    # -- claims and the rest ---------------------------------------------------------------

    def claim(self, name: str, owner: str, ttl: float) -> Lease | None:
        return self.inner.claim(name, owner, ttl)

    def renew(self, lease: Lease, ttl: float) -> Lease:
        return self.inner.renew(lease, ttl)

    def release(self, lease: Lease) -> None:
        self.inner.release(lease)

    def reserve_connections(self, threads: int) -> None:
        self.inner.reserve_connections(threads)

    def close(self) -> None:
        self.inner.close()


def sealed_like(model: Store, store: Store) -> Store:
    """``store`` sealing with ``model``'s keys (a fallback beside the store it stands in
    for); ``store`` itself when ``model`` seals nothing."""
    if isinstance(model, SealedStore) and not isinstance(store, SealedStore):
        return SealedStore(store, model.keyring)
    return store


def drop_data_key(store: Store, key: str) -> bool:
    """Erase the contents of the sealed object at ``key`` by dropping its data key: the
    envelope stays (same key, size and ``kid``), nothing can open it again. False for an
    object in clear (redact or delete it instead); ``KeyNotFound`` if there is none.
    Copies made before (S3 object versions, backups) keep their key: expire them too."""
    data = stored_bytes(store, key)
    if not is_sealed(data):
        return False
    as_stored(store).put(key, parse(data, key).without_key().encode())
    return True


def open_stored(store: Store, key: str, data: bytes) -> tuple[bytes, Callable[[bytes], bytes]]:
    """Bytes as stored (``stored_bytes``) as their plaintext, and the function that seals
    a changed plaintext back as they were stored: an object's one envelope, a log's
    records one envelope a line (a log's bytes end with a line break; an object's
    envelope does not), or clear bytes as they are. ``Undecryptable`` when a sealed part
    does not open: ``mailspool erase`` rewrites what it redacts in the form it found."""
    if not isinstance(store, SealedStore) or not is_sealed(data):
        return data, _as_is
    if not data.endswith(b"\n"):
        return store.unseal(key, data), lambda plain: store.seal(key, plain)
    records = [store.unseal(key, line) for line in data.splitlines() if line]
    plaintext = b"".join(record + b"\n" for record in records)
    return plaintext, lambda plain: b"".join(
        store.seal_record(key, record) + b"\n" for record in plain.splitlines() if record
    )


def _as_is(data: bytes) -> bytes:
    return data


def as_stored(store: Store) -> Store:
    """The store beneath the seal (``store`` itself when it seals nothing): its objects
    read and written as stored."""
    return store.inner if isinstance(store, SealedStore) else store


def stored_bytes(store: Store, key: str) -> bytes:
    """The object's bytes as stored, sealed or not (to show or keep a file that does
    not open)."""
    return as_stored(store).get(key)
