"""Take one address out of a stored object, whatever its kind (``mailspool erase``).

The rules, the same for every record:

- a list element that is the address (``to``, ``meta.cc``, an event's ``recipients``)
  is removed; so is a map entry whose key holds it (``refused``, ``diagnostics``);
- an e-mail (an object with a ``to`` list) whose every ``To`` recipient was the
  address is replaced by ``ERASED_EMAIL``: subject, body, alternatives and attachments
  go; its place stays, as the ledger counts e-mails by index. An e-mail that keeps
  other recipients keeps its content, for them;
- any other text holding the address (a subject, a body, a reason, a provider's answer)
  gets ``[erased]`` in its place.

An object is read as one JSON document, else as lines of JSON (a log); what is neither,
or too deeply nested to walk, has its bytes scrubbed (``[erased]`` in place of each
spelling) and is reported as unparsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from mailspool.ops.erase_match import ERASED, AddressMatch
from mailspool.spool.records import blob_digests

__all__ = ["ERASED_EMAIL", "Redacted", "redact_bytes"]

#: What stays of an e-mail sent to the erased address alone (``.invalid``: RFC 2606).
ERASED_EMAIL: dict[str, Any] = {
    "to": ["erased@erased.invalid"],
    "subject": ERASED,
    "message": "",
    "attachments": [],
}
_MAX_DEPTH = 64  # deeper than any record mailspool writes: scrubbed as bytes instead


class _TooDeep(Exception):
    pass


@dataclass(slots=True)
class Redacted:
    """The object's new bytes, the e-mails it held and those emptied, how it was read,
    and the blobs the emptied e-mails referred to."""

    data: bytes
    emails: int = 0
    emptied: int = 0
    unparsed: bool = False
    blobs: list[str] = field(default_factory=list)

    @property
    def only_erased(self) -> bool:
        """Every e-mail it held was sent to the address alone."""
        return self.emails > 0 and self.emails == self.emptied


def redact_bytes(data: bytes, match: AddressMatch) -> Redacted:
    """``data`` without the address (see the module docstring); ``data`` as it is when
    it does not hold the address."""
    if not match.found_in(data):
        return Redacted(data)
    result = Redacted(data)
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        result.data = b"\n".join(_redact_line(line, match, result) for line in data.split(b"\n"))
        return result
    result.data = _dump(document, match, result, data)
    return result


def _redact_line(line: bytes, match: AddressMatch, result: Redacted) -> bytes:
    if not match.found_in(line):
        return line
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:
        result.unparsed = True
        return match.scrub_bytes(line)
    return _dump(document, match, result, line)


def _dump(document: Any, match: AddressMatch, result: Redacted, raw: bytes) -> bytes:
    try:
        return orjson.dumps(_redact(document, match, result, 0))
    except _TooDeep:
        result.unparsed = True
        return match.scrub_bytes(raw)


def _redact(value: Any, match: AddressMatch, result: Redacted, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise _TooDeep
    if isinstance(value, str):
        return match.scrub(value)
    if isinstance(value, list):
        return [
            _redact(item, match, result, depth + 1)
            for item in value
            if not (isinstance(item, str) and match.is_address(item))
        ]
    if isinstance(value, dict):
        return _redact_object(value, match, result, depth)
    return value


def _redact_object(
    value: dict[str, Any], match: AddressMatch, result: Redacted, depth: int
) -> dict[str, Any]:
    kept = {
        key: _redact(item, match, result, depth + 1)
        for key, item in value.items()
        if not match.found(key)
    }
    to = value.get("to")
    if not isinstance(to, list) or not to:
        return kept
    result.emails += 1
    if kept.get("to"):
        return kept
    result.emptied += 1
    result.blobs.extend(blob_digests([value]))
    return dict(ERASED_EMAIL)
