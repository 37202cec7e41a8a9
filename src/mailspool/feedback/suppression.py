"""The suppression list: addresses never to send to again, kept in the store.

Each suppressed address is one small object (``feedback.layout.suppression_key``), so
checking a recipient is one read (a file open, or one S3 GET) whatever the size of the
list: with a million entries a send still reads only its own recipients' keys. Answers,
"suppressed" and "not suppressed" alike, are cached in the process for ``cache_ttl``
seconds (30 by default), so a batch to the same list costs one read per address per
worker per half-minute; an empty list costs one listing per half-minute, and no read
per recipient. An entry added or removed through this object is seen at once
by it; other processes see it within ``cache_ttl``.

A record that cannot be read counts as suppressed (logged with its key): not sending to
someone who may have complained is the safe side.

Every address is compared in its canonical form (``mailspool.address``): quoted or not,
fullwidth, with an ideographic full stop, in Unicode or punycode, one address is one key.
Entries written by versions before that form sit under the key of the address lower-cased
with its domain as written; a check that misses the canonical key also reads those
(``layout.legacy_suppression_keys``), which differ from it only for addresses written
other than in plain ASCII: an ordinary address still costs one read. What such an entry
holds is canonicalised when read.

An erased address (``mailspool erase``) stays suppressed under a keyed hash only
(``feedback.keyed``). A check that finds no entry reads that hash's key too, but only
while ``suppression/keyed/`` holds anything: one listing per ``listing_ttl``, no read per
recipient on a store where nothing suppressed was ever erased.

An address can also be suppressed for one SES tenant only (``tenant=``, the tenant's
``"suppression": "tenant"`` in ``MAILSPOOL_SES_TENANTS``): kept under
``suppression/tenant/<tenant>/``, it refuses that tenant's mail to the address and no
other's, while an entry for the account refuses everyone's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from itertools import islice
from typing import Any

import orjson

from mailspool.errors import KeyNotFound
from mailspool.feedback import keyed, layout
from mailspool.message import bare_local_part
from mailspool.spool.records import timestamp
from mailspool.stores.base import Store

__all__ = ["Reason", "Suppression", "SuppressionList", "now_iso", "shared_suppressions"]

log = logging.getLogger("mailspool.suppression")

_CACHE_LIMIT = 200_000  # entries kept before the cache starts over (bounded memory)
_TENANTS_LISTED = 10_000  # tenants whose folder's emptiness is kept before it starts over
_IMPORT_THREADS = 8
_IMPORT_CHUNK = 1000  # entries read ahead of the writes: an import's memory is bounded


class Reason(StrEnum):
    """Why an address is suppressed (**contract**: the ``reason`` of ``--json``)."""

    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"


def now_iso() -> str:
    """Now to the second, as a suppression entry's ``since``."""
    return timestamp(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Suppression:
    """One suppressed address: why, since when (ISO 8601, UTC), and the provider's words."""

    address: str
    reason: Reason
    since: str
    diagnostic: str = ""
    tenant: str | None = None  # suppressed for this SES tenant only; None: the account

    def as_dict(self) -> dict[str, str]:
        found = {**asdict(self), "reason": str(self.reason)}
        if self.tenant is None:
            del found["tenant"]
        return found

    def encode(self) -> bytes:
        return orjson.dumps(self.as_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str) -> Suppression:
        """Read a record (store object, import line); ValueError names ``source`` and field."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a suppression entry must be a JSON object")
        address = data.get("address")
        if not isinstance(address, str):
            raise ValueError(f"{source}: field 'address' must be a string")
        try:
            reason = Reason(data.get("reason", Reason.MANUAL))
        except ValueError:
            choices = ", ".join(r.value for r in Reason)
            raise ValueError(f"{source}: field 'reason' must be one of {choices}") from None
        since = data.get("since") or now_iso()
        diagnostic = data.get("diagnostic") or ""
        if not isinstance(since, str) or not isinstance(diagnostic, str):
            raise ValueError(f"{source}: fields 'since' and 'diagnostic' must be strings")
        return cls(layout.normalize_address(address), reason, since, diagnostic)

    @classmethod
    def decode(cls, data: bytes, source: str) -> Suppression:
        try:
            return cls.from_dict(orjson.loads(data), source)
        except orjson.JSONDecodeError as err:
            raise ValueError(f"{source}: not JSON ({err})") from None


class SuppressionList:
    """The store's suppression list, with an in-process cache; safe across threads."""

    def __init__(
        self, store: Store, *, cache_ttl: float = 30.0, listing_ttl: float | None = None
    ) -> None:
        self.store = store
        self.cache_ttl = cache_ttl
        self.listing_ttl = cache_ttl if listing_ttl is None else listing_ttl
        self._cache: dict[str, tuple[float, Suppression | None]] = {}
        self._listed_until = 0.0  # whether the list is empty is known until then
        self._empty = False
        self._keyed_until = 0.0  # whether suppression/keyed/ holds entries is known until then
        self._has_keyed = False
        self._erasure_key: bytes | None = None
        self._tenants_listed: dict[str, tuple[float, bool]] = {}  # until, holds entries
        self._lock = threading.Lock()
        self._listing_lock = threading.Lock()

    # -- checks (the send path) -----------------------------------------------------------

    def get(self, address: str, tenant: str | None = None) -> Suppression | None:
        """The entry for ``address`` for the account, else (``tenant`` given) for that
        tenant, or None; one read at most per ``cache_ttl`` for each."""
        now = time.monotonic()
        asked = _asked(address, tenant)
        cached = self._cache.get(asked)  # as written in the batch: no parsing when cached
        if cached is not None and cached[0] > now:
            return cached[1]
        if self._is_empty(now):
            return None
        if bare_local_part(address) is not None:
            return None  # no domain ("django"): no provider reports one, no key holds one
        normalized = layout.normalize_address(address)
        entry = self._read(normalized) or self._read_legacy(address) or self._read_keyed(normalized)
        if entry is None and tenant is not None:
            entry = self._read_tenant(normalized, tenant, now) or self._read_keyed(
                normalized, tenant
            )
        self._remember(_asked(normalized, tenant), entry, now, asked)
        return entry

    def is_suppressed(self, address: str, tenant: str | None = None) -> bool:
        return self.get(address, tenant) is not None

    def split(
        self, recipients: Iterable[str], tenant: str | None = None
    ) -> tuple[list[str], dict[str, Suppression]]:
        """Recipients to send to (for ``tenant``, if any), and the suppressed ones with
        their entries."""
        allowed: list[str] = []
        suppressed: dict[str, Suppression] = {}
        for recipient in recipients:
            entry = self.get(recipient, tenant)
            if entry is None:
                allowed.append(recipient)
            else:
                suppressed[recipient] = entry
        return allowed, suppressed

    # -- changes ------------------------------------------------------------------------

    def add(
        self,
        address: str,
        reason: Reason = Reason.MANUAL,
        *,
        diagnostic: str = "",
        since: str | None = None,
        tenant: str | None = None,
    ) -> Suppression:
        """Suppress ``address`` (for ``tenant`` only, if given); an address already
        suppressed keeps its first entry (one written under an older form included)."""
        entry = Suppression(
            layout.normalize_address(address), reason, since or now_iso(), diagnostic, tenant
        )
        if tenant is not None:
            return self.put(entry, replace=False)
        return self._read_legacy(address) or self.put(entry, replace=False)

    def put(self, entry: Suppression, *, replace: bool = True) -> Suppression:
        """Write an entry (``replace=False``: only where none is); the entry in force."""
        if entry.tenant is None:
            key = layout.suppression_key(entry.address)
        else:
            key = layout.tenant_suppression_key(entry.tenant, entry.address)
        if replace:
            self.store.put(key, entry.encode())
        elif not self.store.put_new(key, entry.encode()):
            entry = self._read_key(key, entry.address, entry.tenant) or entry
        self._remember(_asked(entry.address, entry.tenant), entry, time.monotonic())
        return entry

    def remove(self, address: str, tenant: str | None = None) -> bool:
        """Let ``address`` receive mail again (from ``tenant``, when given: its own entry
        only); False if it was not suppressed."""
        normalized = layout.normalize_address(address)
        if tenant is not None:
            return self._remove_tenant(normalized, tenant)
        present = False
        for key in (layout.suppression_key(normalized), *layout.legacy_suppression_keys(address)):
            present = self._read_key(key, normalized) is not None or present
            self.store.delete(key)
        erasure_key = keyed.erasure_key(self.store)
        if erasure_key is not None:
            key = keyed.keyed_suppression_key(keyed.keyed_digest(erasure_key, normalized))
            present = self.store.exists(key) or present
            self.store.delete(key)
        self._remember(normalized, None, time.monotonic())
        return present

    def keep_keyed(self, address: str, erased_at: str) -> tuple[str, list[str]] | None:
        """Replace ``address``'s entries (the account's and each tenant's) by ones under
        its keyed hash (``mailspool erase``): the hash and the keys removed; None (nothing
        written) if it was not suppressed."""
        normalized = layout.normalize_address(address)
        keys = [layout.suppression_key(normalized), *layout.legacy_suppression_keys(address)]
        found = [(key, entry) for key in keys if (entry := self._read_key(key, normalized))]
        tenants = self._tenant_entries(normalized)
        any_found = bool(found or tenants)
        store = self.store
        erasure_key = keyed.made_erasure_key(store) if any_found else keyed.erasure_key(store)
        if erasure_key is None:
            return None
        digest = keyed.keyed_digest(erasure_key, normalized)
        if not any_found and not store.exists(keyed.keyed_suppression_key(digest)):
            return None
        for _, entry in [*found[:1], *tenants]:
            kept = keyed.KeyedEntry(digest, str(entry.reason), entry.since, erased_at)
            store.put(keyed.keyed_suppression_key(digest, entry.tenant), kept.encode())
        for key, _ in [*found, *tenants]:
            store.delete(key)
        self._remember(normalized, None, time.monotonic())
        return digest, [key for key, _ in [*found, *tenants]]

    def import_entries(
        self, entries: Iterable[Suppression], *, replace: bool = False, chunk: int = _IMPORT_CHUNK
    ) -> int:
        """Write many entries, several at once (S3 latency); the number written. They are
        taken ``chunk`` at a time, each chunk written before the next is read, so a file
        of millions of lines is streamed in bounded memory."""
        written = 0
        source = iter(entries)
        with ThreadPoolExecutor(_IMPORT_THREADS, thread_name_prefix="mailspool-import") as pool:
            while part := list(islice(source, chunk)):
                written += sum(1 for _ in pool.map(lambda e: self.put(e, replace=replace), part))
        return written

    # -- reading the whole list (operators, never the send path) ----------------------------

    def entries(self, tenant: str | None = None) -> Iterator[Suppression]:
        """Every entry of the account (or of ``tenant``), in key order (not address
        order); unreadable ones are logged."""
        folder = layout.SUPPRESSION if tenant is None else layout.tenant_suppression_prefix(tenant)
        for key in self.store.keys(folder):
            if not key.endswith(".json") or key.startswith(keyed.KEYED):
                continue  # a keyed entry names no address
            if tenant is None and key.startswith(layout.TENANT_SUPPRESSION):
                continue
            try:
                yield replace(Suppression.decode(self.store.get(key), key), tenant=tenant)
            except KeyNotFound:
                continue  # removed while listing
            except ValueError as err:
                log.warning("skipped an unreadable suppression entry: %s", err)

    def count(self) -> int:
        """Every entry: the account's, the erased addresses' and each tenant's."""
        return sum(1 for key in self.store.keys(layout.SUPPRESSION) if key.endswith(".json"))

    # -- helpers ------------------------------------------------------------------------

    def _read(self, normalized: str) -> Suppression | None:
        return self._read_key(layout.suppression_key(normalized), normalized)

    def _read_tenant(self, normalized: str, tenant: str, now: float) -> Suppression | None:
        """The tenant's own entry: no read while its folder is empty (one listing per
        ``listing_ttl``), so a tenant without a list of its own costs no read a recipient."""
        listed = self._tenants_listed.get(tenant)
        if listed is None or listed[0] <= now:
            folder = layout.tenant_suppression_prefix(tenant)
            listed = (
                time.monotonic() + self.listing_ttl,
                any(True for _ in self.store.keys(folder)),
            )
            with self._lock:
                if len(self._tenants_listed) >= _TENANTS_LISTED:
                    self._tenants_listed.clear()
                self._tenants_listed[tenant] = listed
        if not listed[1]:
            return None
        key = layout.tenant_suppression_key(tenant, normalized)
        return self._read_key(key, normalized, tenant)

    def _tenant_entries(self, normalized: str) -> list[tuple[str, Suppression]]:
        """Every tenant's entry for an address (``erase``: one listing of the tenants'
        entries, rare and never on the send path)."""
        digest = layout.address_digest(normalized)
        tail = f"/{digest[:3]}/{digest}.json"
        found = []
        for key in self.store.keys(layout.TENANT_SUPPRESSION):
            tenant = layout.tenant_of_key(key)
            if tenant is not None and key == layout.tenant_suppression_key(tenant, normalized):
                entry = self._read_key(key, normalized, tenant)
                if entry is not None:
                    found.append((key, entry))
            elif key.endswith(tail):
                log.warning("%s: not under a tenant's name, left", key[:300])
        return found

    def _remove_tenant(self, normalized: str, tenant: str) -> bool:
        key = layout.tenant_suppression_key(tenant, normalized)
        present = self._read_key(key, normalized, tenant) is not None
        self.store.delete(key)
        erasure_key = keyed.erasure_key(self.store)
        if erasure_key is not None:
            digest = keyed.keyed_digest(erasure_key, normalized)
            kept = keyed.keyed_suppression_key(digest, tenant)
            present = self.store.exists(kept) or present
            self.store.delete(kept)
        self._remember(_asked(normalized, tenant), None, time.monotonic())
        return present

    def _read_keyed(self, normalized: str, tenant: str | None = None) -> Suppression | None:
        """The entry kept under the keyed hash of an erased address (for the account, or
        for ``tenant``), if any."""
        if not self._any_keyed(time.monotonic()):
            return None
        if self._erasure_key is None:  # a damaged key raises StoreError: nothing is sent
            self._erasure_key = keyed.erasure_key(self.store)  # until it can be checked
        if self._erasure_key is None:
            return None
        digest = keyed.keyed_digest(self._erasure_key, normalized)
        key = keyed.keyed_suppression_key(digest, tenant)
        try:
            entry = keyed.KeyedEntry.decode(self.store.get(key), key)
        except KeyNotFound:
            return None
        except ValueError as err:
            log.warning("unreadable keyed suppression entry counts as suppressed: %s", err)
            note = f"unreadable entry: {err}"
            return Suppression(normalized, Reason.MANUAL, now_iso(), note, tenant)
        reason = entry.reason if entry.reason in Reason.__members__.values() else Reason.MANUAL
        return Suppression(normalized, Reason(reason), entry.since, "erased address", tenant)

    def _any_keyed(self, now: float) -> bool:
        """Whether any erased address is suppressed: one listing per ``listing_ttl``."""
        if self._keyed_until <= now:
            with self._listing_lock:
                if self._keyed_until <= now:
                    self._has_keyed = any(True for _ in self.store.keys(keyed.KEYED))
                    self._keyed_until = time.monotonic() + self.listing_ttl
        return self._has_keyed

    def _read_legacy(self, address: str) -> Suppression | None:
        """The entry an older version wrote for ``address``, if any (see the docstring)."""
        normalized = layout.normalize_address(address)
        for key in layout.legacy_suppression_keys(address):
            entry = self._read_key(key, normalized)
            if entry is not None:
                return entry
        return None

    def _read_key(self, key: str, normalized: str, tenant: str | None = None) -> Suppression | None:
        try:
            data = self.store.get(key)
        except KeyNotFound:
            return None
        try:
            return replace(Suppression.decode(data, key), tenant=tenant)
        except ValueError as err:
            log.warning("unreadable suppression entry counts as suppressed: %s", err)
            note = f"unreadable entry: {err}"
            return Suppression(normalized, Reason.MANUAL, now_iso(), note, tenant)

    def _is_empty(self, now: float) -> bool:
        """An empty list needs no read per recipient; asked at most once per listing_ttl,
        by one thread while the others wait for its answer (one listing, not one each)."""
        if self._listed_until > now:
            return self._empty
        with self._listing_lock:
            if self._listed_until <= now:
                self._empty = not any(True for _ in self.store.keys(layout.SUPPRESSION))
                self._listed_until = time.monotonic() + self.listing_ttl
            return self._empty

    def _remember(
        self, normalized: str, entry: Suppression | None, now: float, spelling: str = ""
    ) -> None:
        """Cache an answer under the normalized address and the spelling asked for.

        A change made here (no ``spelling``) empties the cache, so that no other spelling
        of the address keeps the old answer: changes are rare, checks are many."""
        answer = (now + self.cache_ttl, entry)
        with self._lock:
            if not spelling or len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
                self._tenants_listed.clear()
                self._listed_until = self._keyed_until = 0.0
            self._cache[normalized] = answer
            if spelling:
                self._cache[spelling] = answer


def _asked(address: str, tenant: str | None) -> str:
    """The cache's key of a question: an address, for the account or for a tenant."""
    return address if tenant is None else f"{tenant}\0{address}"


_lists: dict[int, SuppressionList] = {}
_lists_lock = threading.Lock()


def shared_suppressions(store: Store) -> SuppressionList:
    """One suppression list (and its cache) per store object in this process."""
    with _lists_lock:
        found = _lists.get(id(store))
        if found is None or found.store is not store:
            found = _lists[id(store)] = SuppressionList(store)
        return found
