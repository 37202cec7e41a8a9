"""E-mails by SES tenant (``emails[].tenant``): pending, sent and failed for each.

Counted from the batch files still on record (``queue/`` and ``done/``) and their
ledgers, the tenant read from each e-mail's own field. Unlike ``status``'s counts this
reads every batch file on record, so its cost follows the store's history (until ``gc``
or a lifecycle rule forgets finished batches): ``mailspool status --tenants`` asks for
it, and the dashboard's overview keeps it for a minute (``RecentTenants``). E-mails
handed to a continuation batch count there; priority e-mails sent at once, which never
were in a batch, count from their tally records (``spool.tally.record_priority`` keeps
the tenant: one short field, read with the records ``trace`` reads). A file that cannot be read is left out, its reason
logged; a tenant field that is not a tenant's name counts as ``(invalid)``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass

from mailspool.errors import MailspoolError
from mailspool.policy.limits import Limits
from mailspool.spool import batch, layout, tally
from mailspool.spool.ledger import ledger_entries
from mailspool.spool.records import LedgerState
from mailspool.stores.base import Store
from mailspool.tenant_options import TENANT_NAME

__all__ = ["NO_TENANT", "RecentTenants", "TenantCounts", "tenant_counts"]

log = logging.getLogger("mailspool.status")

#: The row of e-mails that name no tenant.
NO_TENANT = "(none)"
_INVALID = "(invalid)"
_STATES = {LedgerState.SENT: "sent", LedgerState.FAILED: "failed"}


@dataclass(frozen=True, slots=True)
class TenantCounts:
    """One tenant's e-mails by state."""

    pending: int = 0
    sent: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"pending": self.pending, "sent": self.sent, "failed": self.failed}


def tenant_counts(store: Store, limits: Limits | None = None) -> dict[str, TenantCounts]:
    """Each tenant's counts, by name; ``NO_TENANT`` only when some e-mail names one."""
    limit = (limits or Limits()).batch_bytes
    counts: dict[str, Counter[str]] = {}
    seen: set[str] = set()
    for folder in (layout.QUEUE, layout.DONE):
        for info in store.list(folder):
            batch_id = layout.batch_id_from_key(info.key)
            as_queued = layout.QUEUE + info.key.removeprefix(folder)
            if not layout.is_batch_key(as_queued) or batch_id in seen:
                continue  # a batch in both folders (a crash between two steps) counts once
            seen.add(batch_id)
            _count_batch(store, info.key, batch_id, limit, counts)
    for record in tally.priority_records(store):  # sent at once: no batch, a tally record
        state = "sent" if record.get("sent") == 1 else "failed"
        counts.setdefault(_tenant(record.get("tenant")), Counter())[state] += 1
    if set(counts) == {NO_TENANT}:
        return {}
    return {name: TenantCounts(**counter) for name, counter in sorted(counts.items())}


def _count_batch(
    store: Store, key: str, batch_id: str, limit: int, counts: dict[str, Counter[str]]
) -> None:
    try:
        loaded = batch.decode(store.get_at_most(key, limit, "a batch's size"), source=key)
    except (MailspoolError, ValueError) as err:
        log.warning("left out of the counts by tenant: %s: %s", key, err)
        return
    entries = ledger_entries(store, batch_id)
    for index in range(len(loaded)):
        entry = entries.get(index)
        if entry is not None and entry.state not in _STATES:
            continue  # carried on by a continuation batch: counted there
        state = "pending" if entry is None else _STATES[entry.state]
        counts.setdefault(_tenant(loaded.raw_email(index).get("tenant")), Counter())[state] += 1


def _tenant(value: object) -> str:
    if value is None:
        return NO_TENANT
    return value if isinstance(value, str) and TENANT_NAME.fullmatch(value) else _INVALID


class RecentTenants:
    """``tenant_counts``, counted again at most every ``ttl`` seconds (a page view need
    not read every batch file on record)."""

    def __init__(self, store: Store, *, ttl: float = 60.0) -> None:
        self.store = store
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: tuple[float, dict[str, TenantCounts]] | None = None

    def get(self) -> dict[str, TenantCounts]:
        with self._lock:
            if self._value is not None and time.monotonic() - self._value[0] < self.ttl:
                return self._value[1]
        counts = tenant_counts(self.store)
        with self._lock:
            self._value = (time.monotonic(), counts)
        return counts
