"""What a transport is known to refuse before it tries.

``send_mail`` checks an e-mail against the transport that will deliver it, so that the
caller learns at once rather than finding the e-mail in ``failed/`` later; the
transports apply the same rules when a batch written earlier reaches them.

- SES (``ses://``) takes 7-bit addresses only: its documentation asks for the domain
  in punycode and allows no non-ASCII character in the local part (SES does not
  support SMTPUTF8, RFC 6531), and at most 50 recipients (To, Cc and Bcc) per message.
- An SMTP server may or may not offer SMTPUTF8, which is known only once connected:
  ``transports.smtp`` decides per server, so ``send_mail`` cannot know in advance.
"""

from __future__ import annotations

from dataclasses import replace

from mailspool.errors import InvalidMessage
from mailspool.message import Message, has_utf8_local_part, parse_address

__all__ = ["MAX_RECIPIENTS", "NO_SMTPUTF8", "check_deliverable", "without_utf8_recipients"]

MAX_RECIPIENTS = 50  # SES: "a message can include up to 50 recipients" (To, Cc, Bcc)
NO_SMTPUTF8 = "553 5.6.7 SES does not support SMTPUTF8, needed for a non-ASCII local part"


def check_deliverable(message: Message, transport_url: str) -> None:
    """Raise InvalidMessage, naming the field, for what the transport will surely refuse."""
    if transport_url.partition(":")[0].lower() != "ses":
        return
    fields = (("from", (message.sender or "",)), ("to", message.to), ("cc", message.cc))
    for field, addresses in (*fields, ("bcc", message.bcc)):
        for address in addresses:
            if has_utf8_local_part(parse_address(address)[1]):
                raise InvalidMessage(f"{address!r}: {NO_SMTPUTF8}", field=field)
    count = len(message.to) + len(message.cc) + len(message.bcc)
    if count > MAX_RECIPIENTS:
        raise InvalidMessage(
            f"SES accepts at most {MAX_RECIPIENTS} recipients per message (To, Cc and Bcc "
            f"together); this one has {count}: split it into several messages",
            field="to",
        )


def without_utf8_recipients(message: Message) -> tuple[Message | None, dict[str, str]]:
    """The message without the recipients a 7-bit transport cannot address, and those
    recipients with the refusal; None when no recipient is left."""
    refused = {a: NO_SMTPUTF8 for a in message.envelope_recipients if has_utf8_local_part(a)}
    if not refused:
        return message, {}

    def kept(addresses: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(a for a in addresses if parse_address(a)[1] not in refused)

    if len(refused) == len(message.envelope_recipients):
        return None, refused
    return replace(
        message, to=kept(message.to), cc=kept(message.cc), bcc=kept(message.bcc)
    ), refused
