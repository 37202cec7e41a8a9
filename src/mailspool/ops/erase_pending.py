"""Cancel the unsent e-mails to an erased address: ``queue/`` and ``scheduled/``.

Each batch that holds the address is rewritten under its claim, as ``cancel`` moves one
(``ops.cancel.unsent_batch``): only while no worker holds it and nothing of it was sent
(its ledger is empty), so no index the ledger counts by can shift. An e-mail sent to the
address alone is removed from the batch (a batch left with none is deleted); an e-mail
with other recipients loses that recipient and keeps its content for them. A batch a
worker is delivering, or has started, is left as it is and reported: the address leaves
it with the rest of ``done/`` once it is finished, by running ``erase`` again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from mailspool.errors import InvalidRecord, KeyNotFound, StoreError, UnsafeKey
from mailspool.ops.cancel import unsent_batch
from mailspool.ops.erase_match import AddressMatch
from mailspool.ops.erase_redact import ERASED_EMAIL, redact_bytes
from mailspool.ops.erase_walk import read_ahead
from mailspool.spool import layout
from mailspool.spool.json_fields import json_object
from mailspool.spool.schedule import SCHEDULED, due_of
from mailspool.stores.base import Store

__all__ = ["PendingOutcome", "erase_pending"]

_FOLDERS = (layout.QUEUE, SCHEDULED)


@dataclass(slots=True)
class PendingOutcome:
    """Keys rewritten and removed, e-mails cancelled, batches left (being delivered),
    and the blobs the cancelled e-mails referred to."""

    rewritten: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    cancelled: int = 0
    blobs: list[str] = field(default_factory=list)


def erase_pending(store: Store, match: AddressMatch, limit: int) -> PendingOutcome:
    """Take the address out of every batch not yet sent (see the module docstring)."""
    outcome = PendingOutcome()
    batches = dict(_pending(store))
    infos = [info for prefix in _FOLDERS for info in store.list(prefix) if info.key in batches]
    for info, read in read_ahead(store, infos, limit):
        if read is None:
            outcome.too_large.append(info.key)
            continue
        if isinstance(read, StoreError) and not isinstance(read, KeyNotFound):
            outcome.unparsed.append(info.key)  # a link or device: the worker sets it aside
            continue
        if not isinstance(read, bytes) or not match.found_in(read):
            continue
        with unsent_batch(store, batches[info.key]) as unsent:
            if not unsent:
                outcome.skipped.append(info.key)
                continue
            _rewrite(store, info.key, match, limit, outcome)
    return outcome


def _pending(store: Store) -> Iterator[tuple[str, str]]:
    """(key, batch id) of each batch in ``queue/`` and ``scheduled/``."""
    for key in store.keys(layout.QUEUE):
        try:
            yield key, layout.queued_batch_id(key)
        except UnsafeKey:
            continue  # not a batch: the worker sets it aside; erase reads it in quarantine
    for key in store.keys(SCHEDULED):
        parsed = due_of(key)
        if parsed is not None:
            yield key, parsed[1]


def _rewrite(
    store: Store, key: str, match: AddressMatch, limit: int, outcome: PendingOutcome
) -> None:
    try:  # read again under the claim: a promotion may have moved it meanwhile
        data = store.get_at_most(key, limit, "the erasure read limit")
    except KeyNotFound:
        return
    redacted = redact_bytes(data, match)
    outcome.cancelled += redacted.emptied
    outcome.blobs += redacted.blobs
    if redacted.unparsed:
        outcome.unparsed.append(key)
    try:
        document: dict[str, Any] | None = json_object(redacted.data, key)
    except InvalidRecord:  # scrubbed as bytes above: kept as such
        document = None
    emails = document.get("emails") if document is not None else None
    if document is not None and isinstance(emails, list):
        document["emails"] = [e for e in emails if e != ERASED_EMAIL]
        if not document["emails"]:
            store.delete(key)
            outcome.removed.append(key)
            return
        redacted.data = orjson.dumps(document)
    store.put(key, redacted.data)
    outcome.rewritten.append(key)
