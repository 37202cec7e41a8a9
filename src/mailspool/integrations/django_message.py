"""A Django ``EmailMessage`` as a mailspool ``Message`` (``integrations.django``'s
backend): lazy strings resolved, bodies and alternatives, attachments (tuples, files,
MIME parts), Cc/Bcc/Reply-To, extra headers (Message-ID and Date dropped: mailspool makes
them), django-anymail's ``msg.tags`` and ``msg.metadata``, the SES tenant
(``msg.tenant`` or ``X-Mailspool-Tenant``) and the send-later attributes and headers
(``later_of``), each marker header taken off the e-mail.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.mime.base import MIMEBase
from typing import Any

from django.conf import settings as django_settings
from django.core.mail import EmailMessage
from django.utils.functional import Promise

from mailspool.errors import InvalidMessage
from mailspool.headers import PRIORITY_HEADER
from mailspool.message import Attachment, Message, bare_local_part, split_addresses
from mailspool.producer.later import Later, parse_when

__all__ = ["LATER_HEADERS", "TENANT_HEADER", "later_of", "to_message"]

#: The SES tenant that sends the e-mail (``TenantName``), as ``msg.tenant`` also gives it.
TENANT_HEADER = "X-Mailspool-Tenant"
_DROPPED_HEADERS = frozenset({"message-id", "date"})
#: Headers that carry ``send_at``, ``expires_at`` and ``key``; taken off the e-mail.
LATER_HEADERS = {
    "x-mailspool-send-at": "send_at",
    "x-mailspool-expires-at": "expires_at",
    "x-mailspool-key": "key",
}


def to_message(email: EmailMessage) -> tuple[Message, str | None]:
    """The mailspool form of a Django e-mail, and its ``X-Mailspool-Priority`` value.

    Lazy strings (``gettext_lazy``) are resolved here, wherever Django takes them: the
    subject, the bodies, every address and header, an attachment's name, text and type,
    tags and metadata. Django's own Message-ID and Date are dropped (the worker sets both
    at delivery, and e-mails that differ only in them still share a batch). Raises
    ``InvalidMessage`` for what the model cannot carry (an alternative other than
    text/html).
    """
    headers = {_text(name): _text(value) for name, value in email.extra_headers.items()}
    sender = headers.pop("From", None) or _text(email.from_email) or None
    reply_to = headers.pop("Reply-To", None) or _texts(email.reply_to)
    priority_header: str | None = None
    tenant = getattr(email, "tenant", None)  # ``msg.tenant``; the header wins
    extra: list[tuple[str, str]] = []
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == PRIORITY_HEADER.lower():
            priority_header = str(value).strip().lower()
        elif lowered == TENANT_HEADER.lower():
            tenant = str(value).strip()
        elif lowered in ("to", "cc"):
            raise InvalidMessage(
                f"a {name} header apart from the recipients is not supported", field=name
            )
        elif lowered not in _DROPPED_HEADERS and lowered not in LATER_HEADERS:
            extra.append((name, str(value)))
    text, html = _bodies(email)
    addresses = {  # a bare local part ("django") is taken, as Django's SMTP backend takes it
        "to": split_addresses(_texts(email.to), "to", bare=True),
        "cc": split_addresses(_texts(email.cc), "cc", bare=True),
        "bcc": split_addresses(_texts(email.bcc), "bcc", bare=True),
        "reply_to": split_addresses(reply_to, "reply_to", bare=True),
    }
    sender = str(sender) if sender else None
    every = [*(a for group in addresses.values() for a in group), *([sender] if sender else [])]
    return Message(
        to=addresses["to"],
        cc=addresses["cc"],
        bcc=addresses["bcc"],
        reply_to=addresses["reply_to"],
        sender=sender,
        subject=str(email.subject),
        text=text,
        html=html,
        charset=email.encoding or django_settings.DEFAULT_CHARSET,
        headers=tuple(extra),
        attachments=tuple(_attachment(item, n) for n, item in enumerate(email.attachments)),
        tags=_tags(email),
        metadata=_metadata(email),
        bare=any(bare_local_part(address) is not None for address in every),
        tenant=_text(tenant),
    ), priority_header


def _text(value: Any) -> Any:
    """A lazy string (``gettext_lazy``, ``format_lazy``) as ``str``; anything else as given,
    so that a value of a wrong type is still refused by the model, named."""
    return str(value) if isinstance(value, Promise) else value


def _tags(email: EmailMessage) -> tuple[str, ...]:
    """django-anymail's ``msg.tags``: a list of text labels (lazy ones resolved)."""
    tags = getattr(email, "tags", None) or ()
    if isinstance(tags, str | Promise):
        raise InvalidMessage("msg.tags is a list of tags, not one string", field="tags")
    return tuple(str(tag) if isinstance(tag, Promise) else tag for tag in tags)


def _metadata(email: EmailMessage) -> tuple[tuple[str, str], ...]:
    """django-anymail's ``msg.metadata``: a dict, each key and value as text (a number
    such as an id becomes its decimal text, as anymail sends it to most providers)."""
    metadata = getattr(email, "metadata", None) or {}
    if not isinstance(metadata, Mapping):
        raise InvalidMessage("msg.metadata is a dict", field="metadata")
    return tuple((str(key), str(value)) for key, value in metadata.items())


def _texts(values: Any) -> Any:
    if values is None or isinstance(values, str | Promise):
        return _text(values)
    return [_text(value) for value in values]


def later_of(email: EmailMessage) -> Later:
    """``send_at``, ``expires_at`` and ``key`` from the e-mail's ``mailspool_*``
    attributes, else from its ``X-Mailspool-*`` headers (see the module doc)."""
    given: dict[str, Any] = {}
    for name, value in email.extra_headers.items():
        field = LATER_HEADERS.get(name.lower())
        if field is not None:
            text = str(value).strip()
            given[field] = text if field == "key" else parse_when(text, name)
    for field in ("send_at", "expires_at", "key"):
        value = getattr(email, f"mailspool_{field}", None)
        if value is not None:
            given[field] = value
    return Later(**given)


def _bodies(email: EmailMessage) -> tuple[str | None, str | None]:
    body = str(email.body)  # str() resolves a lazy body too
    text, html = (None, body) if email.content_subtype == "html" else (body, None)
    for content, mimetype in getattr(email, "alternatives", ()) or ():
        if mimetype != "text/html" or html is not None:
            raise InvalidMessage(
                f"alternative {mimetype!r}: mailspool carries one text and one text/html body",
                field="alternatives",
            )
        html = content.decode() if isinstance(content, bytes) else str(content)  # lazy too
    return text, html


def _attachment(item: Any, number: int) -> Attachment:
    if isinstance(item, MIMEBase):
        payload = item.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else str(item.get_payload()).encode()
        filename = item.get_filename() or f"attachment-{number + 1}"
        return Attachment(filename, content, item.get_content_type())
    filename, content, mimetype = (_text(part) for part in item)  # lazy ones too
    if isinstance(content, str):
        content = content.encode("utf-8")
    elif not isinstance(content, bytes):  # an attached EmailMessage (message/rfc822)
        content = content.as_bytes() if hasattr(content, "as_bytes") else bytes(content)
    return Attachment.coerce((filename or f"attachment-{number + 1}", content, mimetype))
