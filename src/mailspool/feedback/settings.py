"""The feedback parts as the settings describe them (``mailspool.config.Settings``)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mailspool.config import Settings
from mailspool.errors import ConfigurationError
from mailspool.feedback.hooks import load_hook
from mailspool.feedback.ingest import FeedbackOptions
from mailspool.feedback.rates import RateGuard, shared_guard
from mailspool.feedback.suppression import shared_suppressions
from mailspool.feedback.unsubscribe import UnsubscribeLinks
from mailspool.feedback.verp import Verp
from mailspool.spool.sealed_store import sealed
from mailspool.stores.base import Store
from mailspool.stores.open_stores import shared_store
from mailspool.tenant_options import tenant_scoped
from mailspool.webhooks.setup import outbox_for

if TYPE_CHECKING:
    from mailspool.feedback.endpoints import FeedbackEndpoints

__all__ = [
    "bounce_verp",
    "endpoints_from_settings",
    "feedback_options",
    "rate_guard",
    "unsubscribe_links",
]


def feedback_options(settings: Settings) -> FeedbackOptions:
    return FeedbackOptions(
        soft_bounce_limit=settings.soft_bounce_limit,
        soft_bounce_window=settings.soft_bounce_days * 86400,
        on_event=load_hook(settings.on_event) if settings.on_event else None,
        webhook_events=settings.webhook_events if settings.webhook_url else frozenset(),
        tenant_scoped=tenant_scoped(settings.ses_tenants),
    )


def unsubscribe_links(settings: Settings) -> UnsubscribeLinks | None:
    """The signer, when both the URL and the secret are set (one alone is an error)."""
    if not settings.unsubscribe_url and not settings.unsubscribe_secret:
        return None
    if not (settings.unsubscribe_url and settings.unsubscribe_secret):
        raise ConfigurationError(
            "set both MAILSPOOL_UNSUBSCRIBE_URL and MAILSPOOL_UNSUBSCRIBE_SECRET, or neither"
        )
    return UnsubscribeLinks(
        settings.unsubscribe_url,
        settings.unsubscribe_secret.encode(),
        settings.unsubscribe_mailto or None,
    )


def bounce_verp(settings: Settings) -> Verp | None:
    """The VERP signer, when the bounce address and its secret are set (one alone is an
    error)."""
    if not settings.bounce_address and not settings.bounce_secret:
        return None
    if not (settings.bounce_address and settings.bounce_secret):
        raise ConfigurationError(
            "set both MAILSPOOL_BOUNCE_ADDRESS and MAILSPOOL_BOUNCE_SECRET, or neither"
        )
    return Verp(settings.bounce_address, settings.bounce_secret.encode())


def verp_for(settings: Settings, transport_url: str) -> Verp | None:
    """The signed bounce addresses when the settings name a bounce address and the
    transport is SMTP (SES reports bounces as events; other transports keep the From);
    the worker's ``VerpEnvelope`` step sets them (``delivery.steps``)."""
    verp = bounce_verp(settings)
    if verp is None or urlsplit(transport_url).scheme.lower() not in ("smtp", "smtps"):
        return None
    return verp


def rate_guard(settings: Settings, store: Store) -> RateGuard | None:
    """The worker's rate guard, when ``MAILSPOOL_RATE_GUARD`` is ``warn`` or ``hold``."""
    if settings.rate_guard == "off":
        return None
    return shared_guard(store, hold=settings.rate_guard == "hold", sends=settings.rate_sends)


def endpoints_from_settings(
    settings: Settings, *, store: Store | None = None, trusted_origin: str | None = None
) -> FeedbackEndpoints:
    """``POST /events/ses`` when topics are allowed, the unsubscribe endpoint when its
    URL and secret are set. ``trusted_origin`` is for tests only (see ``sns``)."""
    # The HTTP side is imported here: a worker or a request needs none of it.
    from mailspool.feedback.endpoints import FeedbackEndpoints
    from mailspool.feedback.http import SesEndpoint
    from mailspool.feedback.sns import SNSVerifier
    from mailspool.feedback.unsubscribe import UnsubscribeEndpoint

    store = store or sealed(shared_store(settings.store), settings.encryption_key)
    ses = None
    if settings.sns_topics:
        verifier = SNSVerifier(settings.sns_topics, trusted_origin=trusted_origin)
        ses = SesEndpoint(store, verifier, options=feedback_options(settings))
    links = unsubscribe_links(settings)
    outbox = outbox_for(settings, store)
    unsubscribe = UnsubscribeEndpoint(links, shared_suppressions(store), outbox) if links else None
    return FeedbackEndpoints(ses, unsubscribe)
