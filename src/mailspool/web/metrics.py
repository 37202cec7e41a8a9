"""Prometheus metrics (``prometheus_client``).

The store's gauges are computed at each scrape from ``collect_status``, so they equal
``mailspool status --json``:

- ``mailspool_emails{state="pending|sent|failed|quarantined|scheduled|cancelled"}``,
  and ``priority_sent|priority_failed``: priority e-mails sent at once, or refused,
  that were never in a batch; the states add up to ``status``'s ``total``;
- ``mailspool_oldest_pending_seconds``;
- ``mailspool_batches{state="pending|done"}`` and ``mailspool_refused_recipients``;
- ``mailspool_quota_headroom`` (0 to 1) and ``mailspool_quota_used_recipients``: the
  provider's 24-hour quota as a worker last saw it (``spool.quota_record``);
- ``mailspool_suppressed_addresses``, ``mailspool_bounce_rate`` and
  ``mailspool_complaint_rate`` (as ``status --json``'s ``suppressed`` and rates);
- ``mailspool_webhook_events{state="pending|failed"}`` and
  ``mailspool_webhook_oldest_seconds`` (as ``status --json``'s ``webhooks``).

A running worker (``mailspool worker --metrics-port P``) adds what only it sees:
``mailspool_sends_total{outcome="sent|transient|permanent|paused"}`` (one per e-mail,
those of an SES bulk call each with its own outcome) and the histogram
``mailspool_send_seconds`` of each call to the transport.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mailspool.delivery.steps import Call, SendResult, SendStep
from mailspool.errors import SendingPaused, TransientError
from mailspool.feedback.rates import Rates, collect_rates
from mailspool.ops.status import Status, collect_status
from mailspool.spool.pauses import Pause, read_pauses
from mailspool.spool.quota_record import QuotaRecord, read_quota
from mailspool.stores.base import Store
from mailspool.transports.base import Receipt
from mailspool.webhooks.outbox import OutboxStats, outbox_stats

__all__ = [
    "CONTENT_TYPE",
    "EMAIL_STATES",
    "RecentRates",
    "SendMetrics",
    "StoreCollector",
    "render_metrics",
    "start_worker_metrics",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
EMAIL_STATES = (
    "pending",
    "sent",
    "failed",
    "quarantined",
    "scheduled",
    "cancelled",
    "priority_sent",
    "priority_failed",
)


class RecentRates:
    """``collect_rates``, computed again at most every ``ttl`` seconds: the rates move
    slowly, and counting them reads the newest ledgers and lists the suppression list,
    which a page view or a scrape need not pay each time."""

    def __init__(self, store: Store, *, sends: int = 1000, ttl: float = 60.0) -> None:
        self.store = store
        self.sends = sends
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: tuple[float, Rates] | None = None

    def get(self) -> Rates:
        with self._lock:
            if self._value is not None and time.monotonic() - self._value[0] < self.ttl:
                return self._value[1]
        rates = collect_rates(self.store, sends=self.sends)
        with self._lock:
            self._value = (time.monotonic(), rates)
        return rates

    def forget(self) -> None:
        """Count again at the next ``get`` (the list was just changed)."""
        with self._lock:
            self._value = None


class StoreCollector(Collector):
    """The store's counts, read at each scrape (the rates through ``RecentRates``)."""

    def __init__(self, store: Store, rates: RecentRates | None = None) -> None:
        self.store = store
        self.rates = rates or RecentRates(store)

    def collect(self) -> Iterator[Metric]:
        status = collect_status(self.store)
        paused = pause_metrics(read_pauses(self.store))
        quota = quota_metrics(read_quota(self.store))
        hooks = outbox_metrics(outbox_stats(self.store, now=time.time()))
        return iter(
            [*status_metrics(status), *rate_metrics(self.rates.get()), *paused, *hooks, *quota]
        )


def outbox_metrics(stats: OutboxStats) -> list[Metric]:
    """The webhook outbox (as ``status --json``'s ``webhooks``)."""
    events = GaugeMetricFamily(
        "mailspool_webhook_events", "Webhook events in the outbox by state", labels=["state"]
    )
    events.add_metric(["pending"], float(stats.pending))
    events.add_metric(["failed"], float(stats.failed))
    oldest = GaugeMetricFamily(
        "mailspool_webhook_oldest_seconds",
        "Age of the oldest webhook event not yet delivered (0 when none waits)",
        value=stats.oldest_age or 0.0,
    )
    return [events, oldest]


def quota_metrics(record: QuotaRecord | None) -> list[Metric]:
    """The provider's 24-hour quota as a worker last saw it (none before one did)."""
    if record is None:
        return []
    return [
        GaugeMetricFamily(
            "mailspool_quota_headroom",
            "Share of the provider's 24-hour quota (SES Max24HourSend) still free, 0 to 1",
            value=record.headroom,
        ),
        GaugeMetricFamily(
            "mailspool_quota_used_recipients",
            "Recipients counted against the 24-hour quota",
            value=record.used,
        ),
    ]


def pause_metrics(pauses: list[Pause]) -> list[Metric]:
    """Whether a worker's transport is down, and since when (``spool.pauses``)."""
    now = time.time()
    down = GaugeMetricFamily(
        "mailspool_transport_paused_seconds",
        "Seconds since a worker's transport went down (0 when none is paused)",
        value=max((now - p.since.timestamp() for p in pauses), default=0.0),
    )
    following = GaugeMetricFamily(
        "mailspool_transport_next_try_seconds",
        "Seconds until the next probe of a paused transport (0 when none is paused)",
        value=max(min((p.next_try.timestamp() - now for p in pauses), default=0.0), 0.0),
    )
    return [down, following]


def rate_metrics(rates: Rates) -> list[Metric]:
    return [
        GaugeMetricFamily(
            "mailspool_suppressed_addresses",
            "Addresses on the suppression list",
            value=float(rates.suppressed),
        ),
        GaugeMetricFamily(
            "mailspool_bounce_rate",
            "Hard bounces over the last sends (SES reviews an account at 0.05)",
            value=rates.bounce_rate,
        ),
        GaugeMetricFamily(
            "mailspool_complaint_rate",
            "Complaints over the last sends (SES reviews an account at 0.001)",
            value=rates.complaint_rate,
        ),
    ]


def status_metrics(status: Status) -> list[Metric]:
    counts: dict[str, Any] = status.as_dict()
    emails = GaugeMetricFamily(
        "mailspool_emails", "E-mails in the store by state (as status --json)", labels=["state"]
    )
    for state in EMAIL_STATES:
        emails.add_metric([state], float(counts.get(state) or 0))
    age = status.oldest_pending_age
    batches = GaugeMetricFamily("mailspool_batches", "Batches by state", labels=["state"])
    batches.add_metric(["pending"], float(status.batches_pending))
    batches.add_metric(["done"], float(status.batches_done))
    return [
        emails,
        GaugeMetricFamily(
            "mailspool_oldest_pending_seconds",
            "Age of the oldest pending e-mail (0 when none is pending)",
            value=0.0 if age is None else age,
        ),
        batches,
        GaugeMetricFamily(
            "mailspool_refused_recipients",
            "Recipients refused while the others got the e-mail",
            value=float(status.refused_recipients),
        ),
    ]


def render_metrics(store: Store, rates: RecentRates | None = None) -> bytes:
    """The Prometheus text of the store's gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, rates))
    return generate_latest(registry)


class SendMetrics(SendStep):
    """A step that counts each call to the transport by outcome and times it; the send
    path is the same with or without it (``delivery.steps``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, text: str, *labels: str) -> Counter:
            return Counter(name, text, list(labels), registry=registry)

        self.sends = counter("mailspool_sends", "Calls to the transport by outcome", "outcome")
        self.latency = Histogram(
            "mailspool_send_seconds", "Seconds per call to the transport", registry=registry
        )
        for outcome in ("sent", "transient", "permanent", "paused"):
            self.sends.labels(outcome)
        self.sent_via = counter(
            "mailspool_sent_via", "E-mails accepted by each member of a failover chain", "transport"
        )
        self.unanswered = counter(
            "mailspool_sent_after_unanswered",
            "E-mails accepted after a member took their content without answering "
            "(they may have arrived twice; the ledger names the member)",
        )

    def answered(self, call: Call) -> None:
        """One call timed; each e-mail counted with its own outcome (and, through a
        failover chain, the member that accepted it)."""
        self.latency.observe(call.seconds)
        for result in call.results:
            self.sends.labels(_outcome(result)).inc()
            if isinstance(result, Receipt) and result.via is not None:
                self.sent_via.labels(result.via).inc()
                if result.unanswered:
                    self.unanswered.inc()


def _outcome(result: SendResult) -> str:
    if isinstance(result, Receipt):
        return "sent"
    if isinstance(result, SendingPaused):
        return "paused"
    return "transient" if isinstance(result, TransientError) else "permanent"


def start_worker_metrics(store: Store, port: int, host: str = "127.0.0.1") -> SendMetrics:
    """Serve ``/metrics`` for a worker on ``host:port``; returns the step that counts
    its sends, for ``worker.steps``."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    measured = SendMetrics(registry)
    start_http_server(port, addr=host, registry=registry)
    return measured
