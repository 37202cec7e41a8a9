"""How SES takes an e-mail's fields, for ``SendEmail`` (``ses``) and ``SendBulkEmail``
(``ses_bulk``) alike: addresses in ASCII with RFC 2047 names, the destination lists,
and the message tags that name the e-mail in SES's events."""

from __future__ import annotations

import re
from email.utils import formataddr, parseaddr
from typing import TYPE_CHECKING, Any

from mailspool.errors import InvalidMessage, SendingPaused
from mailspool.message import Message, ascii_domain, has_utf8_local_part
from mailspool.transports.deliverable import NO_SMTPUTF8

if TYPE_CHECKING:
    from mypy_boto3_sesv2.type_defs import DestinationTypeDef

__all__ = [
    "BULK_ENTRIES",
    "TENANT_BOTOCORE",
    "check_tenants",
    "email_tags",
    "ses_address",
    "ses_destination",
]

#: The botocore whose SES v2 model has ``TenantName`` on ``SendEmail`` and
#: ``SendBulkEmail`` (the version mailspool is tested with).
TENANT_BOTOCORE = "1.44"

#: SES: "up to 50 destinations" per ``SendBulkEmail`` call.
BULK_ENTRIES = 50
_OWN_ID = re.compile(r"<(?P<batch>[A-Za-z0-9_-]{1,200})\.(?P<index>[0-9]{1,9})@[^>]*>")


def check_tenants(client: Any) -> None:
    """Raise ``SendingPaused`` (the batch stops, nothing fails) when the installed
    botocore's SES v2 model has no ``TenantName``: it would refuse the parameter."""
    model = client.meta.service_model.operation_model("SendEmail").input_shape
    if "TenantName" not in model.members:
        import botocore

        raise SendingPaused(
            f"botocore {botocore.__version__} cannot send with an SES tenant (no TenantName "
            f"in its SES v2 model): botocore {TENANT_BOTOCORE} or later is needed "
            "(pip install -U boto3 botocore)"
        )


def email_tags(message_id: str | None) -> list[Any]:
    """The worker's ``<batch.index@domain>`` as two message tags: SES replaces the
    Message-ID, but its events carry the tags (``mail.tags``), which names the e-mail."""
    found = _OWN_ID.fullmatch(message_id or "")
    if found is None:
        return []
    return [
        {"Name": "mailspool-batch", "Value": found["batch"]},
        {"Name": "mailspool-index", "Value": found["index"]},
    ]


def ses_destination(message: Message) -> DestinationTypeDef:
    destination: DestinationTypeDef = {}
    if message.to:
        destination["ToAddresses"] = [ses_address(a) for a in message.to]
    if message.cc:
        destination["CcAddresses"] = [ses_address(a) for a in message.cc]
    if message.bcc:
        destination["BccAddresses"] = [ses_address(parseaddr(a)[1]) for a in message.bcc]
    return destination


def ses_address(address: str) -> str:
    """An address as SES takes it: ASCII only, display names as RFC 2047 encoded words,
    international domains in punycode. A non-ASCII local part cannot be sent."""
    name, addr = parseaddr(address)
    local, _, domain = addr.rpartition("@")
    if has_utf8_local_part(addr):
        raise InvalidMessage(f"{addr!r}: {NO_SMTPUTF8}", field="to")
    return formataddr((name, f"{local}@{ascii_domain(domain)}"), charset="utf-8")
