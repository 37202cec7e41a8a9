"""Listing ``queue/``: the batches to deliver, and whatever else landed there set aside.

Anything under ``queue/`` that is not a batch key (``layout.classify_queue_key``) never
stops a drain, ``status``, the sweeper or the Lambda handler:

- a key the store can address but that is no batch (``queue/sub/x.json``, a name without
  ``.json``) is moved to ``quarantine/`` with an ``.error.json`` naming it and the rule,
  by whoever lists the queue to deliver. A nested copy of a batch is never delivered in
  that batch's place: it would share its ledger and its claim;
- a key no store addresses (``..``, a leading dot, an empty segment, NUL, a backslash,
  a control character: S3 holds any key) cannot be read or moved through the store: it
  is logged once per process, saying what to do, and otherwise left alone.
"""

from __future__ import annotations

import logging
import threading

from mailspool.spool import layout
from mailspool.spool.layout import QueueKey
from mailspool.spool.quarantine import quarantine
from mailspool.spool.records import QuarantineError, timestamp
from mailspool.stores.base import ObjectInfo, Store

__all__ = ["queued_batches"]

log = logging.getLogger("mailspool.worker")

_reported: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def queued_batches(store: Store, *, set_aside: bool = True) -> list[ObjectInfo]:
    """The batches in ``queue/``: priority batches first (``layout.priority_batch_id``:
    priority e-mails the priority transport could not take), then the others, each
    oldest first. With ``set_aside`` (the default), keys
    that are no batch but can be moved go to ``quarantine/``; read-only callers
    (``status``) pass False and only report them."""
    batches = []
    for info in store.list(layout.QUEUE):
        kind = layout.classify_queue_key(info.key)
        if kind is QueueKey.BATCH:
            batches.append(info)
        elif kind is QueueKey.FOREIGN and set_aside:
            _set_aside(store, info.key)
        else:
            _report_once(store, info.key, kind)
    batches.sort(key=lambda info: not layout.is_priority_batch(info.key))  # stable
    return batches


def _set_aside(store: Store, key: str) -> None:
    reason = f"not a batch: {layout.queue_key_rule()}"
    error = QuarantineError(key, f"{key}: {reason}", reason, None, None, timestamp())
    try:
        target = quarantine(
            store, key, error, data=store.get(key), target=layout.foreign_quarantine_key(key)
        )
        log.warning("moved %r to %r: %s", key, target, reason)
    except Exception as err:  # never let one stray key stop the queue: say so, go on
        _report_once(store, key, QueueKey.FOREIGN, f"cannot quarantine it: {err}")


def _report_once(store: Store, key: str, kind: QueueKey, detail: str = "") -> None:
    with _reported_lock:
        if (store.url, key) in _reported:
            return
        _reported.add((store.url, key))
    advice = (
        "no store operation can read it; remove it with the storage's own tools"
        if kind is QueueKey.UNREADABLE
        else "it is not a batch; the worker moves it to quarantine/"
    )
    log.warning(
        "left %r in %s: %s (%s)%s",
        key,
        store.url,
        advice,
        layout.queue_key_rule(),
        f"; {detail}" if detail else "",
    )
