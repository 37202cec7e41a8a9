"""One-click unsubscribe (RFC 8058, as Gmail and Yahoo require of bulk senders).

With ``MAILSPOOL_UNSUBSCRIBE_URL`` and ``MAILSPOOL_UNSUBSCRIBE_SECRET`` set, every
deferred e-mail with a single recipient carries::

    List-Unsubscribe: <https://example.com/unsubscribe?token=...>[, <mailto:...>]
    List-Unsubscribe-Post: List-Unsubscribe=One-Click

The token names the recipient and is signed with HMAC-SHA256 under the secret, so the
endpoint (``UnsubscribeEndpoint``) can suppress that address, and only that one, with
reason ``unsubscribe``; a token that does not verify changes nothing. Priority mail does
not carry the headers unless asked (``send_mail(..., unsubscribe=True)``), and an e-mail
that already has a ``List-Unsubscribe`` header keeps its own.

SES offers its own list management (``ListManagementOptions`` with contact lists and
topics) as an alternative, hosted by SES; this one works with any transport.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from mailspool.address import legacy_forms
from mailspool.errors import ConfigurationError, InvalidMessage
from mailspool.feedback import layout
from mailspool.feedback.response import Response
from mailspool.feedback.suppression import Reason, SuppressionList
from mailspool.message import Message, bare_local_part
from mailspool.webhook_rules import EventType
from mailspool.webhooks.events import feedback_event
from mailspool.webhooks.outbox import Outbox

__all__ = ["UnsubscribeEndpoint", "UnsubscribeLinks"]

_HEADER = "List-Unsubscribe"
_POST_HEADER = "List-Unsubscribe-Post"
_ONE_CLICK = "List-Unsubscribe=One-Click"
_MAC_BYTES = 16  # 128 bits: forging one is out of reach
_MAX_TOKEN = 600


@dataclass(frozen=True, slots=True)
class UnsubscribeLinks:
    """Signs and checks per-recipient tokens, and adds the headers to e-mails."""

    url: str
    secret: bytes
    mailto: str | None = None

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme != "https":
            raise ConfigurationError(
                f"MAILSPOOL_UNSUBSCRIBE_URL must be an https:// URL (RFC 8058), not {self.url!r}"
            )
        if len(self.secret) < 16:
            raise ConfigurationError("MAILSPOOL_UNSUBSCRIBE_SECRET must be at least 16 bytes")

    def token(self, address: str) -> str:
        """``<address, base64url>.<HMAC, base64url>`` for the address's canonical form."""
        normalized = layout.normalize_address(address)
        return f"{_b64(normalized.encode())}.{_b64(self._mac(normalized))}"

    def verify(self, token: str) -> str | None:
        """The address a token was made for (canonical), or None if it does not verify.
        A token made before the canonical form (an address lower-cased, its domain as
        written) still verifies, for the address it names."""
        if len(token) > _MAX_TOKEN or token.count(".") != 1:
            return None
        encoded, mac = token.split(".")
        try:
            address = _unb64(encoded).decode()
            given = _unb64(mac)
            normalized = layout.normalize_address(address)
        except (ValueError, InvalidMessage):
            return None
        canonical = _b64(address.encode()) == encoded and _b64(given) == mac
        if not canonical or address not in (normalized, *legacy_forms(address)):
            return None  # one spelling per token: a changed character never verifies
        if not hmac.compare_digest(given, self._mac(address)):
            return None
        return normalized

    def link(self, address: str) -> str:
        separator = "&" if urlsplit(self.url).query else "?"
        return f"{self.url}{separator}{urlencode({'token': self.token(address)})}"

    def add_headers(self, message: Message) -> Message:
        """``message`` with the two headers, if it has exactly one recipient (not a bare
        local part) and no ``List-Unsubscribe`` of its own; else unchanged."""
        recipients = [*message.to, *message.cc, *message.bcc]
        own = any(name.lower() == _HEADER.lower() for name, _ in message.headers)
        if len(recipients) != 1 or own or bare_local_part(recipients[0]) is not None:
            return message  # a bare local part ("django") has no canonical form to sign
        links = [f"<{self.link(recipients[0])}>"]
        if self.mailto:
            links.append(f"<mailto:{self.mailto}?subject={quote('unsubscribe')}>")
        added = ((_HEADER, ", ".join(links)), (_POST_HEADER, _ONE_CLICK))
        return replace(message, headers=(*message.headers, *added))

    def _mac(self, normalized: str) -> bytes:
        text = f"mailspool-unsubscribe:{normalized}".encode()
        return hmac.new(self.secret, text, hashlib.sha256).digest()[:_MAC_BYTES]


class UnsubscribeEndpoint:
    """The unsubscribe URL: ``POST`` (one click, RFC 8058) suppresses; ``GET`` shows a
    confirmation form (a link scanner's GET must not unsubscribe anyone)."""

    def __init__(
        self, links: UnsubscribeLinks, suppressions: SuppressionList, outbox: Outbox | None = None
    ) -> None:
        self.links = links
        self.suppressions = suppressions
        self.outbox = outbox  # webhooks on: each unsubscribe is an ``email.unsubscribed``

    def handle(self, method: str, query: str, headers: Mapping[str, str], body: bytes) -> Response:
        token = _token(query, body if method.upper() == "POST" else b"")
        address = self.links.verify(token) if token else None
        if address is None:
            return Response.text(400, "this unsubscribe link is not valid")
        if method.upper() == "GET":
            return _form(token)
        if method.upper() != "POST":
            return Response(405, b"GET or POST\n", [("Allow", "GET, POST")])
        self.suppressions.add(address, Reason.UNSUBSCRIBE, diagnostic="one-click unsubscribe")
        if self.outbox is not None:  # one id per token: a second click is a duplicate
            self.outbox.add([feedback_event(EventType.UNSUBSCRIBED, token, address)])
        return Response.text(200, "unsubscribed")


def _token(query: str, body: bytes) -> str:
    for source in (query, body.decode("ascii", "replace")):
        values = parse_qs(source).get("token")
        if values:
            return values[0]
    return ""


def _form(token: str) -> Response:
    page = (
        '<!doctype html><meta charset="utf-8"><title>Unsubscribe</title>'
        '<form method="post"><input type="hidden" name="token" value="'
        + token.replace('"', "")
        + '"><button>Unsubscribe</button></form>'
    )
    return Response(200, page.encode(), [("Content-Type", "text/html; charset=utf-8")])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
