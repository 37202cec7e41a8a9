"""``MAILSPOOL_ALLOWED_SENDERS``: the only addresses an e-mail may come from.

Whoever may write the store chooses each batch's From; this list is what keeps such a
writer from sending as anyone else. It holds addresses (``news@example.com``) and
whole domains (``@example.com``: any address of that domain, not of its subdomains),
comma-separated, compared in their canonical form (``address.canonical_address``: case,
quoting and IDNA spellings of one mailbox are the same address). When it is set, an e-mail whose
From or Sender is not allowed fails for good with ``SenderNotAllowed`` and is not
sent, on the worker and on the priority path. Reply-To is free: replies go where the
recipient chooses anyway. Unset (empty): any sender.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailspool.address import canonical_address, canonical_domain
from mailspool.errors import ConfigurationError, InvalidMessage, SenderNotAllowed
from mailspool.message import Message

__all__ = ["SETTING", "AllowedSenders"]

SETTING = "MAILSPOOL_ALLOWED_SENDERS"


@dataclass(frozen=True, slots=True)
class AllowedSenders:
    """Allowed addresses and ``@domains``; both empty means any sender is allowed."""

    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str | None) -> AllowedSenders:
        """From ``"news@example.com, @example.org"``; ``ConfigurationError`` for an
        item that is neither an address nor ``@domain``."""
        addresses, domains = set(), set()
        for item in (text or "").split(","):
            item = item.strip()
            if not item:
                continue
            try:
                if item.startswith("@") and len(item) > 1 and "@" not in item[1:]:
                    domains.add(canonical_domain(item[1:]))
                else:
                    addresses.add(canonical_address(item, "from"))
            except InvalidMessage:
                raise ConfigurationError(
                    f"{SETTING}: {item!r} is neither an address nor @domain"
                ) from None
        return cls(frozenset(addresses), frozenset(domains))

    @property
    def restricted(self) -> bool:
        return bool(self.addresses or self.domains)

    def allows(self, address: str) -> bool:
        """True if the bare address of ``address`` is allowed."""
        if not self.restricted:
            return True
        try:
            bare = canonical_address(address, "from")
        except InvalidMessage:
            return False
        return bare in self.addresses or bare.rpartition("@")[2] in self.domains

    def check(self, message: Message, default_sender: str = "") -> None:
        """Raise ``SenderNotAllowed`` unless the From (or the default) and any Sender
        header are allowed."""
        if not self.restricted:
            return
        for field, value in (
            ("From", message.sender or default_sender),
            ("Sender", message.header("Sender")),
        ):
            if value is not None and not self.allows(value):
                raise SenderNotAllowed(
                    f"{field} {value!r} is not in {SETTING}; the e-mail was not sent"
                )
