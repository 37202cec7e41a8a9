"""The sweeper: re-drives batches whose event was lost or whose retries ran out, so
that no batch is silently left behind.

Run on a schedule (the template: every minute), it first moves the scheduled batches
that are due into ``queue/`` (``spool.schedule``: a listing that stops at the first batch
not yet due); each move is an object-created event, so the handler sends them at once.
Then it lists ``queue/`` and delivers
every batch older than ``MAILSPOOL_SWEEP_AFTER`` seconds (default 300) right there,
through the same ``Worker.deliver`` as the handler, within the invocation's time. A
batch whose claim is held is being delivered by someone else and is left alone; one
not reached before the deadline waits for the next run.

Its report counts the e-mails still waiting after ``MAILSPOOL_ALERT_AFTER`` seconds
(default 3600) as ``late``: the template's alarm fires on that number. With webhooks on,
it then delivers the outbox's due events while time is left, so their retries do not
wait for the next e-mail to wake the deliver function.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mailspool.aws.lambda_handler import LambdaContext, remaining_time
from mailspool.aws.runtime import deadline_margin, open_runtime
from mailspool.config import default_of
from mailspool.delivery.worker import BatchStatus, Deadline, Worker
from mailspool.spool import layout
from mailspool.spool.ledger import read_entries
from mailspool.spool.queue_scan import queued_batches
from mailspool.spool.records import BatchOutline
from mailspool.spool.schedule import promote_due
from mailspool.stores.base import Store
from mailspool.triggers.local import drain_webhooks

__all__ = ["SweepReport", "sweep", "sweeper_handler"]

log = logging.getLogger("mailspool.aws")

SWEEP_AFTER: float = default_of("sweep_after")
ALERT_AFTER: float = default_of("alert_after")


@dataclass(slots=True)
class SweepReport:
    """What one sweep saw and did. ``late``: e-mails waiting longer than ``alert_after``."""

    queued: int = 0
    promoted: int = 0
    redriven: list[str] = field(default_factory=list)
    held: int = 0
    left: int = 0
    sent: int = 0
    pending: int = 0
    late: int = 0
    oldest_age: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sweep(
    store: Store,
    worker: Worker,
    *,
    older_than: float = SWEEP_AFTER,
    alert_after: float = ALERT_AFTER,
    deadline: Deadline | None = None,
    now: float | None = None,
) -> SweepReport:
    """Deliver the batches queued for longer than ``older_than``; count what waits."""
    report = SweepReport()
    moment = time.time() if now is None else now
    report.promoted = len(promote_due(store, moment)[0])
    for key, age in _queued(store, moment):
        if age < older_than:
            continue
        if deadline is not None and deadline() < 2 * worker.options.deadline_margin:
            report.left += 1
            continue
        result = worker.deliver(key, deadline=deadline)
        if result.status is BatchStatus.HELD:
            report.held += 1
        else:
            report.redriven.append(key)
            report.sent += result.sent
    for key, age in _queued(store, time.time() if now is None else moment):
        waiting = _waiting(store, key)
        report.queued += 1
        report.pending += waiting
        if waiting and age >= alert_after:
            report.late += waiting
        if waiting:
            report.oldest_age = max(report.oldest_age or 0.0, age)
    return report


def sweeper_handler(event: Mapping[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """The scheduled Lambda entry point: sweep, log the report as one JSON line, return it.
    ``context`` None (a local call): no deadline."""
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    runtime = open_runtime()
    remaining = remaining_time(context)
    request_id = str(getattr(context, "aws_request_id", "") or "local")
    margin = deadline_margin(runtime.settings, float("inf") if remaining is None else remaining())
    worker = runtime.worker(margin=margin, owner=f"sweeper:{request_id}")
    try:
        report = sweep(
            runtime.store,
            worker,
            older_than=runtime.settings.sweep_after,
            alert_after=runtime.settings.alert_after,
            deadline=remaining,
        )
        # the outbox's retries come due whether or not mail arrives: the deliver function
        # runs only on new batches, the sweeper every minute
        spare = margin + runtime.settings.webhook_timeout
        drain_webhooks(worker, stop=lambda: remaining is not None and remaining() < spare)
    finally:
        worker.close()
    result = {"event": "sweep", "request_id": request_id, **report.as_dict()}
    result["redriven"] = len(report.redriven)
    log.info(json.dumps(result))
    return result


def _queued(store: Store, now: float) -> list[tuple[str, float]]:
    """Queued batch keys with their age, oldest first."""
    found = []
    for info in queued_batches(store):
        created = layout.id_time(layout.batch_id_from_key(info.key)) or info.modified
        found.append((info.key, max(now - created, 0.0)))
    return found


def _waiting(store: Store, key: str) -> int:
    """E-mails of a queued batch with no outcome in its ledger (0 if it is gone)."""
    try:
        outline = BatchOutline.read(store.get(key))
    except Exception:  # gone since the listing: the worker finished it
        return 0
    total = 0 if outline is None else outline.emails  # unreadable: the worker quarantines it
    return max(total - len(read_entries(store, layout.batch_id_from_key(key))), 0)
