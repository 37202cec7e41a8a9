"""Returned mail built with the stdlib ``email`` package: RFC 3464 DSNs (failed or
delayed), RFC 5965 abuse reports and an auto-reply, as MTAs and mailbox providers send
them to a VERP address."""

from __future__ import annotations

import email.message
import time
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid

DAEMON = "MAILER-DAEMON@mx.example.net (Mail Delivery System)"


def _fields(**values: str) -> email.message.Message:
    block = email.message.Message()
    for name, value in values.items():
        block[name.replace("_", "-")] = value
    return block


def dsn(
    recipient: str,
    envelope_to: str,
    *,
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str | None = None,
    original_id: str = "<20261207T100000000000Z-0a1b2c3d.0@example.com>",
    message_id: str | None = None,
    date: float | None = None,
) -> bytes:
    """A Postfix-like DSN for one recipient, delivered to ``envelope_to``, dated now."""
    said = diagnostic or f"smtp; 550 {status} <{recipient}>: Recipient address rejected"
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = DAEMON
    report["To"] = envelope_to
    report["Delivered-To"] = envelope_to
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = formatdate(date or time.time())
    report["Message-ID"] = message_id or make_msgid(domain="mx.example.net")
    report["Auto-Submitted"] = "auto-replied"  # as Postfix writes it: still a bounce
    report.attach(
        MIMEText(
            f"I'm sorry to have to inform you that your message could not\n"
            f"be delivered to {recipient}.\n"
        )
    )
    status_part = email.message.Message()
    status_part.set_type("message/delivery-status")
    status_part.set_payload(
        [
            _fields(
                Reporting_MTA="dns; mx.example.net", Arrival_Date=formatdate(date or time.time())
            ),
            _fields(
                Final_Recipient=f"rfc822; {recipient}",
                Original_Recipient=f"rfc822;{recipient}",
                Action=action,
                Status=status,
                Diagnostic_Code=said,
            ),
        ]
    )
    report.attach(status_part)
    headers = MIMEText(
        f"From: Shop <shop@example.com>\nTo: {recipient}\nSubject: Hello\n"
        f"Message-ID: {original_id}\n",
        "rfc822-headers",
    )
    report.attach(headers)
    return report.as_bytes()


def arf(
    recipient: str,
    return_path: str,
    *,
    feedback_type: str = "abuse",
    original_id: str = "<20261207T100000000000Z-0a1b2c3d.0@example.com>",
) -> bytes:
    """An abuse report (RFC 5965) returning the whole message, with the Return-Path the
    receiving mailbox added (the VERP address) and no Original-Rcpt-To."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "feedback@fbl.example.org"
    report["To"] = "fbl@example.com"
    report["Subject"] = "Abuse report"
    report["Date"] = formatdate(1796637600)
    report["Message-ID"] = "<arf-1@fbl.example.org>"
    report.attach(MIMEText("This is an e-mail abuse report.\n"))
    fields = MIMEText(f"Feedback-Type: {feedback_type}\nUser-Agent: FBL/1.0\nVersion: 1\n", "plain")
    fields.replace_header("Content-Type", "message/feedback-report")
    report.attach(fields)
    original = email.message.Message()
    original["Return-Path"] = f"<{return_path}>"
    original["From"] = "Shop <shop@example.com>"
    original["To"] = recipient
    original["Subject"] = "Hello"
    original["Message-ID"] = original_id
    original.set_payload("Buy now\n")
    report.attach(MIMEMessage(original))
    return report.as_bytes()


def auto_reply(sender: str, envelope_to: str) -> bytes:
    """A vacation notice (RFC 3834) from a person's mailbox."""
    message = email.message.EmailMessage()
    message["From"] = sender
    message["To"] = envelope_to
    message["Delivered-To"] = envelope_to
    message["Subject"] = "Out of office: Hello"
    message["Auto-Submitted"] = "auto-replied"
    message["Date"] = formatdate(1796637600)
    message["Message-ID"] = make_msgid(domain="example.org")
    message.set_content("I am away until Monday.\n")
    return message.as_bytes()
