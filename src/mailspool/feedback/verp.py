"""VERP: a signed envelope sender per e-mail, so a bounce names what it bounces.

With ``MAILSPOOL_BOUNCE_ADDRESS=bounces@example.com`` and ``MAILSPOOL_BOUNCE_SECRET``
the worker sends each e-mail with the envelope sender (SMTP ``MAIL FROM``, the
``Return-Path`` a bounce goes to)::

    bounces+<batch id>.<e-mail index>.<signature>@example.com

The ``From`` header is unchanged. The signature is HMAC-SHA256 under the secret, cut to
64 bits (base32), over the batch id, the index and:

- for an e-mail with one envelope recipient, that recipient (canonical form): a bounce
  verifies only for the address the e-mail went to, with no store read;
- for an e-mail with several recipients (one SMTP transaction, so one envelope sender
  for all), ``*``: the recipient a bounce names is then checked against the e-mail's
  recipients in its batch (``queue/`` or ``done/``); once ``gc`` removed the batch,
  such a bounce is rejected.

A bounce whose token is missing, malformed or does not verify is rejected and changes
nothing: a forged bounce cannot suppress an address that was not sent to. The token
keeps the local part within 64 characters (RFC 5321).

Only the worker's SMTP sends carry VERP (``VerpTransport``, put around the delivery
transport by ``delivery.factory``); SES reports bounces and complaints as SES events,
and priority e-mail keeps the From address as its envelope sender.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailspool.address import canonical_address
from mailspool.errors import ConfigurationError, InvalidMessage

if TYPE_CHECKING:
    pass

__all__ = ["Token", "Verp"]

_MAC_BYTES = 8
_DOMAIN_SEPARATION = b"mailspool-verp-1\0"
#: The Message-ID the worker gives each e-mail: ``<batch-id.index@domain>``.
_OWN_ID = re.compile(
    r"<(?P<batch>[0-9]{8}T[0-9]{12}Z-[0-9a-f]{8}(?:-p[0-9]+)?)\.(?P<index>[0-9]+)@"
)
_TOKEN = re.compile(
    r"(?P<batch>[0-9]{8}t[0-9]{12}z-[0-9a-f]{8}(?:-p[0-9]+)?)\.(?P<index>[0-9]{1,9})"
    r"\.(?P<mac>[a-z2-7]{13})"
)


@dataclass(frozen=True, slots=True)
class Token:
    """What a VERP address names: an e-mail of a batch, and whether its signature
    covers the recipient (single-recipient e-mail) or not (checked against the batch)."""

    batch: str
    index: int
    mac: str

    @property
    def text(self) -> str:
        return f"{self.batch}.{self.index}.{self.mac}"


@dataclass(frozen=True, slots=True)
class Verp:
    """Makes and reads the signed bounce addresses of one bounce address and secret."""

    address: str
    secret: bytes

    def __post_init__(self) -> None:
        local, at, domain = self.address.rpartition("@")
        if not at or not local or not domain or "+" in local:
            raise ConfigurationError(
                "MAILSPOOL_BOUNCE_ADDRESS must be a bare address without '+', "
                f"e.g. bounces@example.com, not {self.address!r}"
            )
        if len(self.secret) < 16:
            raise ConfigurationError("MAILSPOOL_BOUNCE_SECRET must be at least 16 bytes")

    def envelope_sender(self, batch: str, index: int, recipients: Sequence[str]) -> str:
        """The signed bounce address for e-mail ``index`` of ``batch``."""
        single = recipients[0] if len(recipients) == 1 else None
        token = Token(batch, index, self._mac(batch, index, single))
        local, _, domain = self.address.rpartition("@")
        return f"{local}+{token.text}@{domain}"

    def token(self, address: str) -> Token | None:
        """The token of one of our bounce addresses (any case), unverified; else None."""
        local, _, domain = address.strip().strip("<>").rpartition("@")
        base, plus, text = local.partition("+")
        mine_local, _, mine_domain = self.address.rpartition("@")
        if not plus or base.lower() != mine_local.lower() or domain.lower() != mine_domain.lower():
            return None
        found = _TOKEN.fullmatch(text.lower())
        if found is None:
            return None
        batch = found["batch"].replace("t", "T", 1).replace("z-", "Z-", 1)
        return Token(batch, int(found["index"]), found["mac"])

    def covers(self, token: Token, recipient: str | None) -> bool:
        """True when the signature covers ``recipient`` alone (a single-recipient e-mail)."""
        if recipient is None:
            return False
        try:
            expected = self._mac(token.batch, token.index, recipient)
        except InvalidMessage:
            return False
        return hmac.compare_digest(expected, token.mac)

    def signed_for_many(self, token: Token) -> bool:
        """True when the signature is genuine for a several-recipient e-mail."""
        return hmac.compare_digest(self._mac(token.batch, token.index, None), token.mac)

    def _mac(self, batch: str, index: int, recipient: str | None) -> str:
        who = canonical_address(recipient) if recipient is not None else "*"
        data = _DOMAIN_SEPARATION + f"{batch}\0{index}\0{who}".encode()
        digest = hmac.new(self.secret, data, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.b32encode(digest).decode().rstrip("=").lower()
