"""The structure a batch file must have (``spool.batch``'s first decoding step): JSON
types, required fields, the version, each attachment's form and the timing fields.
A file that breaks one is an ``InvalidBatch`` naming the field (and the e-mail); the
content of each e-mail (addresses, header injection) is checked later, one e-mail at a
time, so that one bad e-mail does not sink its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mailspool.errors import InvalidBatch
from mailspool.spool.records import Timing, moment

__all__ = [
    "CONTENT_TYPES",
    "KNOWN_VERSIONS",
    "check_email",
    "check_meta",
    "content_type",
    "timing_of",
]

KNOWN_VERSIONS = frozenset({0, 1})
CONTENT_TYPES = frozenset({"text/html", "text/plain"})


def timing_of(document: Mapping[str, Any], source: str) -> Timing:
    """``sendAt``, ``expiresAt`` (RFC 3339 with an offset) and ``key`` (1-256 characters)."""
    for name in ("sendAt", "expiresAt"):
        value = document.get(name)
        if value is None:
            continue
        try:
            moment(value)
        except ValueError as err:
            raise InvalidBatch(
                f"must be an RFC 3339 time with its offset: {err}", field=name, source=source
            ) from None
    key = document.get("key")
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= 256):
        raise InvalidBatch("must be a string of 1 to 256 characters", field="key", source=source)
    return Timing(document.get("sendAt"), document.get("expiresAt"), key)


def check_meta(meta: object, source: str) -> None:
    if not isinstance(meta, dict):
        raise InvalidBatch("must be an object", field="meta", source=source)
    for name in ("from", "contentType", "charset"):
        _require_type(meta, name, str, f"meta.{name}", source, required=True)
    if content_type(meta["contentType"]) not in CONTENT_TYPES:
        raise InvalidBatch(
            f"unsupported content type {meta['contentType']!r} (text/html or text/plain)",
            field="meta.contentType",
            source=source,
        )
    for name in ("cc", "bcc", "replyTo"):
        _require_addresses(meta, name, f"meta.{name}", source)
    _require_type(meta, "bareLocalParts", bool, "meta.bareLocalParts", source)
    headers = meta.get("headers")
    if headers is not None and not (
        isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())
    ):
        raise InvalidBatch("must map header names to strings", field="meta.headers", source=source)


def check_email(email: object, index: int, source: str, version: int) -> None:
    def fail(reason: str, field: str) -> InvalidBatch:
        return InvalidBatch(reason, field=field, index=index, source=source)

    if not isinstance(email, dict):
        raise fail("must be an object", "emails")
    try:
        _require_addresses(email, "to", "to", source, required=True)
        _require_type(email, "subject", str, "subject", source, required=True)
        _require_type(email, "message", str, "message", source, required=True)
        _require_type(email, "attachments", list, "attachments", source, required=version >= 1)
        _require_type(email, "alternatives", list, "alternatives", source)
        _require_type(email, "tags", list, "tags", source)
        _require_type(email, "metadata", dict, "metadata", source)
    except InvalidBatch as err:
        raise err.located(index=index) from None
    for attachment in email.get("attachments") or ():
        _check_attachment(attachment, fail)
    for alternative in email.get("alternatives") or ():
        if not (
            isinstance(alternative, dict)
            and isinstance(alternative.get("content"), str)
            and content_type(alternative.get("contentType")) in CONTENT_TYPES
        ):
            raise fail(
                "each needs contentType (text/plain or text/html) and content", "alternatives"
            )


def _check_attachment(attachment: object, fail: Callable[[str, str], InvalidBatch]) -> None:
    if isinstance(attachment, str):  # version 0: a path on the sending machine
        return
    if not isinstance(attachment, dict):
        raise fail("each must be a path or an object", "attachments")
    if not isinstance(attachment.get("filename"), str) or not attachment["filename"]:
        raise fail("filename must be a non-empty string", "attachments.filename")
    if not isinstance(attachment.get("contentType"), str):
        raise fail("contentType must be a string", "attachments.contentType")
    content, digest = attachment.get("content"), attachment.get("sha256")
    if (content is None) == (digest is None):
        raise fail("give exactly one of content (base64) or sha256", "attachments")
    if content is not None and not isinstance(content, str):
        raise fail("content must be a base64 string", "attachments.content")
    if digest is not None and not (
        isinstance(digest, str) and len(digest) == 64 and _is_hex(digest)
    ):
        raise fail("sha256 must be 64 hex digits", "attachments.sha256")


def _present(
    mapping: Mapping[str, Any], name: str, field: str, source: str, required: bool
) -> bool:
    """Whether ``name`` is there to check; a missing required one is an InvalidBatch."""
    if name in mapping:
        return True
    if required:
        raise InvalidBatch("missing", field=field, source=source)
    return False


_KINDS: dict[type, str] = {str: "a string", list: "a list", dict: "an object"}


def _require_type(
    mapping: Mapping[str, Any],
    name: str,
    kind: type,
    field: str,
    source: str,
    *,
    required: bool = False,
) -> None:
    if not _present(mapping, name, field, source, required):
        return
    value = mapping[name]
    if not isinstance(value, kind):
        expected = _KINDS.get(kind, kind.__name__)
        actual = "null" if value is None else type(value).__name__
        raise InvalidBatch(f"must be {expected}, not {actual}", field=field, source=source)


def _require_addresses(
    mapping: Mapping[str, Any], name: str, field: str, source: str, *, required: bool = False
) -> None:
    if not _present(mapping, name, field, source, required):
        return
    value = mapping[name]
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise InvalidBatch("must be a list of address strings", field=field, source=source)


def content_type(value: object) -> str:
    return value.partition(";")[0].strip().lower() if isinstance(value, str) else ""


def _is_hex(value: str) -> bool:
    return all(c in "0123456789abcdef" for c in value)
