"""SES events, from every route a user can configure, as typed ``FeedbackEvent`` records.

SES describes what became of an e-mail in two formats:

- event publishing (a configuration set's event destination): ``eventType`` is one of
  Send, Delivery, Bounce, Complaint, Reject, DeliveryDelay, RenderingFailure, Open,
  Click, Subscription; the details are under ``send``, ``delivery``, ``bounce``...;
- notifications (an identity's feedback topics): ``notificationType`` is Bounce,
  Complaint or Delivery, with the same ``bounce`` / ``complaint`` / ``delivery`` objects.

Both carry ``mail.messageId``, SES's id for the e-mail: the id the worker recorded in the
batch's ledger when SES accepted it. They arrive wrapped in an SNS notification (pushed
to Lambda, to an HTTPS endpoint, or into an SQS queue as an envelope or as the raw
message), or in an EventBridge event (``source: aws.ses``, the SES event under
``detail``), possibly inside SQS too. ``unwrap`` finds every SES event in any of these;
anything else is left to the caller (an S3 notification is not an SES event).

Everything here is read from the network and is hostile: a malformed event raises
``ValueError`` naming the field; nothing is executed or fetched. A timestamp must be a
time that holds in UTC (``spool.records.moment``; SES writes ``...Z``): a soft bounce
dated before the year 1 in UTC is unreadable, not a crash when it is counted. Wrappers
nest at most ``MAX_NESTING`` deep, and JSON deeper than ``orjson`` reads is not JSON.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from mailspool.spool.records import moment

__all__ = [
    "EventKind",
    "FeedbackEvent",
    "Wrapped",
    "event_id",
    "is_ses_event",
    "iso_time",
    "parse_ses_event",
    "unwrap",
]


class EventKind(StrEnum):
    """What happened, in the words ``trace`` prints."""

    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    REJECTED = "rejected"
    DELAYED = "delayed"
    RENDERING_FAILED = "rendering-failed"
    OPENED = "opened"
    CLICKED = "clicked"
    SUBSCRIPTION = "subscription"


#: SES type -> (kind, the key of its details object).
_TYPES: dict[str, tuple[EventKind, str]] = {
    "Send": (EventKind.SENT, "send"),
    "Delivery": (EventKind.DELIVERED, "delivery"),
    "Bounce": (EventKind.BOUNCED, "bounce"),
    "Complaint": (EventKind.COMPLAINED, "complaint"),
    "Reject": (EventKind.REJECTED, "reject"),
    "DeliveryDelay": (EventKind.DELAYED, "deliveryDelay"),
    "Rendering Failure": (EventKind.RENDERING_FAILED, "failure"),
    "RenderingFailure": (EventKind.RENDERING_FAILED, "failure"),
    "Open": (EventKind.OPENED, "open"),
    "Click": (EventKind.CLICKED, "click"),
    "Subscription": (EventKind.SUBSCRIPTION, "subscription"),
}
#: Where each kind lists the recipients it concerns (else: every destination).
_RECIPIENT_LISTS = {
    EventKind.BOUNCED: "bouncedRecipients",
    EventKind.COMPLAINED: "complainedRecipients",
    EventKind.DELIVERED: "recipients",
    EventKind.DELAYED: "delayedRecipients",
}
_MAX_TEXT = 1000  # a diagnostic longer than this is cut: it is stored and printed
#: Wrappers (SQS body, SNS message, EventBridge detail) followed before giving up.
MAX_NESTING = 8


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """One SES event about one e-mail.

    ``id`` is a hash of the SES event itself, so the same event delivered twice, or by
    two routes (SNS and EventBridge), has the same id. ``permanent`` is True only for a
    hard bounce (``bounceType: Permanent``). ``diagnostics`` maps each recipient to
    what the receiving server (or SES) said: a bounce's ``diagnosticCode``, a delivery's
    SMTP answer, a complaint's feedback type, a rejection's reason.
    """

    id: str
    kind: EventKind
    provider_id: str
    timestamp: str
    recipients: tuple[str, ...]
    permanent: bool = False
    diagnostics: dict[str, str] = field(default_factory=dict)
    detail: str = ""
    batch: str | None = None  # from the SES message tags the SES transport sets
    index: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": str(self.kind), "recipients": list(self.recipients)}

    @classmethod
    def from_dict(cls, data: Any) -> FeedbackEvent:
        """Read back what ``as_dict`` wrote (from the store: hostile, ValueError if bad)."""
        if not isinstance(data, dict):
            raise ValueError("an event record must be a JSON object")
        try:
            return cls(
                id=_text(data, "id"),
                kind=EventKind(_plain(data.get("kind"))),
                provider_id=_text(data, "provider_id"),
                timestamp=_time(data.get("timestamp"), "timestamp"),
                recipients=tuple(_strings(data.get("recipients"), "recipients")),
                permanent=data.get("permanent") is True,
                diagnostics=_diagnostics(data.get("diagnostics")),
                detail=_plain(data.get("detail")),
                batch=data.get("batch") if isinstance(data.get("batch"), str) else None,
                index=data.get("index") if isinstance(data.get("index"), int) else None,
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"unreadable event record: {err}") from None


@dataclass(frozen=True, slots=True)
class Wrapped:
    """An SES event found in an invocation, with the SQS message that carried it (if any)
    and the SNS topic it came through (if any)."""

    event: FeedbackEvent
    sqs_message_id: str | None = None
    topic_arn: str | None = None


def is_ses_event(payload: Any) -> bool:
    """True for a bare SES event, in either format."""
    return (
        isinstance(payload, Mapping)
        and isinstance(payload.get("mail"), Mapping)
        and ("eventType" in payload or "notificationType" in payload)
    )


def parse_ses_event(payload: Any) -> FeedbackEvent:
    """A bare SES event (either format) as a ``FeedbackEvent``; ValueError names the field."""
    if not is_ses_event(payload):
        raise ValueError("not an SES event: 'mail' and 'eventType' or 'notificationType' needed")
    type_name = payload.get("eventType") or payload.get("notificationType")
    if type_name not in _TYPES:
        raise ValueError(f"field 'eventType': unknown SES event type {type_name!r}")
    kind, details_key = _TYPES[type_name]
    mail = payload["mail"]
    details = payload.get(details_key) or {}
    if not isinstance(details, Mapping):
        raise ValueError(f"field {details_key!r} must be an object")
    recipients, diagnostics = _recipients(kind, details, mail)
    batch, index = _tagged_email(mail.get("tags"))
    return FeedbackEvent(
        id=_ses_event_id(payload),
        kind=kind,
        provider_id=_text(mail, "messageId", "mail.messageId"),
        timestamp=_event_time(details, details_key, mail),
        recipients=recipients,
        permanent=kind is EventKind.BOUNCED and details.get("bounceType") == "Permanent",
        diagnostics=diagnostics,
        detail=_detail(kind, details),
        batch=batch,
        index=index,
    )


def unwrap(payload: Any) -> Iterator[Wrapped]:
    """Every SES event in a Lambda invocation, an SNS message, an SQS body, a JSON line.
    ValueError names what could not be read (a field, or wrappers nested too deep)."""
    yield from _walk(payload, None, None, 0)


def _walk(payload: Any, sqs_id: str | None, topic: str | None, depth: int) -> Iterator[Wrapped]:
    if not isinstance(payload, Mapping):
        return
    if depth > MAX_NESTING:
        raise ValueError(f"wrapped more than {MAX_NESTING} deep")
    deeper = depth + 1
    if is_ses_event(payload):
        yield Wrapped(parse_ses_event(payload), sqs_id, topic)
    elif payload.get("source") == "aws.ses" and "detail" in payload:
        yield from _walk(payload["detail"], sqs_id, topic, deeper)
    elif payload.get("Type") == "Notification" and "Message" in payload:
        arn = _plain(payload.get("TopicArn"))
        yield from _walk(_loads(payload["Message"]), sqs_id, arn, deeper)
    elif isinstance(payload.get("Records"), list):
        for record in payload["Records"]:
            yield from _record(record, sqs_id, topic, deeper)


def _record(record: Any, sqs_id: str | None, topic: str | None, depth: int) -> Iterator[Wrapped]:
    if not isinstance(record, Mapping):
        return
    if isinstance(record.get("Sns"), Mapping):
        sns = record["Sns"]
        arn = _plain(sns.get("TopicArn"))
        yield from _walk(_loads(sns.get("Message")), sqs_id, arn, depth + 1)
    elif "body" in record and record.get("eventSource") == "aws:sqs":
        message_id = _plain(record.get("messageId"))
        yield from _walk(_loads(record["body"]), message_id, topic, depth + 1)


def _recipients(
    kind: EventKind, details: Mapping[str, Any], mail: Mapping[str, Any]
) -> tuple[tuple[str, ...], dict[str, str]]:
    listed = details.get(_RECIPIENT_LISTS.get(kind, ""), None)
    if listed is None:
        return tuple(_strings(mail.get("destination") or [], "mail.destination")), {}
    if not isinstance(listed, list):
        raise ValueError(f"field {_RECIPIENT_LISTS[kind]!r} must be a list")
    recipients: list[str] = []
    diagnostics: dict[str, str] = {}
    for item in listed:
        address = item.get("emailAddress") if isinstance(item, Mapping) else item
        if not isinstance(address, str):
            raise ValueError(f"field {_RECIPIENT_LISTS[kind]!r}: a recipient must be a string")
        recipients.append(address)
        said = _said(kind, details, item)
        if said:
            diagnostics[address] = said[:_MAX_TEXT]
    return tuple(recipients), diagnostics


def _said(kind: EventKind, details: Mapping[str, Any], item: Any) -> str:
    code = _plain(item.get("diagnosticCode")) if isinstance(item, Mapping) else ""
    if code:
        return code
    if kind is EventKind.DELIVERED:
        return _plain(details.get("smtpResponse"))
    if kind is EventKind.COMPLAINED:
        return _plain(details.get("complaintFeedbackType"))
    if kind is EventKind.BOUNCED:
        return f"{_plain(details.get('bounceType'))} {_plain(details.get('bounceSubType'))}".strip()
    if kind is EventKind.DELAYED:
        return _plain(details.get("delayType"))
    return ""


def _tagged_email(tags: Any) -> tuple[str | None, int | None]:
    """The batch and index the SES transport put in the message tags, if both are there."""
    if not isinstance(tags, Mapping):
        return None, None
    batch, index = tags.get("mailspool-batch"), tags.get("mailspool-index")
    if not (isinstance(batch, list) and isinstance(index, list) and batch and index):
        return None, None
    text = str(index[0])
    # ASCII digits, at most 9: "²" is a digit to str.isdigit but not to int(), and an
    # index past 64 bits could not be stored again (orjson refuses it)
    if not isinstance(batch[0], str) or not (text.isascii() and text.isdigit() and len(text) < 10):
        return None, None
    return batch[0], int(text)


def _detail(kind: EventKind, details: Mapping[str, Any]) -> str:
    value = {
        EventKind.BOUNCED: f"{_plain(details.get('bounceType'))}/{_plain(details.get('bounceSubType'))}",
        EventKind.REJECTED: details.get("reason"),
        EventKind.CLICKED: details.get("link"),
        EventKind.RENDERING_FAILED: details.get("errorMessage"),
        EventKind.DELAYED: details.get("delayType"),
    }.get(kind)
    return _plain(value)[:_MAX_TEXT]


def iso_time(moment: datetime) -> str:
    """An event timestamp as SES writes them: ``2026-11-29T06:55:04.123Z`` (for the
    events mailspool makes itself: returned mail, refusals during the SMTP session)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event_id(*parts: str) -> str:
    """The id of an event mailspool makes itself, derived from what it reports: the same
    report, the same id."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _ses_event_id(payload: Mapping[str, Any]) -> str:
    try:
        canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError as err:  # numbers JSON allows but 64 bits do not hold, and the like
        raise ValueError(f"the event cannot be encoded again: {err}") from None
    return hashlib.sha256(canonical).hexdigest()[:32]


def _event_time(details: Mapping[str, Any], details_key: str, mail: Mapping[str, Any]) -> str:
    """The event's timestamp as SES wrote it (the details', else the mail's), once it is
    known to be a time that holds in UTC; empty when SES gave none."""
    if details.get("timestamp"):
        return _time(details["timestamp"], f"{details_key}.timestamp")
    return _time(mail.get("timestamp") or "", "mail.timestamp")


def _time(value: Any, name: str) -> str:
    """``value`` if empty or a readable time (``moment``, a zone-less time as UTC)."""
    if value == "":
        return ""
    try:
        moment(value, naive="utc")
    except ValueError as err:
        raise ValueError(f"field {name!r}: {err}") from None
    return str(value)


def _diagnostics(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("field 'diagnostics' must be an object")
    return {str(k): _plain(v) for k, v in value.items()}


def _plain(value: Any) -> str:
    """A scalar as ``str(value or "")`` does; anything nested as "" (``str`` of an object
    nested 1000 deep raises RecursionError, and a diagnostic is text, not a structure)."""
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int | float) and value else ""


def _text(data: Mapping[str, Any], key: str, name: str | None = None) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"field {name or key!r} must be a non-empty string")
    return value


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"field {name!r} must be a list of strings")
    return list(value)


def _loads(text: Any) -> Any:
    """JSON text (or an object already) -> the object; None for anything else: no JSON,
    or JSON nested deeper than ``orjson`` reads (1024), is no SES event."""
    if isinstance(text, Mapping):
        return text
    if not isinstance(text, str | bytes):
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
