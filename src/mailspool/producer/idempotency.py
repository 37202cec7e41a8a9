"""Idempotency keys: a key is accepted once within a window, across processes and hosts.

Accepting a key creates ``keys/<sha256 of key>.json`` with a create-only write
(``Store.put_new``: an exclusive create on a file store, ``IfNoneMatch="*"`` on S3), so
of two processes sending the same key at once exactly one wins, whatever their memory.
A record older than the window (``MAILSPOOL_IDEMPOTENCY_WINDOW``, default 24 hours) no
longer blocks its key: it is replaced under the key's claim, so of two processes reusing
an expired key at once one wins there too. A record that cannot be read is replaced.
"""

from __future__ import annotations

import logging
from datetime import datetime

from mailspool.errors import InvalidMessage, InvalidRecord, KeyNotFound
from mailspool.spool.keys import is_safe_name
from mailspool.spool.records import KeyRecord, moment
from mailspool.spool.schedule import is_batch_location, key_record_key
from mailspool.stores.base import Store, default_owner

__all__ = ["MAX_KEY", "check_key", "forget", "lookup", "reserve"]

log = logging.getLogger("mailspool")
_CLAIM_TTL = 30.0
#: The longest idempotency key, in characters (as the batch format allows).
MAX_KEY = 256


def check_key(key: object, *, field: str = "key") -> str:
    """``key`` if it is a string of 1 to ``MAX_KEY`` characters; InvalidMessage naming
    ``field`` and the rule otherwise (an int given by mistake, say)."""
    if not isinstance(key, str):
        raise InvalidMessage(
            f"must be a string of 1 to {MAX_KEY} characters, not {type(key).__name__}",
            field=field,
        )
    if not 0 < len(key) <= MAX_KEY:
        raise InvalidMessage(f"must be a string of 1 to {MAX_KEY} characters", field=field)
    return key


def reserve(store: Store, record: KeyRecord, *, window: float, now: datetime) -> bool:
    """Record ``record.key`` for its batch; False if the key was accepted within ``window``
    seconds before ``now`` (then nothing is written)."""
    path = key_record_key(record.key)
    if store.put_new(path, record.encode()):
        return True
    lease = store.claim(path.removesuffix(".json"), default_owner(), _CLAIM_TTL)
    if lease is None:  # another process is replacing an expired record right now: it wins
        return False
    try:
        earlier = lookup(store, record.key)
        if earlier is not None and _age(earlier, now) < window:
            return False
        store.put(path, record.encode())
        return True
    finally:
        store.release(lease)


def lookup(store: Store, key: str) -> KeyRecord | None:
    """The record of ``key``, or None if there is none or it cannot be read (logged).
    InvalidMessage if ``key`` is not a string (no key of another type was ever accepted)."""
    if not isinstance(key, str):
        check_key(key)
    path = key_record_key(key)
    try:
        record = KeyRecord.decode(store.get(path), source=path)
    except KeyNotFound:
        return None
    except InvalidRecord as err:
        log.warning("unreadable idempotency record: %s", err)
        return None
    if record.key != key or not (
        is_safe_name(record.batch)
        and (not record.location or is_batch_location(record.location, record.batch))
    ):
        log.warning("idempotency record %s names another key or batch: ignored", path)
        return None
    return record


def forget(store: Store, key: str) -> None:
    """Remove the record of ``key`` (its batch could not be written)."""
    store.delete(key_record_key(key))


def _age(record: KeyRecord, now: datetime) -> float:
    try:
        return (now - moment(record.accepted_at)).total_seconds()
    except ValueError:  # a record that cannot be read blocks nothing
        return float("inf")
