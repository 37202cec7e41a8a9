"""Lambda events -> the S3 objects they announce: every record, in every wrapper.

Shapes understood, nested as AWS nests them:

- a direct S3 notification: ``Records[].s3.bucket.name`` and ``.s3.object.key``, the
  key URL-encoded as in a form (``+`` is a space);
- SQS: ``Records[].body`` holds any shape here (an S3 notification, an SNS envelope,
  an EventBridge event); S3's ``s3:TestEvent`` message is ignored;
- SNS: ``Records[].Sns.Message`` (or an SNS envelope in an SQS body: ``Message``);
- EventBridge "Object Created": ``detail.bucket.name``, ``detail.object.key``, the key
  not encoded.

Each object keeps the SQS ``messageId`` it came in, for the partial batch response.
Nothing here raises on a malformed record: it is logged with its reason and skipped,
alone (the records around it are read). Wrappers nest at most ``MAX_NESTING`` deep (AWS
nests three: SQS, SNS, the notification); JSON nested deeper than the parser takes
(``orjson``: 1024) is not JSON. An unreadable SQS record is the only batch item failure
of its invocation: SQS moves it to the dead-letter queue after its receive count, where
an operator sees it, and the sweeper re-drives a batch whose trigger was lost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import orjson

from mailspool.feedback.events import is_ses_event

__all__ = ["ObjectEvent", "parse_event"]

log = logging.getLogger("mailspool.aws")

_CREATED = "ObjectCreated"
#: Wrappers (SQS body, SNS message, EventBridge detail) followed before giving up.
MAX_NESTING = 8


class Unreadable(ValueError):
    """A record no delivery could ever read; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """One object announced as created; ``message_id`` is the SQS message carrying it."""

    bucket: str
    key: str
    source: str
    message_id: str | None = None


def parse_event(event: Mapping[str, Any], unreadable: list[str] | None = None) -> list[ObjectEvent]:
    """Every object an invocation event announces, in the order given; each top-level
    record is read alone, so one that cannot be read loses only itself (logged, and its
    SQS message id added to ``unreadable``: the handler reports it, alone, as a batch item
    failure, and SQS moves it to the dead-letter queue after its receive count)."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list) or _is_wrapper(event):
        return _read_alone(event, None, unreadable)
    found: list[ObjectEvent] = []
    for record in records:
        found.extend(_read_alone({"Records": [record]}, record, unreadable))
    return found


def _is_wrapper(event: Mapping[str, Any]) -> bool:
    return "detail" in event or event.get("Type") == "Notification"


def _read_alone(payload: Any, record: Any, unreadable: list[str] | None) -> list[ObjectEvent]:
    """The objects one record announces; any error reading it is logged, never raised."""
    try:
        return list(_walk(payload, "lambda", None, 0))
    except Exception as err:  # hostile input: no error of its reading may escape
        message_id = record.get("messageId") if isinstance(record, Mapping) else None
        what = str(err) if isinstance(err, Unreadable) else f"{type(err).__name__}: {err}"
        reason = f"unreadable record: {what[:300]}"
        fields = {"event": "ignored", "reason": reason}
        if isinstance(message_id, str):
            fields["message_id"] = message_id[:200]
            if unreadable is not None:
                unreadable.append(message_id)
        log.warning(json.dumps(fields))
        return []


def _walk(payload: Any, via: str, message_id: str | None, depth: int) -> Iterator[ObjectEvent]:
    if not isinstance(payload, Mapping):
        raise Unreadable(f"not an object (via {via})")
    if depth > MAX_NESTING:
        raise Unreadable(f"wrapped more than {MAX_NESTING} deep (via {via})")
    if payload.get("Event") == "s3:TestEvent" or _is_ses(payload):
        return  # SES events are mailspool.feedback's
    if "detail" in payload and "detail-type" in payload:
        yield from _eventbridge(payload, message_id)
        return
    if payload.get("Type") == "Notification" and "Message" in payload:
        yield from _walk(_loads(payload["Message"], "sns"), "sns", message_id, depth + 1)
        return
    records = payload.get("Records")
    if not isinstance(records, list):
        raise Unreadable(f"unknown event shape (via {via})")
    for record in records:
        yield from _record(record, message_id, depth + 1)


def _is_ses(payload: Mapping[str, Any]) -> bool:
    return payload.get("source") == "aws.ses" or is_ses_event(payload)


def _record(record: Any, message_id: str | None, depth: int) -> Iterator[ObjectEvent]:
    if not isinstance(record, Mapping):
        raise Unreadable("a record that is not an object")
    if "s3" in record:
        yield from _s3(record, message_id)
    elif "Sns" in record:
        sns = record["Sns"]
        if not isinstance(sns, Mapping):
            raise Unreadable("an SNS record that is not an object")
        yield from _walk(_loads(sns.get("Message"), "sns"), "sns", message_id, depth + 1)
    elif "body" in record:
        sqs_id = str(record.get("messageId") or "") or message_id
        yield from _walk(_loads(record["body"], "sqs"), "sqs", sqs_id, depth + 1)
    else:
        raise Unreadable("unknown record shape")


def _s3(record: Mapping[str, Any], message_id: str | None) -> Iterator[ObjectEvent]:
    name = str(record.get("eventName") or _CREATED)
    if not name.startswith(_CREATED):
        log.info(json.dumps({"event": "ignored", "reason": f"S3 event {name}"}))
        return
    try:
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
    except (KeyError, TypeError, AttributeError):
        raise Unreadable("S3 record without bucket/key") from None
    source = "s3" if message_id is None else "sqs"
    yield ObjectEvent(bucket=str(bucket), key=key, source=source, message_id=message_id)


def _eventbridge(payload: Mapping[str, Any], message_id: str | None) -> Iterator[ObjectEvent]:
    if payload.get("detail-type") != "Object Created":
        log.info(json.dumps({"event": "ignored", "reason": str(payload.get("detail-type"))}))
        return
    try:
        bucket = payload["detail"]["bucket"]["name"]
        key = payload["detail"]["object"]["key"]
    except (KeyError, TypeError):
        raise Unreadable("EventBridge event without key") from None
    source = "eventbridge" if message_id is None else "sqs"
    yield ObjectEvent(bucket=str(bucket), key=str(key), source=source, message_id=message_id)


def _loads(text: Any, via: str) -> Any:
    """JSON text (or an object already) -> the object; ``Unreadable`` for anything else,
    JSON nested deeper than ``orjson`` reads (1024) included."""
    if isinstance(text, Mapping):
        return text
    try:
        return orjson.loads(text)
    except (TypeError, ValueError) as err:  # orjson.JSONDecodeError is a ValueError
        raise Unreadable(f"{via} message is not JSON: {str(err)[:200]}") from None
