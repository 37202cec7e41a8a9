"""Checking a webhook in the application that receives it.

``verify(body, headers, secret)`` is all a receiver needs: the body as received (bytes),
the request's headers and the ``whsec_`` secret. The signature and the timestamp are
checked by the Standard Webhooks library (a timestamp more than five minutes from now
is refused, so a captured delivery cannot be replayed later); the body is then read as
an event. Anything wrong raises ``WebhookRefused``; answer it with a 400.
Deduplicate by ``event.id``: delivery is at least once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from mailspool.errors import InvalidRecord, WebhookRefused
from mailspool.webhooks.events import WebhookEvent
from mailspool.webhooks.signing import signer

__all__ = ["LARGEST_BODY", "verify"]

#: largest body ``verify`` reads; mailspool's own events are far smaller
LARGEST_BODY = 1 << 20
_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def verify(body: bytes | str, headers: Mapping[str, str], secret: str) -> WebhookEvent:
    """The event of a genuine, recent delivery; ``WebhookRefused`` saying why otherwise."""
    webhook = signer(secret)  # MissingDependency without the 'webhooks' extra
    from standardwebhooks.webhooks import WebhookVerificationError

    data = body.encode() if isinstance(body, str) else bytes(body)
    if len(data) > LARGEST_BODY:
        raise WebhookRefused(f"webhook body larger than {LARGEST_BODY} bytes")
    wanted = {name.lower(): value for name, value in headers.items() if name.lower() in _HEADERS}
    try:
        webhook.verify(data, wanted, json_parse=False)
    except WebhookVerificationError as err:
        raise WebhookRefused(f"webhook refused: {err}") from None
    try:
        document = json.loads(data)
    except ValueError:
        raise WebhookRefused("webhook body is not JSON") from None
    if not isinstance(document, dict):
        raise WebhookRefused("webhook body is not a JSON object")
    try:
        return WebhookEvent.from_record({**document, "id": wanted["webhook-id"]})
    except InvalidRecord as err:
        raise WebhookRefused(f"webhook body is no mailspool event: {err}") from None
