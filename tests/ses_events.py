"""SES events as SES writes them (documented samples, both formats), for the tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any


def later(seconds: float = 0.0) -> str:
    """An SES timestamp: now (when the e-mail was just sent), plus ``seconds``."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def mail(
    provider_id: str, destination: list[str], tags: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    return {
        "timestamp": later(),
        "source": "blog@example.com",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/example.com",
        "sendingAccountId": "123456789012",
        "messageId": provider_id,
        "destination": destination,
        "headersTruncated": False,
        "commonHeaders": {"from": ["blog@example.com"], "to": destination, "subject": "New post"},
        "tags": {"ses:configuration-set": ["mailspool"], **(tags or {})},
    }


def bounce(
    provider_id: str,
    address: str,
    *,
    permanent: bool = True,
    when: str = "",
    format: str = "eventType",
) -> dict[str, Any]:
    return {
        format: "Bounce",
        "bounce": {
            "bounceType": "Permanent" if permanent else "Transient",
            "bounceSubType": "General" if permanent else "MailboxFull",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1" if permanent else "4.2.2",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown"
                    if permanent
                    else "smtp; 452 4.2.2 mailbox full",
                }
            ],
            "timestamp": when or later(1),
            "feedbackId": f"feedback-{provider_id}-{when}",
        },
        "mail": mail(provider_id, [address]),
    }


def complaint(provider_id: str, address: str, *, format: str = "eventType") -> dict[str, Any]:
    return {
        format: "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": address}],
            "timestamp": later(300),
            "feedbackId": f"complaint-{provider_id}",
            "complaintFeedbackType": "abuse",
        },
        "mail": mail(provider_id, [address]),
    }


def delivery(
    provider_id: str,
    address: str,
    *,
    format: str = "eventType",
    tags: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    return {
        format: "Delivery",
        "delivery": {
            "timestamp": later(2),
            "processingTimeMillis": 546,
            "recipients": [address],
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
        },
        "mail": mail(provider_id, [address], tags),
    }


def open_event(provider_id: str, address: str) -> dict[str, Any]:
    return {
        "eventType": "Open",
        "open": {"timestamp": later(3600), "ipAddress": "192.0.2.1"},
        "mail": mail(provider_id, [address]),
    }


def sns_envelope(
    message: dict[str, Any], *, message_id: str = "sns-1", topic: str = ""
) -> dict[str, Any]:
    """An SNS notification as SNS posts it over HTTP or puts it in an SQS body."""
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic or "arn:aws:sns:us-east-1:123456789012:mailspool-ses",
        "Message": json.dumps(message),
        "Timestamp": "2026-11-29T06:00:03.000Z",
        "SignatureVersion": "1",
        "Signature": "unused",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
    }


def eventbridge(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "eb-1",
        "detail-type": "Email Bounced",
        "source": "aws.ses",
        "account": "123456789012",
        "time": "2026-11-29T06:00:03Z",
        "region": "us-east-1",
        "resources": [],
        "detail": message,
    }
