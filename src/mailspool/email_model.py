"""A ``Message`` to and from the stdlib's ``email.message.EmailMessage`` (the modern
API, ``policy.default``), for callers that hold one: the Django backend's attachments,
tests reading what a server received. The worker renders with ``mailspool.mime``."""

from __future__ import annotations

from email.message import EmailMessage

from mailspool.message import MODELLED_HEADERS, Attachment, Message
from mailspool.mime import METADATA_HEADER, TAG_HEADER, metadata_header

__all__ = ["from_email_message", "to_email_message"]


def to_email_message(message: Message, *, message_id: str | None = None) -> EmailMessage:
    """The message as a stdlib ``EmailMessage`` (``policy.default``); Bcc is not a header."""
    result = EmailMessage()
    if message.sender:
        result["From"] = message.sender
    for name, addresses in (("To", message.to), ("Cc", message.cc), ("Reply-To", message.reply_to)):
        if addresses:
            result[name] = ", ".join(addresses)
    result["Subject"] = message.subject
    for name, value in message.headers:
        result[name] = value
    for tag in message.tags:
        result[TAG_HEADER] = tag
    if message.metadata:
        result[METADATA_HEADER] = metadata_header(message.metadata)
    if message_id and "Message-ID" not in result:
        result["Message-ID"] = message_id
    if message.text is not None:
        result.set_content(message.text, charset=message.charset)
    if message.html is not None:
        if message.text is None:
            result.set_content(message.html, subtype="html", charset=message.charset)
        else:
            result.add_alternative(message.html, subtype="html", charset=message.charset)
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        result.add_attachment(
            attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return result


def from_email_message(message: EmailMessage) -> Message:
    """The model of a stdlib message parsed or built with ``policy.default``."""
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    body_part = text_part or html_part
    charset = (body_part.get_content_charset() if body_part else None) or "utf-8"
    attachments = tuple(
        Attachment(
            filename=part.get_filename() or "attachment",
            content=_payload_bytes(part),
            content_type=part.get_content_type(),
        )
        for part in message.iter_attachments()
        if isinstance(part, EmailMessage)
    )
    headers = tuple(
        (name, str(value))
        for name, value in message.items()
        if name.lower() not in MODELLED_HEADERS
    )
    return Message(
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        bcc=_addresses(message, "Bcc"),
        reply_to=_addresses(message, "Reply-To"),
        sender=_addresses(message, "From")[0] if message["From"] else None,
        subject=str(message["Subject"] or ""),
        text=_content(text_part),
        html=_content(html_part),
        charset=charset,
        headers=headers,
        attachments=attachments,
    )


def _payload_bytes(part: EmailMessage) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _content(part: object) -> str | None:
    if not isinstance(part, EmailMessage):
        return None
    content = part.get_content()
    return content if isinstance(content, str) else None


def _addresses(message: EmailMessage, name: str) -> tuple[str, ...]:
    header = message[name]
    if header is None:
        return ()
    found = getattr(header, "addresses", None)
    if found is None:
        return tuple(a for a in str(header).split(",") if a.strip())
    return tuple(str(a) if a.display_name else a.addr_spec for a in found)
