"""The feedback endpoints as plain functions: (method, headers, body) -> ``Response``.

- ``SesEndpoint``: ``POST /events/ses``, where an SNS HTTP(S) subscription delivers
  SES events. A message is believed only once ``sns.SNSVerifier`` has checked its
  signature and topic; a verified SubscriptionConfirmation is confirmed; a verified
  Notification's SES event is recorded (``ingest``). Anything else gets a 4xx and has
  no effect.
- ``UnsubscribeEndpoint``: RFC 8058 one-click unsubscribe (``unsubscribe``).

No web framework is imported here: ``mailspool serve`` and the framework glue
(``mailspool.feedback.mounts``) wrap these objects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from mailspool.errors import StoreError
from mailspool.feedback.events import unwrap
from mailspool.feedback.ingest import FeedbackOptions, ingest
from mailspool.feedback.response import Response
from mailspool.feedback.sns import SNSVerifier, UntrustedMessage
from mailspool.stores.base import Store

__all__ = ["MAX_BODY", "MAX_DEPTH", "Response", "SesEndpoint", "load_json"]

log = logging.getLogger("mailspool.feedback")

#: SNS messages are at most 256 KiB; a little more for the envelope's fields.
MAX_BODY = 300 * 1024
#: The deepest JSON accepted, in the body and in its Message: an SNS envelope is 1 deep,
#: an SES event about 6; deeper is an attack on the parsers (a 500 otherwise).
MAX_DEPTH = 32


class SesEndpoint:
    """``POST /events/ses`` for an SNS subscription; see the module docstring."""

    def __init__(
        self, store: Store, verifier: SNSVerifier, *, options: FeedbackOptions | None = None
    ) -> None:
        self.store = store
        self.verifier = verifier
        self.options = options

    def handle(self, method: str, headers: Mapping[str, str], body: bytes) -> Response:
        if method.upper() != "POST":
            return Response(405, b"POST only\n", [("Allow", "POST")])
        if len(body) > MAX_BODY:
            return Response.text(413, "too large for an SNS message")
        try:
            fields = load_json(body, "the body")
        except ValueError as err:
            return Response.text(400, str(err))
        if not isinstance(fields, dict):
            return Response.text(400, "not an SNS message")
        try:
            message = self.verifier.verify(fields)
            if message.type == "SubscriptionConfirmation":
                self.verifier.confirm(message)
                return Response.text(200, "subscription confirmed")
            if message.type != "Notification":
                return Response.text(200, "ignored")
            return self._record(fields)
        except UntrustedMessage as err:
            log.warning("refused an SNS message: %s", err)
            return Response.text(err.status, f"refused: {err}")

    def _record(self, fields: Mapping[str, object]) -> Response:
        try:
            load_json(str(fields.get("Message")), "the Message")  # its depth checked first
            events = [w.event for w in unwrap(fields)]
        except (ValueError, RecursionError) as err:
            return Response.text(400, f"not an SES event: {err}")
        if not events:
            return Response.text(400, "the notification holds no SES event")
        try:
            report = ingest(self.store, events, options=self.options)
        except StoreError as err:  # SNS retries a 5xx: the event is not lost
            log.error("SES event not recorded: %s", err)
            return Response.text(503, "store unavailable, retry later")
        return Response.text(200, f"recorded {report.events} event(s)")


def load_json(text: str | bytes, what: str) -> Any:
    """``text`` parsed, if it is JSON nested at most ``MAX_DEPTH`` deep; else
    ``ValueError`` saying which rule it broke."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} is JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        raise ValueError(f"{what} is not JSON") from None
    if _depth(value) > MAX_DEPTH:
        raise ValueError(f"{what} is JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """How deep lists and objects nest in ``value`` (without recursion; it stops
    counting past ``MAX_DEPTH``)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest
