"""Limits on everything the worker reads from the store, each a setting.

A batch file is written by whoever may write the store, so its size and every count
in it are bounded before the worker spends memory or time on them: the file's size
before its body is read, the counts of one e-mail before its attachments are read.
A refusal names the setting it broke (``MAILSPOOL_MAX_RECIPIENTS=50``), so the
operator knows what to raise if the e-mail was legitimate.

The defaults fit Amazon SES (50 recipients, 40 MB per message) and keep the worker's
peak memory on the largest batch they accept bounded (``docs/security.md`` gives the
measured figure and ``benchmarks/bench_limits.py`` measures it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailspool.config import default_of
from mailspool.errors import InvalidBatch, InvalidMessage
from mailspool.message import Message

__all__ = ["LIMIT_SETTINGS", "Footprint", "Limits", "estimated_size"]

_MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Footprint:
    """What one e-mail will hold in memory, known before any attachment is read:
    ``reads``, the most its blobs and path attachments may bring in (a blob's declared
    ``size``, else the attachment limit; a path: the attachment limit), and ``total``,
    that plus its bodies and inline attachments."""

    total: int
    reads: int


@dataclass(frozen=True, slots=True)
class Limits:
    """One field per limit, its default the setting's (``LIMIT_SETTINGS`` gives each
    one's variable)."""

    batch_bytes: int = default_of("max_batch_bytes")
    emails_per_batch: int = default_of("max_emails_per_batch")
    recipients: int = default_of("max_recipients")
    headers: int = default_of("max_headers")
    header_length: int = default_of("max_header_length")
    subject_length: int = default_of("max_subject_length")
    attachments: int = default_of("max_attachments")
    attachment_bytes: int = default_of("max_attachment_bytes")
    message_bytes: int = default_of("max_message_bytes")

    def setting(self, name: str) -> str:
        """``MAILSPOOL_MAX_RECIPIENTS=50`` for the field ``recipients``: how a refusal names its limit."""
        return f"{LIMIT_SETTINGS[name]}={getattr(self, name)}"

    def check_batch(self, count: int, source: str) -> None:
        """Refuse a batch with more e-mails than ``emails_per_batch``."""
        if count > self.emails_per_batch:
            raise InvalidBatch(
                f"{count} e-mails, more than {self.setting('emails_per_batch')}",
                field="emails",
                source=source,
            )

    def check_raw(self, meta: Mapping[str, Any], email: Mapping[str, Any]) -> None:
        """The counts and lengths of one e-mail as the file states them, before any of
        its attachments is read (``InvalidMessage`` naming the limit)."""
        listed = _count(email.get("to")) + _count(meta.get("cc")) + _count(meta.get("bcc"))
        self._at_most(listed, "recipients", "to", "recipients")
        headers = meta.get("headers")
        headers = headers if isinstance(headers, Mapping) else {}
        self._at_most(len(headers), "headers", "headers", "headers")
        for name, value in headers.items():
            length = len(str(name)) + len(str(value))
            self._at_most(length, "header_length", f"headers.{name}", "characters")
        subject = email.get("subject")
        length = len(subject) if isinstance(subject, str) else 0
        self._at_most(length, "subject_length", "subject", "characters")
        self._at_most(_count(email.get("attachments")), "attachments", "attachments", "files")

    def footprint(self, email: Mapping[str, Any]) -> Footprint:
        """The e-mail's ``Footprint`` from what the file states; reads never exceed it."""
        inline = reads = 0
        for item in _as_list(email.get("attachments")):
            if isinstance(item, str):
                reads += self.attachment_bytes if item.strip() else 0
            elif isinstance(item, Mapping) and isinstance(item.get("content"), str):
                inline += len(item["content"]) * 3 // 4
            elif isinstance(item, Mapping):
                reads += self._declared(item.get("size"))
        reads = min(reads, self.message_bytes)
        bodies = _text_length(email.get("message")) + sum(
            _text_length(a.get("content"))
            for a in _as_list(email.get("alternatives"))
            if isinstance(a, Mapping)
        )
        return Footprint(total=bodies + inline + reads, reads=reads)

    def _declared(self, size: object) -> int:
        """A blob's declared size, if it is one, at most the attachment limit."""
        if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            return min(size, self.attachment_bytes)
        return self.attachment_bytes

    def check_message(self, message: Message) -> None:
        """What only the decoded e-mail tells: recipients once split, attachment sizes
        and the total size."""
        self._at_most(message.recipient_count, "recipients", "to", "recipients")
        for attachment in message.attachments:
            self._at_most(len(attachment.content), "attachment_bytes", "attachments", "bytes")
        size = estimated_size(message)
        self._at_most(size, "message_bytes", "message", "bytes (estimated as sent)")

    def _at_most(self, value: int, name: str, field: str, unit: str) -> None:
        if value > getattr(self, name):
            raise InvalidMessage(f"{value} {unit}, more than {self.setting(name)}", field=field)


#: Each limit's environment variable.
LIMIT_SETTINGS: dict[str, str] = {
    "batch_bytes": "MAILSPOOL_MAX_BATCH_BYTES",
    "emails_per_batch": "MAILSPOOL_MAX_EMAILS_PER_BATCH",
    "recipients": "MAILSPOOL_MAX_RECIPIENTS",
    "headers": "MAILSPOOL_MAX_HEADERS",
    "header_length": "MAILSPOOL_MAX_HEADER_LENGTH",
    "subject_length": "MAILSPOOL_MAX_SUBJECT_LENGTH",
    "attachments": "MAILSPOOL_MAX_ATTACHMENTS",
    "attachment_bytes": "MAILSPOOL_MAX_ATTACHMENT_BYTES",
    "message_bytes": "MAILSPOOL_MAX_MESSAGE_BYTES",
}


def _count(value: object) -> int:
    return len(value) if isinstance(value, list) else 0


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text_length(value: object) -> int:
    return len(value) if isinstance(value, str) else 0


def estimated_size(message: Message) -> int:
    """The size of the message as sent, from above: bodies as UTF-8 and attachments in
    base64 (4 bytes per 3, plus a line break per 76), plus its headers."""
    texts = (message.text, message.html)
    bodies = sum(len(b.encode("utf-8", "replace")) * 4 // 3 for b in texts if b)
    attachments = sum((len(a.content) + 2) // 3 * 4 * 78 // 76 for a in message.attachments)
    headers = sum(len(n) + len(v) for n, v in message.headers) + len(message.subject)
    return bodies + attachments + headers
