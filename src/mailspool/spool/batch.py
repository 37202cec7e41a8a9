"""The batch file: encode, decode, validate, group. The format is a contract.

Version 0 is the article's file, as its PHP ``json_encode`` writes it::

    {"meta": {"from": "Site <admin@example.com>", "contentType": "text/html",
              "charset": "utf-8"},
     "emails": [{"to": ["a@example.com"], "subject": "...", "message": "...",
                 "attachments": []}]}

Version 1 is a superset that mailspool writes: ``"version": 1``, ``"id"`` (sortable,
time first), ``"createdAt"`` (RFC 3339, UTC), ``cc``, ``bcc``, ``replyTo`` and
``headers`` and ``bareLocalParts`` (true: an address may be a bare local part, as
Django's SMTP backend allows) in meta, ``alternatives`` per e-mail (the other body of a text+HTML e-mail),
and attachments as objects, inline (``content``, base64) or by reference to a blob
stored once under its SHA-256 (``sha256``), and per e-mail ``tags`` (a list of text)
and ``metadata`` (an object of text values), django-anymail's ``msg.tags`` and
``msg.metadata``, ``traceparent`` (the trace context that queued it; a bad one is
ignored: ``mailspool.tracing``) and ``tenant`` (the SES tenant that sends it), written
only when given. A version-1 file that uses none of these
extensions is also a valid version-0 file, so the article's own Lambda can send it; a
file written before tags and metadata existed is read as having none.
The JSON Schemas are ``schema/batch-v0.schema.json`` and ``schema/batch-v1.schema.json``.

Decoding happens in two steps so that one bad e-mail does not sink its batch:
``decode`` checks the structure (JSON, types, required fields, version) and raises
``InvalidBatch``; ``Batch.message(i)`` checks one e-mail's content (addresses, header
injection) and raises ``InvalidMessage`` naming the file, the e-mail and the field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailspool.errors import InvalidBatch, InvalidMessage, KeyNotFound
from mailspool.message import Attachment, Message, split_addresses
from mailspool.spool.batch_checks import (
    KNOWN_VERSIONS,
    check_email,
    check_meta,
    content_type,
    timing_of,
)
from mailspool.spool.json_fields import json_object
from mailspool.spool.records import (
    CURRENT_VERSION,
    NO_TIMING,
    BatchDocument,
    Timing,
    moment,
    timestamp,
)
from mailspool.tracing import checked_traceparent

__all__ = [
    "CURRENT_VERSION",
    "Batch",
    "BlobReader",
    "BlobWriter",
    "MetaKey",
    "PathReader",
    "decode",
    "encode",
    "meta_key",
    "moment",
]

#: Reads a blob's bytes by its SHA-256 hex digest.
BlobReader = Callable[[str], bytes]
#: Stores a blob's bytes under its SHA-256 hex digest (idempotent).
BlobWriter = Callable[[str, bytes], None]
#: Reads a version-0 path attachment (``mailspool.policy.attachment_root``), or refuses it.
PathReader = Callable[[str], Attachment]

#: What e-mails of one batch share: from, contentType, charset, cc, bcc, replyTo, headers,
#: bareLocalParts.
MetaKey = tuple[
    str,
    str,
    str,
    tuple[str, ...],
    tuple[str, ...],
    tuple[str, ...],
    tuple[tuple[str, str], ...],
    bool,
]


def meta_key(message: Message, default_sender: str) -> MetaKey:
    """The grouping key: e-mails with equal keys share one ``meta`` (e-mails with identical
    headers are grouped, as the article groups them)."""
    content_type = "text/html" if message.html is not None else "text/plain"
    return (
        message.sender or default_sender,
        content_type,
        message.charset,
        message.cc,
        message.bcc,
        message.reply_to,
        message.headers,
        message.bare,
    )


# -- encoding -----------------------------------------------------------------------------


def encode(
    messages: Sequence[Message],
    *,
    batch_id: str,
    default_sender: str,
    created_at: datetime | None = None,
    blob_writer: BlobWriter | None = None,
    inline_limit: int = 4096,
    timing: Timing = NO_TIMING,
) -> bytes:
    """One version-1 batch file for e-mails that share their meta.

    Attachments larger than ``inline_limit`` bytes go through ``blob_writer`` and are
    referenced by hash (one invoice sent to 5000 people is stored once); without a
    writer every attachment is inline. ``timing``: when it may go, until when, its key.
    """
    if not messages:
        raise InvalidBatch("a batch needs at least one e-mail", field="emails")
    key = meta_key(messages[0], default_sender)
    if any(meta_key(m, default_sender) != key for m in messages[1:]):
        raise InvalidBatch("every e-mail of a batch must share its meta", field="meta")
    return BatchDocument(
        id=batch_id,
        created_at=timestamp(created_at),
        meta=_encode_meta(key),
        emails=[_encode_email(m, blob_writer, inline_limit) for m in messages],
        timing=timing,
    ).encode()


def _encode_meta(key: MetaKey) -> dict[str, Any]:
    sender, content_type, charset, cc, bcc, reply_to, headers, bare = key
    meta: dict[str, Any] = {"from": sender, "contentType": content_type, "charset": charset}
    if bare:
        meta["bareLocalParts"] = True
    if cc:
        meta["cc"] = list(cc)
    if bcc:
        meta["bcc"] = list(bcc)
    if reply_to:
        meta["replyTo"] = list(reply_to)
    if headers:
        names = [name.lower() for name, _ in headers]
        if len(set(names)) != len(names):
            raise InvalidMessage("a header name appears twice", field="headers")
        meta["headers"] = dict(headers)
    return meta


def _encode_email(
    message: Message, blob_writer: BlobWriter | None, inline_limit: int
) -> dict[str, Any]:
    if message.html is not None:
        body, alternative = message.html, ("text/plain", message.text)
    else:
        body, alternative = message.text or "", ("text/html", None)
    email: dict[str, Any] = {
        "to": list(message.to),
        "subject": message.subject,
        "message": body,
        "attachments": [
            _encode_attachment(a, blob_writer, inline_limit) for a in message.attachments
        ],
    }
    if alternative[1] is not None:
        email["alternatives"] = [{"contentType": alternative[0], "content": alternative[1]}]
    if message.tags:
        email["tags"] = list(message.tags)
    if message.metadata:
        email["metadata"] = dict(message.metadata)
    if message.traceparent is not None:
        email["traceparent"] = message.traceparent
    if message.tenant is not None:
        email["tenant"] = message.tenant
    return email


def _encode_attachment(
    attachment: Attachment, blob_writer: BlobWriter | None, inline_limit: int
) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        "filename": attachment.filename,
        "contentType": attachment.content_type,
    }
    if blob_writer is not None and len(attachment.content) > inline_limit:
        digest = hashlib.sha256(attachment.content).hexdigest()
        blob_writer(digest, attachment.content)
        encoded["sha256"] = digest
        encoded["size"] = len(attachment.content)
    else:
        encoded["content"] = base64.b64encode(attachment.content).decode("ascii")
    return encoded


# -- decoding -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch file whose structure is valid; its e-mails are checked one at a time."""

    source: str
    version: int
    id: str | None
    created_at: str | None
    meta: Mapping[str, Any]
    emails: Sequence[Mapping[str, Any]]
    timing: Timing = NO_TIMING

    def __len__(self) -> int:
        return len(self.emails)

    def message(
        self, index: int, blobs: BlobReader | None = None, files: PathReader | None = None
    ) -> Message:
        """E-mail ``index`` as a Message; InvalidMessage names file, e-mail and field.
        A path attachment is read by ``files`` only; without it, it is refused."""
        email = self.emails[index]
        trace = checked_traceparent(email.get("traceparent"), self.source, index)
        try:
            return _decode_message(self.meta, email, blobs, files, trace)
        except InvalidMessage as err:
            raise err.located(source=self.source, index=index) from None

    def raw_email(self, index: int) -> Mapping[str, Any]:
        return self.emails[index]

    def document(self) -> BatchDocument:
        """The file as mailspool writes it (a version-1 file encodes to its own bytes)."""
        return BatchDocument(
            self.id, self.created_at, self.meta, self.emails, self.version, self.timing
        )

    def part(self, batch_id: str, indices: Sequence[int]) -> BatchDocument:
        """A new batch of some of these e-mails with the same meta and expiry (a
        continuation; it is due now, and its key stays with the first batch)."""
        emails = [self.emails[i] for i in indices]
        timing = Timing(expires_at=self.timing.expires_at)
        created = self.created_at or timestamp()
        return BatchDocument(batch_id, created, self.meta, emails, timing=timing)

    def expires(self) -> datetime | None:
        """When the batch's e-mails stop being worth sending (``expiresAt``), if ever."""
        return None if self.timing.expires_at is None else moment(self.timing.expires_at)

    def recipient_total(self) -> int:
        """Recipients in the whole file (to + cc + bcc of each e-mail), as SES counts them."""
        shared = sum(len(_as_list(self.meta.get(k))) for k in ("cc", "bcc"))
        return sum(len(_as_list(e.get("to"))) + shared for e in self.emails)


def decode(data: bytes | str, *, source: str = "<batch>") -> Batch:
    """Check a file's structure (JSON, types, required fields, version); raise InvalidBatch."""
    document = json_object(data, source, InvalidBatch)
    version = document.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version not in KNOWN_VERSIONS:
        raise InvalidBatch(
            f"unknown format version {version!r} (this mailspool reads 0 and 1)",
            field="version",
            source=source,
        )
    meta, emails = document.get("meta"), document.get("emails")
    if meta is None or emails is None:
        missing = "meta" if meta is None else "emails"
        raise InvalidBatch("Bad Request: Missing required data", field=missing, source=source)
    check_meta(meta, source)
    if not isinstance(emails, list):
        raise InvalidBatch("must be a list of e-mails", field="emails", source=source)
    if not emails:
        raise InvalidBatch("Bad Request: No emails provided", field="emails", source=source)
    for index, email in enumerate(emails):
        check_email(email, index, source, version)
    batch_id, created_at = document.get("id"), document.get("createdAt")
    for name, value in (("id", batch_id), ("createdAt", created_at)):
        if value is not None and not isinstance(value, str):
            raise InvalidBatch("must be a string", field=name, source=source)
    return Batch(source, version, batch_id, created_at, meta, emails, timing_of(document, source))


def _decode_message(
    meta: Mapping[str, Any],
    email: Mapping[str, Any],
    blobs: BlobReader | None,
    files: PathReader | None,
    traceparent: str | None = None,
) -> Message:
    bodies = {content_type(meta["contentType"]): email["message"]}
    for alternative in email.get("alternatives") or ():
        bodies.setdefault(content_type(alternative["contentType"]), alternative["content"])
    headers = meta.get("headers") or {}
    sender = meta["from"]
    bare = meta.get("bareLocalParts") is True  # only then may an address lack its domain
    return Message(
        to=split_addresses(email["to"], "to", bare=bare),
        subject=email["subject"],
        text=bodies.get("text/plain"),
        html=bodies.get("text/html"),
        sender=split_addresses(sender, "from", bare=bare)[0] if sender.strip() else None,
        cc=split_addresses(meta.get("cc"), "cc", bare=bare),
        bcc=split_addresses(meta.get("bcc"), "bcc", bare=bare),
        reply_to=split_addresses(meta.get("replyTo"), "replyTo", bare=bare),
        charset=meta["charset"] or "utf-8",
        headers=tuple(headers.items()),
        attachments=tuple(_decode_attachments(email.get("attachments") or (), blobs, files)),
        tags=tuple(email.get("tags") or ()),
        metadata=tuple((email.get("metadata") or {}).items()),
        bare=bare,
        traceparent=traceparent,
        tenant=email.get("tenant"),  # checked by Message: a bad one fails this e-mail only
    )


def _decode_attachments(
    items: Iterable[Any], blobs: BlobReader | None, files: PathReader | None
) -> Iterable[Attachment]:
    for item in items:
        if isinstance(item, str):
            if item.strip():  # PHP's explode() leaves empty strings behind
                yield _path_attachment(item, files)
            continue
        yield Attachment(
            filename=item["filename"],
            content=_attachment_bytes(item, blobs),
            content_type=item["contentType"],
        )


def _path_attachment(path: str, files: PathReader | None) -> Attachment:
    if files is None:
        raise InvalidMessage(
            f"attachment {path!r} refused: path attachments are read only by a worker "
            "with MAILSPOOL_ATTACHMENT_ROOT set; nothing was read",
            field="attachments",
        )
    return files(path)


def _attachment_bytes(item: Mapping[str, Any], blobs: BlobReader | None) -> bytes:
    if item.get("content") is not None:
        try:
            return base64.b64decode(item["content"], validate=True)
        except (binascii.Error, ValueError) as err:
            raise InvalidMessage(f"not valid base64: {err}", field="attachments.content") from None
    digest = item["sha256"]
    if blobs is None:
        raise InvalidMessage("refers to a blob but no store was given", field="attachments.sha256")
    try:
        content = blobs(digest)
    except KeyNotFound:
        raise InvalidMessage(
            f"blob {digest} is missing from the store", field="attachments.sha256"
        ) from None
    if hashlib.sha256(content).hexdigest() != digest:
        raise InvalidMessage(f"blob {digest} does not match its hash", field="attachments.sha256")
    return content


def _as_list(value: object) -> list[Any]:
    if isinstance(value, list):
        return value
    return [a for a in value.split(",") if a.strip()] if isinstance(value, str) else []
