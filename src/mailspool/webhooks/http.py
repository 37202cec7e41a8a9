"""One signed POST of one event to the receiver, and what its answer means.

The signature is the Standard Webhooks one, made by its library
(``standardwebhooks.Webhook.sign``): headers ``webhook-id`` (the event id),
``webhook-timestamp`` (now, in seconds) and ``webhook-signature``. The answer decides:

- 2xx: delivered;
- 408, 425, 429, 5xx, no answer (refused connection, timeout, TLS failure): retried
  later, with growing delays (the receiver is down or busy);
- any other status (3xx included: a redirect is not followed, so a signed event never
  goes to a host that was not configured): refused; the event is set aside in
  ``webhooks/failed/``, since sending the same bytes again would get the same answer.

At most ``ANSWER_BYTES`` of an answer are read, and every call has a timeout.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from mailspool._version import __version__
from mailspool.errors import ConfigurationError, MissingDependency
from mailspool.webhook_rules import secret_bytes
from mailspool.webhooks.events import WebhookEvent

if TYPE_CHECKING:
    from standardwebhooks.webhooks import Webhook

__all__ = ["ANSWER_BYTES", "Answer", "Outcome", "Receiver", "signer"]

ANSWER_BYTES = 4096
_RETRIED = frozenset({408, 425, 429})


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Answer:
    """What came of one POST, with a short ``detail`` (the status and answer, or why
    there was none)."""

    outcome: Outcome
    detail: str


def signer(secret: str) -> Webhook:
    """The library's signer for a ``whsec_`` secret (checked strictly first)."""
    try:
        from standardwebhooks.webhooks import Webhook
    except ImportError as err:
        raise MissingDependency("signed webhooks", "webhooks") from err
    try:
        secret_bytes(secret)
    except ValueError:
        raise ConfigurationError(
            "MAILSPOOL_WEBHOOK_SECRET must be a Standard Webhooks secret: whsec_ then base64"
        ) from None
    return Webhook(secret)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx is answered as an HTTPError: refused


_OPENER = urllib.request.build_opener(_NoRedirect())


@dataclass(frozen=True, slots=True)
class Receiver:
    """The application's endpoint: where events go and the key that signs them."""

    url: str
    webhook: Webhook
    timeout: float = 10.0

    def headers(self, event: WebhookEvent, body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers of ``body``, signed now."""
        now = datetime.now(UTC)
        return {
            "content-type": "application/json",
            "user-agent": f"mailspool/{__version__}",
            "webhook-id": event.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.webhook.sign(event.id, now, body),
        }

    def post(self, event: WebhookEvent) -> Answer:
        body = event.payload()
        # the URL's scheme was checked as http(s) by its setting's rule
        request = urllib.request.Request(  # noqa: S310
            self.url, data=body, headers=self.headers(event, body), method="POST"
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                answer = response.read(ANSWER_BYTES)
                return Answer(Outcome.DELIVERED, _detail(response.status, answer))
        except urllib.error.HTTPError as err:
            with err:
                answer = err.read(ANSWER_BYTES) if err.fp is not None else b""
            retried = err.code in _RETRIED or err.code >= 500
            return Answer(Outcome.RETRY if retried else Outcome.REFUSED, _detail(err.code, answer))
        except (OSError, ValueError) as err:  # no answer: refused, timeout, TLS, DNS
            reason = getattr(err, "reason", err)
            return Answer(Outcome.RETRY, f"no answer from the receiver: {reason}")


def _detail(status: int, answer: bytes) -> str:
    # the receiver's words go to logs and records: printable characters only
    text = "".join(c if c.isprintable() else " " for c in answer.decode("utf-8", "replace"))
    text = text.strip()[:200]
    return f"HTTP {status}" + (f": {text}" if text else "")
