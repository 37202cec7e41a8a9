"""One way to build a worker from settings, for every trigger.

``mailspool worker`` (poll, drain, SQS), ``manage.py mailspool_worker``, ``mailspool
demo`` and the Lambda handlers all get their worker from ``build_worker``, so they agree
on what the settings mean:

- the ``WorkerOptions`` that are settings (concurrency, attempts, first retry delay,
  default sender) come from ``Settings``; a trigger adds only its own (the Lambda's
  claim time and deadline margin);
- the rate is ``MAILSPOOL_MAX_RATE`` when set, else the transport's own
  (``Transport.send_rate``: SES's MaxSendRate, asked once); the worker takes
  ``(1 - MAILSPOOL_PRIORITY_SHARE) / MAILSPOOL_RATE_SENDERS`` of it, the rest is for
  priority mail and the other senders of the account;
- the provider's 24-hour quota (``Transport.send_quota``: SES's ``GetAccount``) is
  asked when the worker is built; deferred mail then waits for the window near it
  (``delivery.quota``);
- the unsubscribe links (``MAILSPOOL_UNSUBSCRIBE_URL`` and its secret) and the bounce
  and complaint rate guard (``MAILSPOOL_RATE_GUARD``) are the same for every trigger;
- a pooled transport gets one connection per sender thread: the SMTP pool's and SES's
  HTTP pool's ``max_connections`` follow ``MAILSPOOL_CONCURRENCY`` unless the URL sets
  it; the S3 store's pool is sized when a drain or a running worker starts
  (``Store.reserve_connections``).

``open_worker`` opens the store and the transport too, and closes all three at the end.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mailspool import tracing
from mailspool.config import Settings
from mailspool.delivery.steps import (
    SendStep,
    SuppressionScreen,
    UnsubscribeHeaders,
    VerpEnvelope,
    WebhookEvents,
)
from mailspool.delivery.traced import TracedSends
from mailspool.delivery.worker import Worker, WorkerOptions
from mailspool.feedback.settings import rate_guard, unsubscribe_links, verp_for
from mailspool.feedback.suppression import shared_suppressions
from mailspool.policy.guards import Guards
from mailspool.spool.sealed_store import sealed
from mailspool.stores import open_store
from mailspool.stores.base import Store
from mailspool.transports import open_transport
from mailspool.transports.base import Transport
from mailspool.transports.failover_url import format_chain, is_failover, parse_chain
from mailspool.webhooks.setup import deliverer_for, outbox_for

__all__ = [
    "STOP_SIGNALS",
    "build_worker",
    "delivery_url",
    "effective_rate",
    "open_delivery_transport",
    "open_worker",
    "poll_interval_for",
    "stop_on_signals",
]

log = logging.getLogger("mailspool.worker")


def build_worker(
    settings: Settings,
    store: Store,
    transport: Transport,
    *,
    owner: str | None = None,
    steps: Iterable[SendStep] = (),
    executor: Executor | None = None,
    **options: Any,
) -> Worker:
    """A worker for ``store`` and ``transport`` as ``settings`` say, its steps around
    each send those the settings ask for (``send_steps``) and then ``steps``; ``options``
    are ``WorkerOptions`` fields a trigger sets itself (e.g. ``lease_ttl``)."""
    worker = Worker(
        store,
        transport,
        options=WorkerOptions(
            **(settings.worker_options() | {"guards": Guards.from_settings(settings)} | options)
        ),
        max_rate=effective_rate(settings, transport),
        owner=owner,
        executor=executor,
        steps=[*send_steps(settings, store, transport), *steps],
        guard=rate_guard(settings, store),
        quota=transport.send_quota(),
        tenants=settings.ses_tenants,
    )
    worker.webhooks = deliverer_for(settings, store)
    return worker


def send_steps(settings: Settings, store: Store, transport: Transport) -> list[SendStep]:
    """The steps the settings ask for, in order: a span per send when the program has
    imported the OpenTelemetry API (``delivery.traced``, ``tracing.available``), the suppression screen of ``store``'s list,
    ``List-Unsubscribe`` headers when the unsubscribe URL is set, the signed VERP envelope
    sender when a bounce address is set (SMTP only), and the webhook events of each batch
    run when a webhook URL is set."""
    steps: list[SendStep] = [TracedSends(transport.url)] if tracing.available() else []
    steps.append(SuppressionScreen(shared_suppressions(store)))
    links = unsubscribe_links(settings)
    if links is not None:
        steps.append(UnsubscribeHeaders(links))
    verp = verp_for(settings, transport.url)
    if verp is not None:
        steps.append(VerpEnvelope(verp))
    outbox = outbox_for(settings, store)
    if outbox is not None:
        steps.append(WebhookEvents(outbox))
    return steps


def effective_rate(settings: Settings, transport: Transport) -> float | None:
    """The worker's part of the rate (None: unlimited): ``MAILSPOOL_MAX_RATE`` if set,
    else the transport's own limit, less the priority share
    (``MAILSPOOL_PRIORITY_SHARE``), divided among the ``MAILSPOOL_RATE_SENDERS``."""
    rate = settings.max_rate if settings.max_rate is not None else transport.send_rate()
    if rate is None:
        return None
    return rate * (1.0 - settings.priority_share) / settings.rate_senders


def open_delivery_transport(settings: Settings) -> Transport:
    """The worker's transport, with one pooled connection per e-mail in flight (and,
    for SES, each tenant's configuration set: ``MAILSPOOL_SES_TENANTS``)."""
    url = delivery_url(settings)
    if settings.ses_tenants and urlsplit(url).scheme.lower() == "ses":
        return open_transport(url, tenants=settings.ses_tenants)
    return open_transport(url)


def delivery_url(settings: Settings) -> str:
    """``MAILSPOOL_TRANSPORT`` with ``max_connections`` = the concurrency added, for a
    pooled transport whose URL leaves it out (each member's, in a failover chain)."""
    url = settings.transport
    if not is_failover(url):
        return _pooled(url, settings.concurrency)
    chain = parse_chain(url)
    members = tuple(_pooled(member, settings.concurrency) for member in chain.members)
    return format_chain(replace(chain, members=members))


#: The transports that keep a pool of open connections (``max_connections``).
_POOLED_SCHEMES = frozenset({"smtp", "smtps", "ses"})


def _pooled(url: str, concurrency: int) -> str:
    """``url`` with a connection pool as large as the worker's concurrency, unless its
    transport keeps none or the URL sets its own ``max_connections``."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _POOLED_SCHEMES or "max_connections" in parse_qs(parts.query):
        return url
    separator = "&" if parts.query else ("" if url.endswith("?") else "?")
    return f"{url}{separator}max_connections={concurrency}"


@contextmanager
def open_worker(settings: Settings, **options: Any) -> Iterator[Worker]:
    """Open the store (checked) and the transport, build the worker; close all three.
    ``options`` are ``WorkerOptions`` fields the trigger sets itself (as for
    ``build_worker``); a trigger adds steps (metrics, a progress bar) to ``worker.steps``."""
    with ExitStack() as stack:
        store = stack.enter_context(sealed(open_store(settings.store), settings.encryption_key))
        store.check()
        transport = stack.enter_context(open_delivery_transport(settings))
        worker = build_worker(settings, store, transport, **options)
        stack.callback(worker.close)
        yield worker


def poll_interval_for(store: Store) -> float:
    """Seconds between looks at ``queue/``: listing a bucket is a paid request, a folder
    is free."""
    return 5.0 if store.url.startswith("s3://") else 0.05


#: The signals that stop a worker: it finishes its e-mails in flight first.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def stop_on_signals(worker: Worker) -> None:
    """SIGTERM and Ctrl-C finish the e-mails in flight, then stop the worker."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning("signal %d: finishing the e-mails in flight, then stopping", signum)
        worker.stop()

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked in a child until now
