"""Operator actions on a store: list, show and retry failed e-mails; forget old batches."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from mailspool.spool import layout, tally
from mailspool.spool.records import BatchDocument, FailedRecord, timestamp
from mailspool.stores.base import Store

__all__ = ["FailedEmail", "collect_garbage", "list_failed", "retry_failed", "show_failed"]


@dataclass(frozen=True, slots=True)
class FailedEmail:
    """One record of ``failed/`` (the e-mail, why it failed, how often it was tried) and
    its key."""

    key: str
    record: FailedRecord

    @property
    def id(self) -> str:
        """What ``failed show`` and ``failed retry`` take: the key without folder and suffix."""
        return self.key.removeprefix(layout.FAILED).removesuffix(".json")


def list_failed(store: Store) -> list[FailedEmail]:
    return [_load(store, key) for key in store.keys(layout.FAILED) if key.endswith(".json")]


def show_failed(store: Store, failed_id: str) -> FailedEmail:
    """One failed e-mail by its id (``<batch>.<index>``), or KeyNotFound."""
    return _load(store, f"{layout.FAILED}{failed_id}.json")


def _load(store: Store, key: str) -> FailedEmail:
    return FailedEmail(key, FailedRecord.decode(store.get(key), source=key))


def retry_failed(store: Store, failed: Iterable[FailedEmail]) -> list[str]:
    """Re-queue failed e-mails as new batches (one per meta), then drop their records.

    The new batch is written before any record is removed: a crash in between can
    re-queue an e-mail twice, never lose one. A partial failure (some recipients
    refused) is re-sent to the refused recipients only. The suppressions that the
    refusal itself made are lifted first (``feedback.refusals.lift_refusals``): the
    operator retries because the address works again.
    """
    from mailspool.feedback.refusals import lift_refusals

    groups: dict[bytes, tuple[Mapping[str, Any], list[FailedEmail]]] = {}
    for item in failed:
        meta = item.record.meta
        group = orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)
        groups.setdefault(group, (meta, []))[1].append(item)
    written = []
    for meta, items in groups.values():
        batch_id = layout.new_batch_id()
        document = BatchDocument(
            id=batch_id,
            created_at=timestamp(),
            meta=_retry_meta(meta, items),
            emails=[_retry_email(item.record) for item in items],
        )
        key = layout.queue_key(batch_id)
        for item in items:  # before the batch exists: no worker screens it out meanwhile
            lift_refusals(store, item.record)
        store.put(key, document.encode())
        written.append(key)
        for item in items:
            store.delete(item.key)
    return written


def _retry_meta(meta: Mapping[str, Any], items: list[FailedEmail]) -> Mapping[str, Any]:
    if any(item.record.partial for item in items):
        # Refused recipients are re-sent as To only; cc/bcc already got the e-mail.
        return {k: v for k, v in meta.items() if k not in ("cc", "bcc")}
    return meta


def _retry_email(record: FailedRecord) -> Mapping[str, Any]:
    if record.partial:
        return {**record.email, "to": record.recipients}
    return record.email


def collect_garbage(store: Store, *, older_than: float, now: float | None = None) -> list[str]:
    """Remove finished batches (``done/`` and their ledgers) older than ``older_than`` s.

    A batch still in ``queue/`` as well (a crash interrupted its move to ``done/``) is
    left alone: without its ledger the copy in ``queue/`` would be sent again. The
    worker's next look at it removes that copy; a later ``gc`` the rest."""
    now = time.time() if now is None else now
    removed = []
    for info in list(store.list(layout.DONE)):
        batch_id = layout.batch_id_from_key(info.key)
        created = layout.id_time(batch_id) or info.modified
        if now - max(created, 0) < older_than or now - info.modified < older_than:
            continue
        if store.exists(layout.queue_key(batch_id)):
            continue
        tally.record_forgotten(store, batch_id)
        store.delete_log(layout.ledger_key(batch_id))
        store.delete(info.key)
        removed.append(info.key)
    return removed
