"""One webhook event: its encoding, its stable id, and how it is read back from the
outbox (untrusted: checked field by field, bounded).

An event is what the Standard Webhooks specification calls a message: the POSTed body
is ``{"type": "email.sent", "timestamp": "...Z", "data": {...}}`` and its id travels in
the ``webhook-id`` header. The id is derived from what the event is about (the batch,
the e-mail's index and the state; or the feedback event's own id), never drawn at
random: a worker that runs a batch again after a crash, or feedback received twice,
yields the same id, and the receiver drops the duplicate.

Recipients are never sent in clear: ``recipients`` holds the SHA-256 (hex) of each
address's canonical form (``mailspool.address.canonical_address``), the digest the
suppression list keys addresses by. No body, subject or header is ever in an event.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from mailspool.address import canonical_address
from mailspool.errors import InvalidMessage, InvalidRecord
from mailspool.message import split_addresses
from mailspool.spool.records import timestamp
from mailspool.webhook_rules import EventType

__all__ = [
    "WebhookEvent",
    "address_digest",
    "email_event",
    "event_id",
    "feedback_event",
    "priority_event",
    "raw_recipients",
]

_ID = re.compile(r"evt_[0-9a-f]{32}")
_LONGEST_TEXT = 1000  # a reason or a provider id; longer ones are cut
_LONGEST_DATA = 16_384  # bytes of one event's data as JSON
_MOST_RECIPIENTS = 1000
_MOST_VIA = 16  # members of a failover chain named as unanswered
_LONGEST_LABELS = 4096  # bytes of an e-mail's tags and metadata as JSON


def event_id(event_type: str, *about: str | int) -> str:
    """``evt_`` + 32 hex digits: the same for the same type and subject, whoever makes
    it, and different for different ones (the parts are JSON-encoded, so no two lists
    of parts share an encoding)."""
    try:
        encoded = orjson.dumps([event_type, *about])
    except orjson.JSONEncodeError:  # a lone surrogate: no UTF-8, so escaped
        encoded = json.dumps([event_type, *about]).encode()
    return "evt_" + hashlib.sha256(encoded).hexdigest()[:32]


def address_digest(address: str) -> str:
    """The SHA-256 of an address's canonical form; of its trimmed text when invalid."""
    try:
        form = canonical_address(address)
    except InvalidMessage:
        form = address.strip()
    return hashlib.sha256(form.encode("utf-8", "surrogatepass")).hexdigest()


def raw_recipients(raw: Mapping[str, Any]) -> list[str]:
    """The To addresses of an e-mail as its batch holds it; none when unreadable (the
    e-mail's own outcome says why). Cc and Bcc are never named in an event."""
    try:
        return list(split_addresses(raw.get("to"), "to"))
    except (InvalidMessage, TypeError, AttributeError):
        return []


def _labels(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``tags`` and ``metadata`` if they are well-formed and small, else nothing."""
    found: dict[str, Any] = {}
    tags, metadata = raw.get("tags"), raw.get("metadata")
    if tags and isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        found["tags"] = tags
    if metadata and isinstance(metadata, dict):
        found["metadata"] = metadata
    return found if len(_json(found)) <= _LONGEST_LABELS else {}


def _json(value: Any) -> bytes:
    """``value`` as JSON; what JSON cannot hold (or nests too deep) as too large."""
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return b"x" * (_LONGEST_DATA + 1)


def _cut(text: str) -> str:
    """At most ``_LONGEST_TEXT`` characters, and valid UTF-8 (a lone surrogate replaced)."""
    text = text if len(text) <= _LONGEST_TEXT else text[: _LONGEST_TEXT - 1] + "…"
    return text.encode("utf-8", "replace").decode("utf-8")


def _digests(addresses: Iterable[str]) -> list[str]:
    """The addresses' digests, at most ``_MOST_RECIPIENTS`` of them."""
    return [address_digest(address) for address in addresses][:_MOST_RECIPIENTS]


def _present(**fields: str | list[str] | None) -> dict[str, str | list[str]]:
    """The optional fields of an event's data that are set (not None, not empty), each
    text cut by ``_cut``: an event names only what is known."""
    return {
        name: _cut(value) if isinstance(value, str) else value
        for name, value in fields.items()
        if value
    }


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event; ``payload()`` is the body signed and POSTed."""

    id: str
    type: EventType
    timestamp: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> bytes:
        body = {"type": self.type.value, "timestamp": self.timestamp, "data": self.data}
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    def to_record(self) -> dict[str, Any]:
        """The event as the outbox stores it."""
        return {
            "id": self.id,
            "type": self.type.value,
            "timestamp": self.timestamp,
            "data": self.data,
        }

    @classmethod
    def from_record(cls, record: object) -> WebhookEvent:
        """An event read from the outbox; ``InvalidRecord`` naming the field otherwise."""
        if not isinstance(record, dict):
            raise InvalidRecord("a webhook event must be a JSON object")
        event_id_ = record.get("id")
        if not isinstance(event_id_, str) or not _ID.fullmatch(event_id_):
            raise InvalidRecord("webhook event field 'id' must be evt_ and 32 hex digits")
        try:
            kind = EventType(str(record.get("type")))
        except ValueError:
            raise InvalidRecord(f"webhook event {event_id_}: unknown 'type'") from None
        when = record.get("timestamp")
        if not isinstance(when, str) or len(when) > 40:
            raise InvalidRecord(f"webhook event {event_id_}: 'timestamp' must be short text")
        data = record.get("data")
        if not isinstance(data, dict) or len(_json(data)) > _LONGEST_DATA:
            raise InvalidRecord(
                f"webhook event {event_id_}: 'data' must be an object of at most "
                f"{_LONGEST_DATA} bytes"
            )
        return cls(event_id_, kind, when, data)


def email_event(
    event_type: EventType,
    batch_id: str,
    index: int,
    *,
    recipients: Iterable[str] = (),
    refused: Iterable[str] = (),
    message_id: str | None = None,
    reason: str | None = None,
    when: datetime | str | None = None,
    extra: Mapping[str, Any] | None = None,
    via: tuple[str | None, Iterable[str]] = (None, ()),
) -> WebhookEvent:
    """The event of one e-mail of a batch reaching a state: its id is fixed by the
    batch, the index and the state. ``extra``: the e-mail as its batch holds it, whose
    ``tags`` and ``metadata`` (the application's own) are passed on when small. ``via``:
    the failover member that accepted it and those that may have taken it before
    (the ledger's ``via`` and ``unanswered``: transport labels, no address in them)."""
    accepted, unanswered = via
    data: dict[str, Any] = {
        "batch_id": _cut(batch_id),
        "index": index,
        **_labels(extra or {}),
        **_present(
            recipients=_digests(recipients),
            # sent to the others; these the server (or the suppression list) refused
            refused=_digests(refused),
            message_id=message_id,
            reason=reason,
            via=accepted,
            # a possible duplicate: the content went there and no answer came
            unanswered=[_cut(label) for label in unanswered][:_MOST_VIA],
        ),
    }
    identity = event_id(event_type.value, batch_id, index)
    stamp = when if isinstance(when, str) else timestamp(when)  # a group's, made once
    return WebhookEvent(identity, event_type, stamp, data)


def priority_event(
    event_type: EventType,
    message_id: str,
    recipients: Iterable[str],
    *,
    reason: str | None = None,
    via: str | None = None,
) -> WebhookEvent:
    """The event of a priority e-mail sent at once (or refused for good), which was never
    in a batch: its id is fixed by its Message-ID (or the provider's id). ``via``: the
    failover member that accepted it."""
    data: dict[str, Any] = {
        "priority": True,
        "message_id": _cut(message_id),
        **_present(recipients=_digests(recipients), reason=reason, via=via),
    }
    identity = event_id(event_type.value, "priority", message_id)
    return WebhookEvent(identity, event_type, timestamp(), data)


def feedback_event(
    event_type: EventType,
    source_id: str,
    address: str,
    *,
    message_id: str | None = None,
    reason: str | None = None,
    when: datetime | None = None,
    batch: tuple[str | None, int | None] = (None, None),
) -> WebhookEvent:
    """The event of feedback about one recipient (a bounce, a complaint, an unsubscribe,
    a suppression); its id is fixed by the feedback's own id and the address. ``batch``:
    the e-mail's batch id and index, when the feedback names them."""
    digest = address_digest(address)
    data: dict[str, Any] = {"recipient": digest}
    if batch[0] is not None and batch[1] is not None:
        data["batch_id"], data["index"] = batch
    data.update(_present(message_id=message_id, reason=reason))
    identity = event_id(event_type.value, source_id, digest)
    return WebhookEvent(identity, event_type, timestamp(when), data)
