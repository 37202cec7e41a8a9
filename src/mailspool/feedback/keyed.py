"""Suppressions of erased addresses: kept under a keyed hash, never the address.

```
erasures/key                     32 random bytes: the store's erasure key (HMAC-SHA256)
suppression/keyed/<hmac>.json    an erased address that stays suppressed: why and since
suppression/keyed/tenant/<t>/<hmac>.json
                                 the same, for SES tenant t only
```
``mailspool erase`` replaces a suppressed address's entry by one under the HMAC-SHA256 of
its canonical form (``mailspool.address``), keyed with the store's erasure key, so that
later mail to any spelling of it is still refused, while the store holds nothing that
names it. The key is made once per store (a create-only write: two first erasures at
once agree on one key) and stays in the store, beside what it protects, so every worker,
Lambda and request screening mail reads the same one without a setting to share. It
keeps the hashes from being matched against another store's or a public list of hashed
addresses; someone who can read the store can still test a guessed address, as they could
by sending to it. With batch encryption, this key is the one to wrap with the key-
encryption key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

import orjson

from mailspool.address import canonical_address
from mailspool.errors import KeyNotFound, StoreError
from mailspool.spool.json_fields import json_object
from mailspool.stores.base import Store
from mailspool.tenant_options import TENANT_NAME

__all__ = [
    "ERASURE_KEY",
    "KEYED",
    "KeyedEntry",
    "erasure_key",
    "keyed_digest",
    "keyed_suppression_key",
    "made_erasure_key",
]

ERASURE_KEY = "erasures/key"
KEYED = "suppression/keyed/"
_KEY_BYTES = 32
_ENTRY_LIMIT = 4096


def erasure_key(store: Store) -> bytes | None:
    """The store's erasure key, or None if it has none. A key of another size than 32
    bytes (a hostile or damaged object) raises ``StoreError``."""
    try:
        key = store.get_at_most(ERASURE_KEY, _KEY_BYTES, "the erasure key size")
    except KeyNotFound:
        return None
    if len(key) != _KEY_BYTES:
        raise StoreError(f"{ERASURE_KEY}: {len(key)} bytes; an erasure key is {_KEY_BYTES}")
    return key


def made_erasure_key(store: Store) -> bytes:
    """The store's erasure key, made now if it has none (a create-only write: of two
    first erasures at once, both use the key the first wrote)."""
    key = erasure_key(store)
    if key is None:
        store.put_new(ERASURE_KEY, os.urandom(_KEY_BYTES))
        key = erasure_key(store)
    if key is None:
        raise StoreError(f"{ERASURE_KEY}: written, then not found")
    return key


def keyed_digest(key: bytes, address: str) -> str:
    """HMAC-SHA256 of the address's canonical form, hex."""
    return hmac.new(key, canonical_address(address).encode(), hashlib.sha256).hexdigest()


def keyed_suppression_key(digest: str, tenant: str | None = None) -> str:
    """The keyed entry's key: for the account, or for ``tenant`` (a checked name)."""
    if tenant is None:
        return f"{KEYED}{digest}.json"
    if not TENANT_NAME.fullmatch(tenant):
        raise ValueError(f"not a tenant's name (MAILSPOOL_SES_TENANTS): {tenant[:80]!r}")
    return f"{KEYED}tenant/{tenant}/{digest}.json"


@dataclass(frozen=True, slots=True)
class KeyedEntry:
    """What stays of an erased address's suppression: the hash, why, since, erased when."""

    digest: str
    reason: str
    since: str
    erased_at: str

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "keyed": self.digest,
                "reason": self.reason,
                "since": self.since,
                "erasedAt": self.erased_at,
            }
        )

    @classmethod
    def decode(cls, data: bytes, source: str) -> KeyedEntry:
        """Read an entry; ValueError naming ``source`` and the field."""
        if len(data) > _ENTRY_LIMIT:
            raise ValueError(f"{source}: larger than {_ENTRY_LIMIT} bytes")
        document = json_object(data, source)  # InvalidRecord, a ValueError, naming source
        fields: list[str] = []
        for name in ("keyed", "reason", "since", "erasedAt"):
            value = document.get(name)
            if not isinstance(value, str) or len(value) > 100:
                raise ValueError(f"{source}: field {name!r} must be a short string")
            fields.append(value)
        return cls(*fields)
