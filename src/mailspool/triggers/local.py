"""The local trigger: ``mailspool worker`` polls a store's ``queue/`` and delivers.

Listing a spool folder costs microseconds, so a short poll (50 ms by default) notices a
new batch as fast as a file-system watch would, works the same on every store, and
doubles as the sweeper: a batch whose worker died is claimable again (the file store's
lock dies with its process; an S3 lease expires) and the next listing picks it up.

Both move the scheduled batches that are due into ``queue/`` (``spool.schedule``): a
drain before each round, a running worker when the first one falls due, and at least once
a second for those scheduled meanwhile, so a scheduled e-mail goes within a second of its
time. Both also move the batches a request wrote to the fallback store while the store was
failing back into the store (``mailspool.producer.fallback``): before a drain, and about once a
second while running.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from mailspool.config import default_of
from mailspool.delivery.worker import BatchReport, BatchStatus, Worker
from mailspool.producer.fallback import recover_fallback_for
from mailspool.spool import layout
from mailspool.spool.queue_scan import queued_batches
from mailspool.spool.schedule import promote_due
from mailspool.stores.base import Store

__all__ = [
    "DrainReport",
    "drain",
    "drain_webhooks",
    "pending_batches",
    "promote",
    "recover",
    "run_forever",
]

log = logging.getLogger("mailspool.worker")
_RECOVER_INTERVAL = 1.0
_PROMOTE_INTERVAL = 1.0  # a batch scheduled meanwhile, due sooner than the next known


def recover(store: Store, fallback_base: str | None = None) -> int:
    """Move the store's fallback batches into it; log and go on if that fails.
    ``fallback_base``: the ``fallback_store`` setting, which the entry point (the CLI,
    the management command) loaded; None: its default folder."""
    try:
        base = fallback_base or default_of("fallback_store")
        return recover_fallback_for(store, base)
    except Exception as err:
        log.error("cannot recover fallback batches for %s: %s", store.url, err)
        return 0


def promote(store: Store) -> float | None:
    """Move the due scheduled batches into ``queue/``; when the next is due (None: none,
    or the store failed, logged)."""
    try:
        return promote_due(store)[1]
    except Exception as err:
        log.error("cannot move due scheduled batches in %s: %s", store.url, err)
        return None


def pending_batches(store: Store) -> list[str]:
    """Keys of the batches in ``queue/``, oldest first; anything else found there is set
    aside (``spool.queue_scan``) and never stops the worker."""
    return [info.key for info in queued_batches(store)]


@dataclass(slots=True)
class DrainReport:
    """Totals of a drain; ``batches`` has one report per batch run."""

    batches: list[BatchReport] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(report.sent for report in self.batches)

    @property
    def failed(self) -> int:
        return sum(report.failed for report in self.batches)

    @property
    def continued(self) -> int:
        return sum(report.continued for report in self.batches)

    @property
    def quarantined(self) -> int:
        """Batch files found unreadable (moved to ``quarantine/``)."""
        return sum(1 for report in self.batches if report.status is BatchStatus.QUARANTINED)

    @property
    def paused(self) -> bool:
        return any(report.status is BatchStatus.PAUSED for report in self.batches)

    @property
    def delivered(self) -> int:
        """Batches this drain ran, each once: a batch another process held, or had
        finished before this one's claim (``ran_here`` False), is that one's to report."""
        return len({report.key for report in self.batches if report.ran_here})

    def summary(self, store: str) -> str:
        """The line a drain ends with, quarantined files included."""
        return (
            f"drained {self.delivered} batch(es): {self.sent} sent, {self.failed} failed, "
            f"{self.quarantined} quarantined (store {store})"
        )

    @property
    def errors(self) -> list[BatchReport]:
        """The batch runs that raised (``error`` says why); their batches wait in ``queue/``."""
        return [report for report in self.batches if report.status is BatchStatus.ERROR]


def drain(
    worker: Worker,
    *,
    parallel_batches: int | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
    fallback_base: str | None = None,
    part: tuple[int, int] = (0, 1),
) -> DrainReport:
    """Deliver every pending batch, continuations included, then return.

    Batches held by another worker are left to it; a batch is tried once per drain
    unless it finished (its continuations are new batches and are tried too).
    ``part``: (i, n) for process i of n draining the same store: each look at the queue
    takes only its part of the batches listed (see ``fair_part``).
    """
    report = DrainReport()
    recover(worker.store, fallback_base)
    tried: set[str] = set()
    width = parallel_batches or max(2, worker.options.concurrency)
    worker.store.reserve_connections(width + worker.options.concurrency)
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="mailspool-batch") as pool:
        while not worker.stopping.is_set() and not report.paused:
            promote(worker.store)
            keys = [key for key in pending_batches(worker.store) if key not in tried]
            if not keys:
                break
            keys = fair_part(keys, *part)
            tried.update(keys)
            futures = [(key, pool.submit(worker.deliver, key)) for key in keys]
            for key, future in futures:
                batch_report = _outcome(key, future)
                report.batches.append(batch_report)
                if on_batch is not None:
                    on_batch(batch_report)
    drain_webhooks(worker)
    return report


class _OutboxDrains:
    """The webhook outbox drained beside the batches of ``run_forever``: one drain at a
    time, at most every ``_OUTBOX_INTERVAL`` seconds (each drain lists the outbox)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.running: Future[None] | None = None
        self.due = 0.0

    def start(self, pool: ThreadPoolExecutor) -> None:
        if self.worker.webhooks is None or time.monotonic() < self.due:
            return
        if self.running is None or self.running.done():
            self.running = pool.submit(drain_webhooks, self.worker)
            self.due = time.monotonic() + _OUTBOX_INTERVAL


_OUTBOX_INTERVAL = 2.0


def drain_webhooks(worker: Worker, *, stop: Callable[[], bool] | None = None) -> None:
    """Deliver the webhook outbox once, if there is one (until ``stop()``); a failure
    is logged, never raised: the e-mails' delivery does not wait on the application."""
    if worker.webhooks is None:
        return
    try:
        worker.webhooks.drain(stop=stop)
    except Exception as err:
        log.error("webhook outbox: %s: %s", type(err).__name__, err)


#: A look at the queue takes this fraction of the process's share of what it lists.
LOOKS_PER_SHARE = 4


def fair_part(keys: list[str], index: int, count: int) -> list[str]:
    """Process ``index`` of ``count``'s part of the batches one look listed: a quarter
    (``LOOKS_PER_SHARE``) of its ``1/count`` share, at least one, starting at its own
    offset. Without it, the first process to look claims every batch at once (one per
    batch thread) while the others are still busy, and delivers them alone; with whole
    shares, a process slowed down (the SMTP server on its core) finishes last. Taking a
    little at each look, the faster process comes back sooner and takes more."""
    if count <= 1:
        return keys
    start = index * len(keys) // count
    return (keys[start:] + keys[:start])[: math.ceil(len(keys) / (count * LOOKS_PER_SHARE))]


def _listed(store: Store) -> list[str]:
    """The pending batches; none while the store cannot be listed (logged: the worker
    keeps trying)."""
    try:
        return pending_batches(store)
    except Exception as err:
        log.error("cannot list %s: %s", store, err)
        return []


def _outcome(key: str, future: Future[BatchReport]) -> BatchReport:
    """The batch's report; a run that raised becomes an ``error`` report, logged, so one
    failing batch never hides the others' outcomes."""
    try:
        return future.result()
    except Exception as err:
        log.error("batch %s: %s: %s", key, type(err).__name__, err)
        return BatchReport(
            key,
            layout.batch_id_from_key(key),
            BatchStatus.ERROR,
            error=f"{type(err).__name__}: {err}",
        )


def run_forever(
    worker: Worker,
    *,
    poll_interval: float = 0.05,
    parallel_batches: int | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
    fallback_base: str | None = None,
    pause: float = 60.0,
) -> None:
    """Deliver batches as they arrive until ``worker.stop()``; then finish what is in flight.

    When the provider pauses sending (a batch ends ``paused``), no batch is started for
    ``pause`` seconds rather than trying every batch again at every poll.
    """
    width = parallel_batches or max(2, worker.options.concurrency)
    worker.store.reserve_connections(width + worker.options.concurrency)
    running: dict[str, Future[BatchReport]] = {}
    lock = threading.Lock()
    paused_until = 0.0

    def finished(key: str, future: Future[BatchReport]) -> None:
        nonlocal paused_until
        with lock:
            running.pop(key, None)
        if future.exception() is not None:
            log.error("batch %s: %s", key, future.exception())
            return
        report = future.result()
        if report.status is BatchStatus.PAUSED:
            log.error("sending paused by the provider: waiting %.0f s", pause)
            paused_until = time.monotonic() + pause
        if on_batch is not None:
            on_batch(report)

    recovered_at = promoted_at = 0.0
    next_due: float | None = None
    outbox = _OutboxDrains(worker)
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="mailspool-batch") as pool:
        while not worker.stopping.is_set():
            if time.monotonic() - recovered_at >= _RECOVER_INTERVAL:
                recover(worker.store, fallback_base)
                recovered_at = time.monotonic()
            if time.monotonic() - promoted_at >= _PROMOTE_INTERVAL or (
                next_due is not None and time.time() >= next_due
            ):
                next_due, promoted_at = promote(worker.store), time.monotonic()
            keys = [] if time.monotonic() < paused_until else _listed(worker.store)
            for key in keys:
                with lock:
                    if key in running or len(running) >= width:
                        continue
                    future = pool.submit(worker.deliver, key)
                    running[key] = future
                future.add_done_callback(functools.partial(finished, key))
            outbox.start(pool)
            worker.stopping.wait(poll_interval)
        with lock:
            left = list(running.values())
        wait(left)
