"""SES v2 ``SendBulkEmail``: e-mails that share their content, up to 50 in one call.

The shared part goes once, as inline template content (``DefaultContent.Template``:
``TemplateContent`` with Subject, Text and Html, plus the attachments, which SES gives
to every destination). What differs per e-mail goes in its entry: the destination (To,
Cc, Bcc), its extra headers (``ReplacementHeaders``: List-Unsubscribe and the batch's
headers) and the stable message tags (``ReplacementTags``: ``mailspool-batch`` and
``mailspool-index``). Nothing is substituted: the content has no template tags, and
``TemplateData`` is the empty object.

An e-mail goes in a bulk call only when SES builds from that the same e-mail ``send``
would: UTF-8 text, no ``{{`` in its subject or bodies (SES would read it as a template
tag), ASCII recipients, at most 50 of them, and at most 15 headers that SES takes as
message headers (printable ASCII, the API's lengths). The others have no ``bulk_key``
and go through ``SendEmail`` one by one.

SES answers for each entry (``BulkEmailEntryResults``, in the order of the entries):
``SUCCESS`` carries the entry's message id; throttling and temporary failures are
``TransientError``; a paused or suspended account (or configuration set) is
``SendingPaused``; a rejected message, an unverified sender, a missing configuration
set, template or IP pool, or an invalid parameter is ``PermanentError``. ``FAILED``
(SES names no cause), an unknown status and a missing result are transient: the
e-mail is tried again alone, where ``SendEmail`` names the cause. ``SUCCESS`` is sent
even without a message id: sending it again would duplicate it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mailspool.errors import PermanentError, SendingPaused, TransientError
from mailspool.message import Attachment, Message, has_utf8_local_part, parse_address
from mailspool.transports.base import BulkEntry, BulkResult, Receipt
from mailspool.transports.deliverable import MAX_RECIPIENTS
from mailspool.transports.ses_fields import BULK_ENTRIES, email_tags, ses_address, ses_destination

if TYPE_CHECKING:
    from mypy_boto3_sesv2.type_defs import (
        AttachmentTypeDef,
        BulkEmailEntryTypeDef,
        EmailTemplateContentTypeDef,
        MessageHeaderTypeDef,
        SendBulkEmailRequestTypeDef,
    )

__all__ = ["BULK_ENTRIES", "bulk_key", "bulk_request", "entry_results"]

_MAX_HEADERS = 15  # MessageHeaderList
_MAX_NAME, _MAX_VALUE, _MAX_FIELD = 126, 995, 996  # MessageHeader's lengths
_MAX_FILENAME, _MAX_CONTENT_TYPE = 255, 78  # Attachment's lengths

_TRANSIENT = frozenset(
    {"ACCOUNT_THROTTLED", "ACCOUNT_DAILY_QUOTA_EXCEEDED", "TRANSIENT_FAILURE", "FAILED"}
)
_PAUSED = frozenset(
    {"ACCOUNT_SUSPENDED", "ACCOUNT_SENDING_PAUSED", "CONFIGURATION_SET_SENDING_PAUSED"}
)
_PERMANENT = frozenset(
    {
        "MESSAGE_REJECTED",
        "MAIL_FROM_DOMAIN_NOT_VERIFIED",
        "CONFIGURATION_SET_NOT_FOUND",
        "TEMPLATE_NOT_FOUND",
        "INVALID_SENDING_POOL_NAME",
        "INVALID_PARAMETER",
    }
)


def bulk_key(message: Message, default_sender: str | None) -> Hashable | None:
    """What e-mails of one call share (sender, Reply-To, subject, bodies, attachments),
    or None when SES could not build this e-mail from a template (module docstring)."""
    sender = message.sender or default_sender
    if not sender or message.charset.lower() not in ("utf-8", "utf8"):
        return None
    if any("{{" in part for part in (message.subject, message.text, message.html) if part):
        return None
    recipients = message.envelope_recipients
    if len(recipients) > MAX_RECIPIENTS or any(has_utf8_local_part(a) for a in recipients):
        return None
    if has_utf8_local_part(parse_address(sender)[1]) or not _headers_fit(message.headers):
        return None
    if not all(_attachment_fits(a) for a in message.attachments):
        return None
    content = (message.subject, message.text, message.html, message.attachments)
    return (sender, message.reply_to, message.tenant, *content)  # one TenantName a call


def bulk_request(
    entries: Sequence[BulkEntry], sender: str, configuration_set: str | None
) -> SendBulkEmailRequestTypeDef:
    """The ``SendBulkEmail`` arguments for entries of one ``bulk_key`` (the first one's
    content is every one's). InvalidMessage if an address cannot be written for SES."""
    first = entries[0].message
    request: SendBulkEmailRequestTypeDef = {
        "FromEmailAddress": ses_address(sender),
        "DefaultContent": {
            "Template": {
                "TemplateContent": _content(first),
                "TemplateData": "{}",
                "Attachments": [_attachment(a) for a in first.attachments],
            }
        },
        "BulkEmailEntries": [_entry(entry) for entry in entries],
    }
    if first.reply_to:
        request["ReplyToAddresses"] = [ses_address(a) for a in first.reply_to]
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    if first.tenant is not None:
        request["TenantName"] = first.tenant
    return request


def entry_results(response: Mapping[str, Any], count: int) -> list[BulkResult]:
    """One result per entry from SES's answer, read as untrusted input."""
    answers = response.get("BulkEmailEntryResults")
    listed = answers if isinstance(answers, list) else []
    results: list[BulkResult] = []
    for position in range(count):
        answer = listed[position] if position < len(listed) else None
        results.append(_entry_result(answer if isinstance(answer, Mapping) else {}))
    return results


def _entry_result(answer: Mapping[str, Any]) -> BulkResult:
    status = str(answer.get("Status") or "")
    message_id = answer.get("MessageId")
    if status == "SUCCESS":  # accepted: sent, even if SES left out its id
        return Receipt(message_id=message_id if isinstance(message_id, str) else "")
    text = f"SES bulk {status or 'no result'}: {answer.get('Error') or ''}".rstrip(": ")
    if status in _PAUSED:
        return SendingPaused(text)
    if status in _PERMANENT:
        return PermanentError(text)
    return TransientError(text)  # _TRANSIENT, an unknown status, or no answer at all


def _entry(entry: BulkEntry) -> BulkEmailEntryTypeDef:
    message = entry.message
    result: BulkEmailEntryTypeDef = {"Destination": ses_destination(message)}
    tags = email_tags(entry.message_id)
    if tags:
        result["ReplacementTags"] = tags
    headers: list[MessageHeaderTypeDef] = [{"Name": n, "Value": v} for n, v in message.headers]
    if headers:
        result["ReplacementHeaders"] = headers
    return result


def _content(message: Message) -> EmailTemplateContentTypeDef:
    content: EmailTemplateContentTypeDef = {"Subject": message.subject}
    if message.text is not None:
        content["Text"] = message.text
    if message.html is not None:
        content["Html"] = message.html
    return content


def _attachment(attachment: Attachment) -> AttachmentTypeDef:
    return {
        "RawContent": attachment.content,
        "FileName": attachment.filename,
        "ContentType": attachment.content_type,
        "ContentDisposition": "ATTACHMENT",
    }


def _headers_fit(headers: Sequence[tuple[str, str]]) -> bool:
    """Whether SES takes these as ``MessageHeader``s (count, printable ASCII, lengths)."""
    if len(headers) > _MAX_HEADERS:
        return False
    return all(
        0 < len(name) <= _MAX_NAME
        and 0 < len(value) <= _MAX_VALUE
        and len(name) + len(value) <= _MAX_FIELD
        and all(" " <= c <= "~" for c in value)
        for name, value in headers
    )


def _attachment_fits(attachment: Attachment) -> bool:
    return (
        len(attachment.filename) <= _MAX_FILENAME
        and attachment.filename.isascii()
        and len(attachment.content_type) <= _MAX_CONTENT_TYPE
    )
