"""What a Lambda container keeps between invocations, and the worker each one uses.

The store and the transport (their boto3 clients and connection pools) are opened once
per container through ``stores.open_stores`` and ``transports.open_transports``; settings are read from the environment at
each invocation (cheap, and a changed variable takes effect without a cold start).
A worker is made per invocation, because its deadline margin depends on the time the
invocation was given; it is closed before the invocation returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mailspool.config import Settings
from mailspool.delivery.factory import build_worker, delivery_url
from mailspool.delivery.worker import Worker
from mailspool.spool.sealed_store import sealed
from mailspool.stores.base import Store
from mailspool.stores.open_stores import shared_store
from mailspool.transports.base import Transport
from mailspool.transports.open_transports import shared_transport

__all__ = ["LEASE_TTL", "SWEEPERS", "Runtime", "deadline_margin", "open_runtime"]

#: Seconds a claim lasts unless renewed: a killed invocation's batch is free again after it.
LEASE_TTL = 120.0
_MAX_MARGIN = 5.0
#: Sweeper invocations at once (the template's ``ReservedConcurrentExecutions: 1``): each
#: takes the same part of the rate as an invocation of the deliver function.
SWEEPERS = 1


@dataclass(slots=True)
class Runtime:
    """Settings, store and transport for one invocation."""

    settings: Settings
    store: Store
    transport: Transport

    def worker(self, *, margin: float, owner: str) -> Worker:
        """A worker for one invocation, taking its part of the account's rate
        (``MAILSPOOL_MAX_RATE``, else SES's MaxSendRate, asked once per container): the
        priority share set aside, the rest divided among ``MAILSPOOL_RATE_SENDERS``
        (the deliver function's reserved concurrency) invocations and the sweeper."""
        settings = replace(self.settings, rate_senders=self.settings.rate_senders + SWEEPERS)
        return build_worker(
            settings,
            self.store,
            self.transport,
            owner=owner,
            lease_ttl=LEASE_TTL,
            deadline_margin=margin,
        )


def open_runtime(*, store: Store | None = None, transport: Transport | None = None) -> Runtime:
    """The runtime from ``MAILSPOOL_*``; a store or transport given is used as is."""
    settings = Settings.load()
    if transport is None:
        transport = shared_transport(delivery_url(settings))
    return Runtime(
        settings=settings,
        store=store
        if store is not None
        else sealed(shared_store(settings.store), settings.encryption_key),
        transport=transport,
    )


def deadline_margin(settings: Settings, remaining: float) -> float:
    """Seconds before the end at which to stop sending and hand the rest on.

    ``MAILSPOOL_DEADLINE_MARGIN`` if set; else a quarter of the time given, at most 5 s:
    enough to finish the sends in flight, record them and write the continuation batch
    (a few S3 requests), even when an invocation starts with only 2 s left.
    """
    if settings.deadline_margin is not None:
        return settings.deadline_margin
    return min(_MAX_MARGIN, max(remaining, 0.0) / 4)
