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
from dataclasses import dataclass, field

from mailspool.errors import StoreError
from mailspool.feedback.events import unwrap
from mailspool.feedback.ingest import FeedbackOptions, ingest
from mailspool.feedback.sns import SNSVerifier, UntrustedMessage
from mailspool.stores.base import Store

__all__ = ["MAX_BODY", "Response", "SesEndpoint"]

log = logging.getLogger("mailspool.feedback")

#: SNS messages are at most 256 KiB; a little more for the envelope's fields.
MAX_BODY = 300 * 1024


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(
        default_factory=lambda: [("Content-Type", "text/plain; charset=utf-8")]
    )

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, text.encode() + b"\n")


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
            fields = json.loads(body)
        except ValueError:
            return Response.text(400, "not JSON")
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
            events = [w.event for w in unwrap(fields)]
        except ValueError as err:
            return Response.text(400, f"not an SES event: {err}")
        if not events:
            return Response.text(400, "the notification holds no SES event")
        try:
            report = ingest(self.store, events, options=self.options)
        except StoreError as err:  # SNS retries a 5xx: the event is not lost
            log.error("SES event not recorded: %s", err)
            return Response.text(503, "store unavailable, retry later")
        return Response.text(200, f"recorded {report.events} event(s)")
