"""One signed POST of one event to the receiver, and what its answer means.

The signature is the Standard Webhooks one, made by its library
(``standardwebhooks.Webhook.sign``): headers ``webhook-id`` (the event id),
``webhook-timestamp`` (now, in seconds) and ``webhook-signature``. Only a 2xx is a
delivery, as the specification says; the other answers are failures, told apart so
that the deliverer backs off the right thing:

- the receiver is down, busy or asks to wait (no answer: refused connection, timeout,
  TLS failure; 408, 425, 429, 5xx; 410 Gone, its "stop sending"): ``UNAVAILABLE``, the
  whole outbox waits (``Retry-After`` is taken into account when given);
- it answered, but not a 2xx, about this event (3xx: a redirect is not followed, so a
  signed event never goes to a host that was not configured; any other 4xx):
  ``REJECTED``, this event waits on its own and the others go on.

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
from mailspool.webhooks.events import WebhookEvent

if TYPE_CHECKING:
    from standardwebhooks.webhooks import Webhook

__all__ = ["ANSWER_BYTES", "Answer", "Outcome", "Receiver"]

ANSWER_BYTES = 4096
_UNAVAILABLE = frozenset({408, 410, 425, 429})
_LONGEST_WAIT = 86400.0  # a Retry-After beyond a day is taken as a day


class Outcome(StrEnum):
    DELIVERED = "delivered"
    UNAVAILABLE = "unavailable"  # the receiver is down, busy or asked to wait
    REJECTED = "rejected"  # it answered about this event, not with a 2xx


@dataclass(frozen=True, slots=True)
class Answer:
    """What came of one POST, with a short ``detail`` (the status and answer, or why
    there was none) and the receiver's ``Retry-After`` in seconds, if it gave one."""

    outcome: Outcome
    detail: str
    retry_after: float | None = None
    gone: bool = False  # 410: the application asks not to be sent events any more


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # the 3xx is answered as an HTTPError: refused


_OPENER = urllib.request.build_opener(_NoRedirect())


@dataclass(frozen=True, slots=True)
class Receiver:
    """The application's endpoint: where events go and the key that signs them."""

    url: str
    webhook: Webhook
    timeout: float = 15.0

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
            down = err.code in _UNAVAILABLE or err.code >= 500
            return Answer(
                Outcome.UNAVAILABLE if down else Outcome.REJECTED,
                _detail(err.code, answer),
                _retry_after(err.headers.get("retry-after")),
                gone=err.code == 410,
            )
        except (OSError, ValueError) as err:  # no answer: refused, timeout, TLS, DNS
            reason = getattr(err, "reason", err)
            return Answer(Outcome.UNAVAILABLE, f"no answer from the receiver: {reason}")


def _detail(status: int, answer: bytes) -> str:
    # the receiver's words go to logs and records: printable characters only
    text = "".join(c if c.isprintable() else " " for c in answer.decode("utf-8", "replace"))
    text = text.strip()[:200]
    return f"HTTP {status}" + (f": {text}" if text else "")


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, when given as seconds (a date is ignored: the
    deliverer's own delay applies), at most a day."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), _LONGEST_WAIT)
