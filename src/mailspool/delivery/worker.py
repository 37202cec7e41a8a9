"""Deliver batches: the one code path that every trigger calls (local worker, Lambda).

For one batch: claim it (no second worker may take it), load and check it, then for
each e-mail not yet in its ledger: wait for the shared rate limit, send, record. An
e-mail is recorded before its sender thread takes the next one, so a crash can repeat
at most the e-mails in flight (one per sender thread), never the whole batch.

Outcomes (no e-mail is lost silently; one bad e-mail never fails its batch):

- transient failure (4xx, throttling, dropped connection): retried later with
  exponential backoff and full jitter, without holding a sender thread, up to
  ``max_attempts``; then the e-mail fails with the last answer, marked retryable;
- permanent failure (5xx, refused recipient, invalid address): that e-mail goes to
  ``failed/`` with the answer and the attempt count; the rest of the batch goes on;
- a file that cannot be read goes to ``quarantine/`` with an error naming the file, the
  e-mail and the field (a link, special file or oversized file is moved there unread);
  the worker goes on;
- an e-mail the guards refuse (a limit, a path attachment, its sender: ``guards``)
  fails for good like a permanent failure;
- the transport is down or throttling (``TransportUnavailable``): every send through it
  pauses with growing delays and no e-mail spends an attempt (``outage``); an e-mail
  ends only on a permanent answer or when its queue lifetime runs out;
- the provider paused sending (SES ``SendingPaused``): the batch stops, nothing fails.

A batch is finished when every e-mail is sent, failed or carried on by a continuation
batch; it then moves to ``done/``, the only place a lifecycle rule may expire. Near a
deadline (Lambda) the worker writes the e-mails still to send as a continuation batch
instead of timing out half-way (no batch size to tune against a timeout); a large batch
can be split the same way so that several workers deliver its parts in parallel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mailspool.config import default_of
from mailspool.delivery.attempt import SendOutcome, SendRules
from mailspool.delivery.batch_run import BatchRun, Deadline, DeliveryContext, backoff
from mailspool.delivery.inflight import BytesInFlight
from mailspool.delivery.outage import TransportGate
from mailspool.delivery.quota import DailyQuota
from mailspool.delivery.ratelimit import RateLimiter
from mailspool.delivery.report import BatchReport, BatchStatus
from mailspool.delivery.steps import OutcomeFunction, SendStep, Steps, SuppressionScreen
from mailspool.delivery.tenant_limits import TenantLimits
from mailspool.errors import UnsafeKey
from mailspool.feedback.rates import RateGuard
from mailspool.feedback.suppression import shared_suppressions
from mailspool.policy.guards import Guards
from mailspool.spool import layout
from mailspool.spool.pauses import Pause, clear_pause, record_pause
from mailspool.spool.quota_record import QuotaRecord, record_quota
from mailspool.spool.records import LedgerEntry
from mailspool.stores.base import Store, default_owner
from mailspool.stores.retry import retry_write
from mailspool.tenant_options import TenantOptions
from mailspool.transports.base import SendQuota, Transport

if TYPE_CHECKING:  # the HTTP client loads only when events are sent (webhooks.setup)
    from mailspool.webhooks.deliver import Deliverer

log = logging.getLogger("mailspool.worker")

__all__ = [
    "BatchReport",
    "BatchStatus",
    "Deadline",
    "OutcomeFunction",
    "SendOutcome",
    "Worker",
    "WorkerOptions",
]


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker delivers. The fields that are settings take their defaults from the
    settings table (``mailspool.config``); ``docs/configuration.md`` explains them."""

    concurrency: int = default_of("concurrency")
    max_attempts: int = default_of("max_attempts")
    retry_base: float = default_of("retry_base")
    retry_cap: float = 60.0
    queue_lifetime: float = default_of("queue_lifetime")
    #: the longest pause between two probes of a transport that is down (``outage``)
    outage_cap: float = 300.0
    lease_ttl: float = 300.0
    #: a batch with more e-mails to send is cut into parts (``delivery.parts``) that
    #: ``split_among`` processes share; None: sent whole
    split_above: int | None = None
    split_among: int = 1
    deadline_margin: float = 5.0
    default_sender: str = default_of("sender")
    #: outcomes that may wait for their ledger write while the senders go on (None: the
    #: concurrency); a crash can then repeat concurrency + ledger_window e-mails
    ledger_window: int | None = None
    #: milliseconds between the ledger's commits (None: the store's ``ledger_commit_ms``);
    #: when set above 0, senders never wait for the ledger and ``ledger_window`` is unused
    ledger_commit_ms: int | None = None
    #: the time that interval is measured in (a test moves its own)
    clock: Callable[[], float] = time.monotonic
    #: the share of the provider's rate and 24-hour quota left to priority mail
    priority_share: float = default_of("priority_share")
    guards: Guards = field(default_factory=Guards)

    @property
    def ledger_entries_in_wait(self) -> int:
        """The ledger's window: ``ledger_window``, by default the concurrency."""
        return self.concurrency if self.ledger_window is None else self.ledger_window


class Worker:
    """Delivers batches from a store through a transport; safe to share across threads.

    It owns the sender pool (``executor``: by default ``options.concurrency`` threads;
    closed by ``close``), the rate limit and the stop signal, and hands each claimed
    batch to a ``BatchRun``.
    """

    def __init__(
        self,
        store: Store,
        transport: Transport,
        *,
        options: WorkerOptions | None = None,
        max_rate: float | None = None,
        owner: str | None = None,
        executor: Executor | None = None,
        steps: Iterable[SendStep] | None = None,
        guard: RateGuard | None = None,
        quota: SendQuota | None = None,
        tenants: Mapping[str, TenantOptions] | None = None,
    ) -> None:
        """``steps`` run around each send (``delivery.steps``); by default the one step
        every worker needs, the suppression screen of ``store``'s list; ``quota``: the
        provider's 24-hour quota as it last said (``delivery.quota``), None for none;
        ``tenants``: each SES tenant's rate and daily cap (``delivery.tenant_limits``)."""
        self.store = store
        self.transport = transport
        self.steps = Steps(
            [SuppressionScreen(shared_suppressions(store))] if steps is None else steps
        )
        self.guard = guard  # bounce and complaint rates: warn, or hold deferred mail
        #: the webhook outbox's deliverer, which the triggers run between batches
        self.webhooks: Deliverer | None = None
        self.options = options or WorkerOptions()
        self.owner = owner or default_owner()
        self.stopping = threading.Event()
        self.limiter = RateLimiter(max_rate, stop=self.stopping)
        self.gate = TransportGate(
            base=self.options.retry_base,
            cap=self.options.outage_cap,
            clock=self.options.clock,
            on_change=self._record_pause,
            name=transport.url,
        )
        self.quota = None if quota is None else self._daily_quota(quota)
        self.tenants = (
            TenantLimits(tenants, clock=self.options.clock, stop=self.stopping) if tenants else None
        )
        # the sender threads hold at most two e-mails at the message limit at once
        self.in_flight = BytesInFlight(2 * self.options.guards.limits.message_bytes)
        self._senders = executor or ThreadPoolExecutor(
            max_workers=self.options.concurrency, thread_name_prefix="mailspool-send"
        )
        self._active: set[str] = set()
        self._active_lock = threading.Lock()
        self._unrecorded: dict[str, list[LedgerEntry]] = {}  # see DeliveryContext

    def stop(self) -> None:
        """Finish the e-mails in flight, record them, and take no more (SIGTERM, Ctrl-C)."""
        self.stopping.set()

    def close(self) -> None:
        self.stop()
        self._senders.shutdown(wait=True)

    def active(self) -> set[str]:
        """Batch keys this worker is delivering right now."""
        with self._active_lock:
            return set(self._active)

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random delay up to base * 2^(attempt-1), capped."""
        return backoff(self.options, attempt)

    def deliver(self, key: str, *, deadline: Deadline | None = None) -> BatchReport:
        """Deliver one batch (``queue/<id>.json``) as far as possible; never raises for
        bad content (it quarantines or fails it). Raises ``StoreError`` if the store
        cannot be reached."""
        try:
            held = BatchReport(key, layout.queued_batch_id(key), BatchStatus.HELD)
        except UnsafeKey as err:
            log.warning("%s", err)
            return BatchReport(key, "", BatchStatus.REFUSED, error=str(err))
        if self.guard is not None and self.guard.holding():
            return BatchReport(key, held.batch_id, BatchStatus.PAUSED, error=self.guard.reason)
        with self._active_lock:
            if key in self._active:
                return held
            self._active.add(key)
        try:
            lease = retry_write(
                lambda: self.store.claim(held.batch_id, self.owner, self.options.lease_ttl),
                f"the claim on {key}",
            )
            if lease is None:
                return held
            try:
                report = BatchRun(self._context(), key, lease, deadline).run()
            finally:
                self.store.release(lease)
        finally:
            with self._active_lock:
                self._active.discard(key)
        self._record_quota()
        return report

    def _context(self) -> DeliveryContext:
        rules = SendRules(
            transport=self.transport,
            limiter=self.limiter,
            stopping=self.stopping,
            max_attempts=self.options.max_attempts,
            default_sender=self.options.default_sender,
            guards=self.options.guards,
            in_flight=self.in_flight,
            gate=self.gate,
            queue_lifetime=self.options.queue_lifetime,
            steps=self.steps,
            quota=self.quota,
            tenants=self.tenants,
        )
        return DeliveryContext(self.store, self._senders, self.options, rules, self._unrecorded)

    def _daily_quota(self, seed: SendQuota) -> DailyQuota:
        """The quota window, asking the transport again when it runs full."""
        return DailyQuota(
            seed,
            reserve_share=self.options.priority_share,
            clock=self.options.clock,
            refresh=self.transport.send_quota,
        )

    def _record_quota(self) -> None:
        """Where ``status``, the dashboard and ``/metrics`` see the headroom."""
        if self.quota is not None:
            figures = self.quota.figures()
            now = datetime.now(UTC)
            record_quota(self.store, QuotaRecord(figures.used, figures.limit, figures.cap, now))

    def _record_pause(self, pause: Pause | None) -> None:
        """Where ``status`` and the dashboard see the outage (``spool.pauses``)."""
        if pause is None:
            clear_pause(self.store, self.owner)
        else:
            record_pause(self.store, self.owner, pause)
