"""``send_mail``: the article's ``wp_mail``, for Python.

One function for every e-mail, priority or not. Priority mail is sent at once over a
pooled connection; deferred mail joins the request scope, or is written at once outside
one, with the scope's bounded write and fallback store either way
(``mailspool.producer.scope.enqueue``). It returns True for "sent" or "queued": for
deferred mail, True means queued, not sent.

A priority e-mail the priority transport cannot take for now (connection refused,
timeout, TLS failure, 4xx, throttling: ``TransientError``) is written to the store as a
priority batch, which the worker delivers before any other, and ``send_mail`` returns
True as for a send (``MAILSPOOL_PRIORITY_OUTAGE=raise`` raises instead). Only a refusal
of the e-mail itself (``PermanentError``: 5xx, refused recipients) or bad input
(``InvalidMessage``) raises. Each priority e-mail sent at once (or refused) is counted
by one append to the store's tally after the send (``spool.tally.record_priority``),
and, with webhooks on, its ``email.sent`` or ``email.failed`` event (one more write).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mailspool.config import Settings
from mailspool.errors import PermanentError, TransientError
from mailspool.feedback.settings import unsubscribe_links
from mailspool.headers import HeaderFields, HeaderInput, parse_headers
from mailspool.message import Attachment, Message, split_addresses
from mailspool.policy.allowed_senders import AllowedSenders
from mailspool.policy.screen import screen_priority
from mailspool.producer.budget import priority_budget
from mailspool.producer.classify import Decision, classify
from mailspool.producer.fallback import Written, write_messages_to
from mailspool.producer.idempotency import forget
from mailspool.producer.later import Later, When, accept_key, write_later
from mailspool.producer.scope import current_scope, enqueue, settings_here
from mailspool.spool import tally
from mailspool.spool.sealed_store import sealed
from mailspool.stores.open_stores import shared_store
from mailspool.transports.base import Receipt
from mailspool.transports.deliverable import check_deliverable
from mailspool.transports.open_transports import shared_tenant_transport
from mailspool.webhook_rules import EventType
from mailspool.webhooks.events import priority_event
from mailspool.webhooks.setup import outbox_for

__all__ = [
    "AttachmentInput",
    "PriorityResult",
    "send_mail",
    "send_message",
    "send_now",
    "send_priority",
]

log = logging.getLogger("mailspool")

AttachmentInput = str | Path | tuple[str, bytes] | tuple[str, bytes, str] | Attachment


def send_mail(
    to: str | Sequence[str],
    subject: str,
    message: str,
    headers: HeaderInput = None,
    attachments: str | Iterable[AttachmentInput] | None = None,
    *,
    priority: bool | None = None,
    bypass_suppression: bool = False,
    unsubscribe: bool = False,
    send_at: When | None = None,
    expires_at: When | None = None,
    key: str | None = None,
    tenant: str | None = None,
) -> bool:
    """Send an e-mail now (priority) or queue it (deferred); True when sent or queued,
    False when ``key`` was already accepted (nothing is queued then).

    ``headers`` is a wp_mail-style string (``"From: ...\\r\\nCc: ..."``), a list of
    such lines or a mapping. The body is HTML unless a Content-Type header says
    text/plain. ``attachments`` are paths (or a newline-separated string of paths) or
    ``(filename, bytes[, content type])`` tuples. ``priority=None`` lets the header
    ``X-Mailspool-Priority``, the markers and the default decide (see ``classify``).
    Suppressed recipients are never sent to; ``bypass_suppression=True`` lets a priority
    e-mail through anyway (a password reset). Deferred e-mails carry one-click
    List-Unsubscribe headers when the unsubscribe URL is set; ``unsubscribe=True`` adds
    them to a priority e-mail too. ``send_at`` (a timezone-aware datetime, or seconds
    from now) keeps the e-mail until then, and makes a priority e-mail deferred;
    ``expires_at`` (the same) fails it, unsent, if its turn comes later; ``key`` is
    accepted once within ``MAILSPOOL_IDEMPOTENCY_WINDOW`` and lets ``mailspool.cancel``
    find it. ``tenant`` is the SES tenant that sends it (``TenantName``; other
    transports ignore it). Raises ``InvalidMessage`` for bad input, or for what
    the transport that will deliver the e-mail is known to refuse (``transports.deliverable``):
    nothing is written. For a priority e-mail, ``PermanentError`` when the e-mail itself
    is refused; a transport that cannot take it for now (``TransientError``) has it
    queued at the front instead, and True is returned (``MAILSPOOL_PRIORITY_OUTAGE``).
    """
    settings = settings_here()
    fields = parse_headers(headers)
    decision = classify(
        to=split_addresses(to, "to"),
        subject=subject,
        priority=priority,
        header=fields.priority,
        subject_marker=settings.subject_marker,
        marker_recipient=settings.marker_recipient,
        default=settings.default_priority,
    )
    email = _message(decision, message, fields, attachments, tenant)
    later = Later(send_at, expires_at, key)
    priority = decision.priority and later.send_at is None
    check_deliverable(email, settings.priority_transport if priority else settings.transport)
    return send_message(
        email,
        priority=priority,
        settings=settings,
        bypass_suppression=bypass_suppression,
        unsubscribe=unsubscribe,
        later=later,
    )


def _message(
    decision: Decision,
    body: str,
    fields: HeaderFields,
    attachments: str | Iterable[AttachmentInput] | None,
    tenant: str | None,
) -> Message:
    """The e-mail ``send_mail`` was given, with the recipients and subject classified
    (built once: a ``Message`` checks its fields when it is made)."""
    is_html = (fields.content_type or "text/html") == "text/html"
    if isinstance(attachments, str):
        attachments = [line for line in attachments.replace("\r\n", "\n").split("\n") if line]
    return Message(
        to=decision.to,
        subject=decision.subject,
        html=body if is_html else None,
        text=None if is_html else body,
        sender=fields.sender,
        cc=fields.cc,
        bcc=fields.bcc,
        reply_to=fields.reply_to,
        charset=fields.charset or "utf-8",
        headers=fields.extra,
        attachments=tuple(Attachment.coerce(a) for a in attachments or ()),
        tenant=tenant,
    )


def send_message(
    message: Message,
    *,
    priority: bool,
    settings: Settings | None = None,
    bypass_suppression: bool = False,
    unsubscribe: bool = False,
    later: Later | None = None,
) -> bool:
    """Send a ready Message now, or queue it in the current scope (or at once outside one,
    with the bounded write and the fallback store). ``later`` (a ``send_at``,
    ``expires_at`` or ``key``) writes it at once as a batch of its own
    (``mailspool.producer.later``); a ``send_at`` makes it deferred. True when sent or
    queued; False when its key was already accepted (nothing queued)."""
    settings = settings_here(settings)
    if later:
        return _send_later(message, later, priority, settings, bypass_suppression, unsubscribe)
    if priority:
        send_priority(
            message,
            settings=settings,
            bypass_suppression=bypass_suppression,
            unsubscribe=unsubscribe,
        )
        return True
    enqueue([message], settings)
    return True


@dataclass(frozen=True, slots=True)
class PriorityResult:
    """A priority e-mail's fate: ``receipt`` when sent at once; else ``queued`` (where
    its batch went) and ``outage`` (why the priority transport did not take it)."""

    receipt: Receipt | None = None
    queued: Written | None = None
    outage: str | None = None


def send_priority(
    message: Message,
    *,
    settings: Settings | None = None,
    bypass_suppression: bool = False,
    unsubscribe: bool = False,
) -> PriorityResult:
    """``send_now``, except that a transient failure of the priority transport queues
    the e-mail at the front of the queue (unless ``MAILSPOOL_PRIORITY_OUTAGE=raise``).
    Raises ``PermanentError`` when the e-mail itself is refused, and ``StoreError`` when
    neither the store nor its fallback takes it."""
    settings = settings_here(settings)
    prepared = _prepare(message, settings, bypass_suppression, unsubscribe)
    try:
        return PriorityResult(receipt=_transmit(prepared, settings))
    except TransientError as err:
        if settings.priority_outage == "raise":
            raise
        outage = f"{type(err).__name__}: {err}"
    # The e-mail as it would have gone (sender, suppressed recipients off, unsubscribe
    # headers): the worker delivers it before any bulk mail.
    written = write_messages_to(
        sealed(shared_store(settings.store), settings.encryption_key),
        [prepared.message],
        settings,
        front=True,
    )
    log.warning(
        "priority transport %s cannot take an e-mail for now (%s): queued in %s as %s",
        settings.priority_transport,
        outage,
        written.store,
        ", ".join(written.keys),
    )
    return PriorityResult(queued=written, outage=outage)


def _send_later(
    message: Message,
    later: Later,
    priority: bool,
    settings: Settings,
    bypass_suppression: bool,
    unsubscribe: bool,
) -> bool:
    """A priority e-mail without ``send_at`` goes now, once its key (if any) is accepted;
    anything else is written as a batch of its own."""
    scope = current_scope()
    store = (
        scope.store
        if scope is not None
        else sealed(shared_store(settings.store), settings.encryption_key)
    )
    if not (priority and later.send_at is None):
        return write_later(store, message, later, settings)
    if later.key is not None and not accept_key(store, later.key, "", settings):
        return False
    try:
        send_priority(
            message,
            settings=settings,
            bypass_suppression=bypass_suppression,
            unsubscribe=unsubscribe,
        )
    except BaseException:
        if later.key is not None:  # not sent: the key may be used again
            forget(store, later.key)
        raise
    return True


def send_now(
    message: Message,
    *,
    settings: Settings | None = None,
    bypass_suppression: bool = False,
    unsubscribe: bool = False,
) -> Receipt:
    """Deliver through the priority transport, reusing its open connections; raise on
    failure (``SenderNotAllowed`` when From or Sender is not in MAILSPOOL_ALLOWED_SENDERS).

    Suppressed recipients are taken off first (``PermanentError`` if none is left) unless
    ``bypass_suppression`` (a password reset, say, may be let through). ``unsubscribe``
    adds the one-click List-Unsubscribe headers, as deferred mail always has them.
    The e-mail's fate (sent, or refused with a ``PermanentError``) is counted in the
    store (``spool.tally.record_priority``); ``send_priority`` queues it instead of
    raising a ``TransientError``."""
    settings = settings_here(settings)
    return _transmit(_prepare(message, settings, bypass_suppression, unsubscribe), settings)


@dataclass(frozen=True, slots=True)
class _Prepared:
    message: Message
    suppressed: dict[str, str]


def _prepare(
    message: Message, settings: Settings, bypass_suppression: bool, unsubscribe: bool
) -> _Prepared:
    if message.sender is None:
        message = replace(message, sender=settings.sender)
    AllowedSenders.parse(settings.allowed_senders).check(message)
    suppressed: dict[str, str] = {}
    if not bypass_suppression:
        message, suppressed = screen_priority(
            message, sealed(shared_store(settings.store), settings.encryption_key)
        )
    links = unsubscribe_links(settings) if unsubscribe else None
    if links is not None:
        message = links.add_headers(message)
    return _Prepared(message, suppressed)


def _transmit(prepared: _Prepared, settings: Settings) -> Receipt:
    """Send, then count the outcome with one append (never raised: the e-mail is gone
    or refused either way); a transient failure is not counted here (it is queued)."""
    message = prepared.message
    transport = shared_tenant_transport(settings.priority_transport, settings.ses_tenants)
    priority_budget(settings, transport).acquire(message.recipient_count)
    try:
        receipt = transport.send(message)
    except PermanentError as err:
        refused_id = f"<refused-{uuid.uuid4().hex}>"
        _count(settings, refused_id, message, sent=False, reason=str(err))
        raise
    sent_id = receipt.message_id or f"<{uuid.uuid4().hex}>"
    _count(settings, sent_id, message, sent=True, via=receipt.via)
    if not prepared.suppressed:
        return receipt
    return replace(receipt, refused={**prepared.suppressed, **receipt.refused})


def _count(
    settings: Settings,
    message_id: str,
    message: Message,
    *,
    sent: bool,
    reason: str = "",
    via: str | None = None,
) -> None:
    """The outcome in the tally (with its SES tenant, for ``status --tenants``), and its
    webhook event when webhooks are on (To only)."""
    recipients = [*message.to, *message.cc, *message.bcc]
    try:
        store = sealed(shared_store(settings.store), settings.encryption_key)
        tally.record_priority(
            store, message_id, recipients, sent=sent, reason=reason, via=via, tenant=message.tenant
        )
        outbox = outbox_for(settings, store)
        if outbox is not None:
            kind = EventType.SENT if sent else EventType.FAILED
            event = priority_event(kind, message_id, message.to, reason=reason or None, via=via)
            outbox.add([event])
    except Exception as err:  # counting never turns a send into a failure
        log.error("cannot count a priority e-mail in %s: %s", settings.store, err)
